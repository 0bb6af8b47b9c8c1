#include "recorded_server.hpp"

#include "kmscope/epid.hpp"

namespace kmscope::replay {

std::vector<Event> recorded_events(const capture::RecordedConnection& c) {
    ConversationOptions opts;
    opts.emit_pdu_events = false;
    Conversation conv(opts);
    FileTime last{};
    for (const auto& p : c.pdus) {
        conv.feed(p.direction, p.time, p.bytes);
        last = p.time;
    }
    conv.finish(last, EndReason::EndOfCapture);
    return conv.take_events();
}

RecordedFields fields_of(const kms::DecodedResponse& r) {
    return RecordedFields{r.base.epid, r.hwid, r.base.count, r.base.activation_interval, r.base.renewal_interval};
}

RecordedServer learn_server(const std::vector<capture::RecordedConnection>& connections) {
    RecordedServer out;
    for (const auto& c : connections) {
        for (const auto& ev : recorded_events(c)) {
            if (const auto* n = std::get_if<ContextNegotiation>(&ev)) {
                if (!n->answered || n->nak) continue;
                bool offered64 = false, offered_btfn = false;
                for (const auto& item : n->offered)
                    for (const auto& t : item.transfer) {
                        auto kind = rpc::classify_transfer(t);
                        offered64 = offered64 || kind == rpc::TransferKind::Ndr64;
                        offered_btfn = offered_btfn || kind == rpc::TransferKind::Btfn;
                    }
                bool accepted64 = false;
                for (const auto& b : n->accepted) accepted64 = accepted64 || b.ndr() == rpc::Ndr::Ndr64;
                bool acked_btfn = false;
                for (const auto& r : n->results)
                    acked_btfn =
                        acked_btfn || r.result == static_cast<std::uint16_t>(rpc::ContextResultCode::NegotiateAck);
                if (offered64) out.ndr64 = out.ndr64.value_or(false) || accepted64;
                if (offered_btfn) out.btfn = out.btfn.value_or(false) || acked_btfn;
            } else if (const auto* x = std::get_if<Exchange>(&ev)) {
                if (x->outcome != Outcome::Response || !x->response || !x->request) continue;
                out.by_kms_id[x->request->base.kms_id] = fields_of(*x->response);
                ++out.responses;
            }
        }
    }
    return out;
}

std::uint32_t PerKmsIdCountPolicy::count_for(const kms::BaseRequest& request, FileTime now) {
    auto it = counts_.find(request.kms_id);
    return it != counts_.end() ? it->second : fallback_.count_for(request, now);
}

std::vector<std::string> apply_recorded(const RecordedServer& rec, server::ServerContext& ctx) {
    std::vector<std::string> notes;
    if (rec.ndr64) ctx.config.ndr64 = *rec.ndr64;
    if (rec.btfn) ctx.config.btfn = *rec.btfn;
    std::map<Guid, std::uint32_t> counts;
    bool first = true;
    for (const auto& [kms_id, f] : rec.by_kms_id) {
        const auto& family = csvlk_for_kms_id(kms_id, *ctx.products);
        server::FamilyIdentity id{f.epid, f.hwid.value_or(ctx.config.hwid)};
        ctx.identity.set(std::string(family.name), id);
        counts[kms_id] = f.count;
        if (auto parts = parse_epid(f.epid); parts && first) {
            ctx.config.host_build = parts->build;
            ctx.config.lcid = parts->lcid;
        }
        if (first) {
            ctx.config.activation_interval = f.activation_interval;
            ctx.config.renewal_interval = f.renewal_interval;
            if (f.hwid) ctx.config.hwid = *f.hwid;
        } else if (f.activation_interval != ctx.config.activation_interval ||
                   f.renewal_interval != ctx.config.renewal_interval) {
            notes.push_back("KMS ID " + kms_id.to_string() +
                            " was answered with other intervals; one pair per server is supported");
        }
        first = false;
    }
    ctx.counts = std::make_shared<PerKmsIdCountPolicy>(std::move(counts));
    return notes;
}

}  // namespace kmscope::replay
