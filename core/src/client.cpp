#include "kmscope/client.hpp"

#include "kmscope/dcerpc.hpp"

namespace kmscope::client {

RequestSpec spec_for_product(const Guid& product, const ProductTable& table) {
    RequestSpec spec;
    const ProductInfo* info = table.find(product);
    if (!info) {
        spec.sku_id = spec.kms_id = product;
        spec.app_id = *Guid::parse("55c92734-d682-4d71-983e-d6ec3f16059f");
        return spec;
    }
    const ProductInfo* kms = info;
    if (info->kind == ProductKind::Sku) {
        spec.sku_id = info->guid;
        if (info->kms) kms = table.find(*info->kms) ? table.find(*info->kms) : info;
    }
    if (kms->kind == ProductKind::Kms || kms->kind == ProductKind::Sku) {
        spec.kms_id = info->kms.value_or(kms->guid);
        if (kms->kind == ProductKind::Kms) spec.kms_id = kms->guid;
        if (info->kind != ProductKind::Sku) spec.sku_id = spec.kms_id;
    }
    if (info->app)
        spec.app_id = *info->app;
    else if (info->kind == ProductKind::App)
        spec.app_id = info->guid;
    if (info->n_policy) spec.n_policy = static_cast<std::uint32_t>(info->n_policy);
    if (info->protocol) spec.version = kms::Version{static_cast<std::uint16_t>(info->protocol), 0};
    return spec;
}

kms::BaseRequest make_base_request(const RequestSpec& spec, FileTime now) {
    kms::BaseRequest b;
    b.version = spec.version;
    b.vm_info = spec.vm ? 1 : 0;
    b.license_status = spec.license_status;
    b.binding_expiration = spec.binding_expiration;
    b.app_id = spec.app_id;
    b.sku_id = spec.sku_id;
    b.kms_id = spec.kms_id;
    b.cmid = spec.cmid;
    b.n_policy = spec.n_policy;
    b.client_time = now;
    b.previous_cmid = spec.previous_cmid;
    b.set_workstation(spec.workstation);
    return b;
}

ClientSession::ClientSession(ClientOptions options) : options_(options), next_call_id_(options.first_call_id) {
    ConversationOptions co;
    co.emit_pdu_events = false;
    conversation_ = Conversation(co);
}

Bytes ClientSession::bind() {
    rpc::BindBody body;
    body.max_xmit_frag = body.max_recv_frag = options_.max_frag;
    std::uint16_t id = 0;
    body.contexts.push_back({id++, rpc::kms_interface(), {rpc::ndr32_syntax()}});
    if (options_.offer_ndr64) body.contexts.push_back({id++, rpc::kms_interface(), {rpc::ndr64_syntax()}});
    if (options_.offer_btfn) body.contexts.push_back({id++, rpc::kms_interface(), {rpc::btfn_syntax(0x0003)}});
    std::uint8_t flags = rpc::flag::kFirstLast | (options_.conc_mpx ? rpc::flag::kConcMpx : 0);
    Bytes pdu = rpc::build_bind(rpc::PduType::Bind, flags, next_call_id_, body);
    conversation_.feed(Direction::ToServer, FileTime{}, pdu);
    return pdu;
}

namespace {
std::optional<std::uint16_t> context_with(const std::map<std::uint16_t, BoundContext>& bound, rpc::Ndr ndr) {
    for (const auto& [id, c] : bound)
        if (c.ndr() == ndr) return id;
    return std::nullopt;
}
}  // namespace

Bytes ClientSession::on_server_bytes(ByteView bytes, FileTime now) {
    conversation_.feed(Direction::ToClient, now, bytes);
    bool negotiated = false;
    for (auto& ev : conversation_.take_events()) {
        if (auto* n = std::get_if<ContextNegotiation>(&ev)) {
            negotiated = true;
            if (n->nak) failed_ = true;
        } else if (auto* e = std::get_if<Exchange>(&ev)) {
            exchanges_.push_back(std::move(*e));
        } else if (auto* d = std::get_if<Diagnostic>(&ev)) {
            diagnostics_.push_back(d->message);
        }
    }
    if (!negotiated || failed_) return {};
    const auto& bound = conversation_.contexts();
    auto ndr32 = context_with(bound, rpc::Ndr::Ndr32);
    auto ndr64 = context_with(bound, rpc::Ndr::Ndr64);
    if (!ndr32 && ndr64 && !alter_sent_) {
        // The host preferred NDR64; Windows then alter_contexts NDR32 for its first request.
        alter_sent_ = true;
        rpc::BindBody body;
        body.max_xmit_frag = body.max_recv_frag = options_.max_frag;
        body.contexts.push_back({0, rpc::kms_interface(), {rpc::ndr32_syntax()}});
        std::uint8_t flags = rpc::flag::kFirstLast | (options_.conc_mpx ? rpc::flag::kConcMpx : 0);
        Bytes pdu = rpc::build_bind(rpc::PduType::AlterContext, flags, next_call_id_, body);
        conversation_.feed(Direction::ToServer, now, pdu);
        return pdu;
    }
    if (!ndr32 && !ndr64) failed_ = true;
    return {};
}

bool ClientSession::ready() const {
    const auto& bound = conversation_.contexts();
    return context_with(bound, rpc::Ndr::Ndr32) || context_with(bound, rpc::Ndr::Ndr64);
}

std::optional<Bytes> ClientSession::request(const kms::BaseRequest& base, RandomSource& rng, FileTime now,
                                            std::optional<rpc::Ndr> ndr) {
    const auto& bound = conversation_.contexts();
    auto ndr32 = context_with(bound, rpc::Ndr::Ndr32);
    auto ndr64 = context_with(bound, rpc::Ndr::Ndr64);
    if (!ndr) {
        if (requests_sent_ == 0)
            ndr = ndr32 ? rpc::Ndr::Ndr32 : rpc::Ndr::Ndr64;
        else
            ndr = ndr64 ? rpc::Ndr::Ndr64 : rpc::Ndr::Ndr32;
    }
    auto ctx = *ndr == rpc::Ndr::Ndr32 ? ndr32 : ndr64;
    if (!ctx) return std::nullopt;
    Bytes message = kms::build_request_message(base, rng);
    Bytes pdu =
        rpc::build_request(rpc::flag::kFirstLast, next_call_id_++, *ctx, 0, rpc::build_request_stub(message, *ndr));
    conversation_.feed(Direction::ToServer, now, pdu);
    ++requests_sent_;
    return pdu;
}

void ClientSession::collect() {
    for (auto& ev : conversation_.take_events()) {
        if (auto* e = std::get_if<Exchange>(&ev))
            exchanges_.push_back(std::move(*e));
        else if (auto* d = std::get_if<Diagnostic>(&ev))
            diagnostics_.push_back(d->message);
    }
}

std::vector<Exchange> ClientSession::take_exchanges() {
    collect();
    std::vector<Exchange> out;
    out.swap(exchanges_);
    return out;
}

void ClientSession::finish(FileTime now) {
    conversation_.finish(now, EndReason::Closed);
    collect();
}

}  // namespace kmscope::client
