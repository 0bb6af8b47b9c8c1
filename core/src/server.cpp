#include "kmscope/server.hpp"

#include <cstdlib>

#include "kmscope/status.hpp"

namespace kmscope::server {

std::vector<std::string> ServerConfig::validate() const {
    std::vector<std::string> problems;
    if (ndr64 && host_build < 9200)
        problems.push_back("NDR64 is enabled but host build " + std::to_string(host_build) +
                           " predates Windows 8; genuine hosts of that build reject NDR64");
    if (!ndr64 && host_build >= 9200)
        problems.push_back("NDR64 is disabled but host build " + std::to_string(host_build) +
                           " is Windows 8 or later; genuine hosts of that build accept NDR64");
    for (const auto& [name, id] : identities) {
        if (!csvlk_family(name)) problems.push_back("unknown CSVLK family '" + name + "'");
        auto parts = parse_epid(id.epid);
        if (!parts) problems.push_back("ePID for " + name + ": " + parts.error().to_string());
    }
    return problems;
}

std::uint32_t FixedCountPolicy::count_for(const kms::BaseRequest& request, FileTime) {
    if (fixed_) return fixed_;
    return request.n_policy == 0 ? 1 : 2 * request.n_policy;
}

HostIdentity HostIdentity::create(const ServerConfig& config, FileTime now, RandomSource& rng) {
    HostIdentity id;
    for (const auto& family : csvlk_families()) {
        std::string name(family.name);
        auto configured = config.identities.find(name);
        if (configured != config.identities.end()) {
            id.families_[name] = configured->second;
        } else {
            id.families_[name] =
                FamilyIdentity{generate_epid(family, config.host_build, config.lcid, now, rng), config.hwid};
        }
    }
    return id;
}

const FamilyIdentity& HostIdentity::for_kms_id(const Guid& kms_id, const ProductTable& products) const {
    const auto& family = csvlk_for_kms_id(kms_id, products);
    if (auto it = families_.find(family.name); it != families_.end()) return it->second;
    if (auto it = families_.find("Windows"); it != families_.end()) return it->second;
    if (!families_.empty()) return families_.begin()->second;
    static const FamilyIdentity kNone{"00000-00000-000-000000-03-1033-17763.0000-0012019", kVlmcsdDefaultHwId, {}, {}};
    return kNone;
}

const FamilyIdentity* HostIdentity::family(std::string_view name) const {
    auto it = families_.find(name);
    return it == families_.end() ? nullptr : &it->second;
}

std::string_view event_name(EventKind kind) {
    switch (kind) {
        case EventKind::ContextsRefused:
            return "contexts_refused";
        case EventKind::MalformedPdu:
            return "malformed_pdu";
        case EventKind::FragmentError:
            return "fragment_error";
        case EventKind::NotDceRpc:
            return "not_dcerpc";
        case EventKind::UnexpectedPdu:
            return "unexpected_pdu";
        case EventKind::BindLimit:
            return "bind_limit";
        case EventKind::Fault:
            return "fault";
        case EventKind::ErrorAnswer:
            return "error_answer";
    }
    return "unknown";
}

std::string describe(const ServerEvent& e) {
    const std::string pdu = rpc::pdu_type_name(e.ptype);
    const std::string call = pdu + " call " + std::to_string(e.call_id);
    switch (e.kind) {
        case EventKind::ContextsRefused:
            return call + ": no context accepted (" + e.detail + ")";
        case EventKind::MalformedPdu:
            return "malformed " + pdu + ": " + e.detail;
        case EventKind::FragmentError:
            return call + ": " + e.detail;
        case EventKind::NotDceRpc:
            return "closing: not DCE/RPC: " + e.detail;
        case EventKind::UnexpectedPdu:
            return "closing: unexpected " + pdu + " from the client";
        case EventKind::BindLimit:
            return "closing: " + call + ": " + e.detail;
        case EventKind::Fault:
            return call + ": fault " + hex32(e.code) + ": " + e.detail;
        case EventKind::ErrorAnswer:
            return call + ": HRESULT " + hex32(e.code) + ": " + e.detail;
    }
    return call + ": " + e.detail;
}

KmsAnswer answer_kms_request(ServerContext& ctx, ByteView message, const Clock& clock, RandomSource& rng) {
    KmsAnswer a;
    a.record.time = clock.now();
    auto refuse = [&](std::uint32_t hr, std::string why) {
        a.hresult = hr;
        a.record.hresult = hr;
        a.record.reason = std::move(why);
        return a;
    };
    auto decoded = kms::decode_request(message);
    // The version the decoder read; an undecodable request is peeked at, for the log.
    a.record.version = decoded ? std::optional(decoded->version) : kms::peek_version(message);
    if (!decoded) return refuse(kHrInvalidData, decoded.error().to_string());
    const auto& req = *decoded;
    a.record.request = req.base;
    if (!req.version.supported())
        return refuse(kHrInvalidData, "unsupported KMS protocol version " + req.version.to_string());
    if (req.base.version != req.version)
        return refuse(kHrInvalidData, "inner version " + req.base.version.to_string() + " differs from outer " +
                                          req.version.to_string());
    if (req.base.n_policy > ctx.config.max_n_policy)
        return refuse(kHrInvalidData, "N policy " + std::to_string(req.base.n_policy) + " exceeds " +
                                          std::to_string(ctx.config.max_n_policy));
    if (ctx.config.max_time_skew_seconds) {
        auto skew = std::llabs(req.base.client_time.unix_seconds() - a.record.time.unix_seconds());
        if (skew > *ctx.config.max_time_skew_seconds)
            return refuse(kHrTimeSkew, "client time differs from server time by " + std::to_string(skew) + " s");
    }
    const auto& identity = ctx.identity.for_kms_id(req.base.kms_id, *ctx.products);
    kms::ResponseFields fields;
    fields.epid = identity.epid;
    fields.hwid = identity.hwid;
    try {
        fields.count = ctx.counts->count_for(req.base, a.record.time);
    } catch (const CountUnavailable& e) {
        return refuse(kHrInvalidData, std::string("count not recorded, request not acknowledged: ") + e.what());
    }
    fields.activation_interval = identity.activation_interval.value_or(ctx.config.activation_interval);
    fields.renewal_interval = identity.renewal_interval.value_or(ctx.config.renewal_interval);
    a.message = kms::build_response_message(req, fields, rng);
    a.record.count = fields.count;
    a.record.epid = fields.epid;
    return a;
}

ServerConnection::ServerConnection(ServerContext& context, std::uint32_t assoc_group, std::uint16_t local_port)
    : ctx_(context),
      assoc_group_(assoc_group),
      local_port_(local_port),
      framer_(context.config.limits),
      assembler_(context.config.limits) {}

Output ServerConnection::on_bytes(ByteView chunk, const Clock& clock, RandomSource& rng) {
    Output out;
    framer_.feed(chunk);
    while (auto frame = framer_.next_view()) {
        Output one = on_pdu(frame->bytes, clock, rng);
        out.bytes.insert(out.bytes.end(), one.bytes.begin(), one.bytes.end());
        for (auto& a : one.activations) out.activations.push_back(std::move(a));
        for (auto& e : one.events) out.events.push_back(std::move(e));
        if (one.close) {
            out.close = true;
            return out;
        }
    }
    if (framer_.error()) {
        out.events.push_back({EventKind::NotDceRpc, 0xFF, 0, 0, framer_.error()->to_string()});
        out.close = true;
    }
    return out;
}

Output ServerConnection::on_pdu(ByteView bytes, const Clock& clock, RandomSource& rng) {
    Output out;
    auto pdu = rpc::parse_pdu(bytes, 0, ctx_.config.limits);
    if (!pdu) {
        // A malformed bind gets a bind_nak, a malformed request a fault; anything else ends the connection.
        auto header = rpc::parse_header(bytes, 0, ctx_.config.limits);
        auto ptype = header ? static_cast<rpc::PduType>(header->ptype) : rpc::PduType::Fault;
        std::uint32_t call_id = header ? header->call_id : 0;
        out.events.push_back({EventKind::MalformedPdu, header ? header->ptype : std::uint8_t{0xFF}, call_id, 0,
                              pdu.error().to_string()});
        if (ptype == rpc::PduType::Bind || ptype == rpc::PduType::AlterContext) {
            out.bytes = rpc::build_bind_nak(call_id, 0);
        } else if (ptype == rpc::PduType::Request) {
            out.bytes = rpc::build_fault(call_id, 0, kNcaProtoError);
        } else {
            out.close = true;
        }
        return out;
    }
    switch (static_cast<rpc::PduType>(pdu->header.ptype)) {
        case rpc::PduType::Bind:
        case rpc::PduType::AlterContext:
            if (ctx_.config.max_binds_per_connection && binds_ >= ctx_.config.max_binds_per_connection) {
                out.events.push_back(
                    {EventKind::BindLimit, pdu->header.ptype, pdu->header.call_id, 0,
                     "more than " + std::to_string(ctx_.config.max_binds_per_connection) + " binds on one connection"});
                out.close = true;
                break;
            }
            ++binds_;
            answer_bind(*pdu, out);
            break;
        case rpc::PduType::Request: {
            auto whole = assembler_.add_view(*pdu, bytes);
            if (!whole) {
                out.events.push_back(
                    {EventKind::FragmentError, pdu->header.ptype, pdu->header.call_id, 0, whole.error().message});
                out.bytes = rpc::build_fault(pdu->header.call_id, 0, kNcaProtoError);
                out.close = true;
                break;
            }
            if (!*whole) break;  // wait for the remaining fragments
            if (!(*whole)->joined) {
                answer_request(*pdu, clock, rng, out);
            } else {
                auto joined = rpc::parse_pdu((*whole)->bytes, 0, ctx_.config.limits);
                if (joined) answer_request(*joined, clock, rng, out);
            }
            break;
        }
        default:
            out.events.push_back({EventKind::UnexpectedPdu, pdu->header.ptype, pdu->header.call_id, 0, {}});
            out.close = true;
    }
    return out;
}

Output ServerConnection::withdraw_responses(ByteView answers, std::uint32_t hresult, const std::string& reason) const {
    Output out;
    rpc::StreamFramer framer;  // the server's own PDUs: the default limits, not the client-facing ones
    framer.feed(answers);
    while (auto frame = framer.next()) {
        auto pdu = rpc::parse_pdu(frame->bytes);
        const auto* body = pdu ? std::get_if<rpc::ResponseBody>(&pdu->body) : nullptr;
        auto ctx = body ? contexts_.find(body->context_id) : contexts_.end();
        if (ctx == contexts_.end()) {  // not a response on a bound context: sent as it is
            out.bytes.insert(out.bytes.end(), frame->bytes.begin(), frame->bytes.end());
            continue;
        }
        Bytes reply = rpc::build_response(rpc::flag::kFirstLast, pdu->header.call_id, body->context_id,
                                          rpc::build_error_stub(hresult, ctx->second));
        out.bytes.insert(out.bytes.end(), reply.begin(), reply.end());
        out.events.push_back({EventKind::ErrorAnswer, static_cast<std::uint8_t>(rpc::PduType::Request),
                              pdu->header.call_id, hresult, "answer withdrawn: " + reason});
    }
    return out;
}

void ServerConnection::answer_bind(const rpc::Pdu& pdu, Output& out) {
    const auto& body = std::get<rpc::BindBody>(pdu.body);
    const bool alter = pdu.header.ptype == static_cast<std::uint8_t>(rpc::PduType::AlterContext);
    auto offers = [](const rpc::ContextItem& item, rpc::TransferKind kind) -> const rpc::SyntaxId* {
        for (const auto& t : item.transfer)
            if (rpc::classify_transfer(t) == kind) return &t;
        return nullptr;
    };
    // As a Windows 8+ host: NDR64 wins when enabled and offered, and NDR32 is then rejected.
    bool ndr64_possible = false;
    if (ctx_.config.ndr64)
        for (const auto& item : body.contexts)
            if (offers(item, rpc::TransferKind::Ndr64)) ndr64_possible = true;
    rpc::BindAckBody ack;
    ack.max_xmit_frag = body.max_xmit_frag;
    ack.max_recv_frag = body.max_recv_frag;
    ack.assoc_group = assoc_group_;
    if (!alter) {
        ack.secondary_address = std::to_string(local_port_);
        ack.secondary_address_present = true;
    }
    static constexpr std::size_t kMaxBoundContexts = 64;
    for (const auto& item : body.contexts) {
        rpc::ContextResult r;
        const bool kms = item.abstract == rpc::kms_interface();
        const auto* btfn = offers(item, rpc::TransferKind::Btfn);
        const auto* ndr64 = offers(item, rpc::TransferKind::Ndr64);
        const auto* ndr32 = offers(item, rpc::TransferKind::Ndr32);
        const bool room = contexts_.size() < kMaxBoundContexts || contexts_.count(item.context_id);
        if (btfn && ctx_.config.btfn) {
            r.result = static_cast<std::uint16_t>(rpc::ContextResultCode::NegotiateAck);
            r.reason = rpc::btfn_bitmask(*btfn) & 0x0003;
        } else if (kms && room && ndr64 && ndr64_possible) {
            r.transfer = rpc::ndr64_syntax();
            contexts_[item.context_id] = rpc::Ndr::Ndr64;
        } else if (kms && room && ndr32 && !ndr64_possible) {
            r.transfer = rpc::ndr32_syntax();
            contexts_[item.context_id] = rpc::Ndr::Ndr32;
        } else {
            r.result = static_cast<std::uint16_t>(rpc::ContextResultCode::ProviderRejection);
            r.reason = kms ? 2 : 1;  // proposed_transfer_syntaxes_not_supported / abstract_syntax_not_supported
        }
        ack.results.push_back(r);
    }
    bool any_accepted = false;
    for (const auto& r : ack.results) any_accepted = any_accepted || r.result == 0;
    if (!any_accepted)
        out.events.push_back(
            {EventKind::ContextsRefused, pdu.header.ptype, pdu.header.call_id, 0,
             std::to_string(body.contexts.size()) + " offered; the KMS interface with NDR32 or NDR64 is required"});
    if (alter) {
        out.bytes = rpc::build_bind_ack(rpc::PduType::AlterContextResp, rpc::flag::kFirstLast, pdu.header.call_id, ack);
    } else {
        out.bytes = rpc::build_bind_ack(rpc::PduType::BindAck, pdu.header.flags, pdu.header.call_id, ack);
    }
}

void ServerConnection::answer_request(const rpc::Pdu& pdu, const Clock& clock, RandomSource& rng, Output& out) {
    const auto& body = std::get<rpc::RequestBody>(pdu.body);
    const std::uint32_t call_id = pdu.header.call_id;
    auto fault = [&](std::uint32_t status, std::string why) {
        out.bytes = rpc::build_fault(call_id, body.context_id, status);
        ActivationRecord rec;
        rec.time = clock.now();
        rec.call_id = call_id;
        rec.fault = status;
        rec.reason = why;  // copied: the event below takes it
        out.activations.push_back(std::move(rec));
        out.events.push_back({EventKind::Fault, pdu.header.ptype, call_id, status, std::move(why)});
    };
    auto ctx = contexts_.find(body.context_id);
    if (ctx == contexts_.end())
        return fault(kNcaUnknownInterface, "context id " + std::to_string(body.context_id) + " is not bound");
    if (body.opnum != 0 && ctx_.config.strict_opnum)
        return fault(kNcaOpRangeError, "opnum " + std::to_string(body.opnum) + " is not RequestActivation");
    if (ctx_.config.max_requests_per_connection && requests_ >= ctx_.config.max_requests_per_connection) {
        fault(0x1C010014,
              "more than " + std::to_string(ctx_.config.max_requests_per_connection) + " requests on one connection");
        out.close = true;
        return;
    }
    ++requests_;
    const rpc::Ndr ndr = ctx->second;
    KmsAnswer answer;
    auto stub = rpc::parse_request_stub(body.stub, ndr);
    if (!stub) {
        answer.hresult = kHrInvalidData;
        answer.record.time = clock.now();
        answer.record.hresult = kHrInvalidData;
        answer.record.reason = stub.error().to_string();
    } else {
        answer = answer_kms_request(ctx_, stub->message, clock, rng);
    }
    answer.record.call_id = call_id;
    Bytes reply_stub =
        answer.message ? rpc::build_response_stub(*answer.message, ndr) : rpc::build_error_stub(answer.hresult, ndr);
    out.bytes = rpc::build_response(rpc::flag::kFirstLast, call_id, body.context_id, reply_stub);
    if (!answer.message)
        out.events.push_back({EventKind::ErrorAnswer, pdu.header.ptype, call_id, answer.hresult, answer.record.reason});
    out.activations.push_back(std::move(answer.record));
}

}  // namespace kmscope::server
