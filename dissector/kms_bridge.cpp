// The bridge between Wireshark and the kmscope core (see kms_bridge.hpp). Every entry point catches
// everything: no C++ exception may reach Wireshark.
#include "kms_bridge.hpp"

#include <chrono>
#include <cstring>
#include <string>
#include <string_view>

#include "kms_capture_state.hpp"
#include "kmscope/conversation.hpp"
#include "kmscope/epid.hpp"
#include "kmscope/kms_expected.hpp"
#include "kmscope/ndr.hpp"
#include "kmscope/outcome.hpp"
#include "kmscope/products.hpp"
#include "kmscope/rpc_checks.hpp"
#include "kmscope/status.hpp"

namespace kmsdiss {

namespace {

using namespace kmscope;

const char* dup(wmem_allocator_t* scope, std::string_view s) {
    return wmem_strndup(scope, s.data(), s.size());
}

TimeView time_view(FileTime t) {
    std::int64_t secs = t.unix_seconds();
    std::uint64_t whole = FileTime::from_unix(secs).ticks;
    return TimeView{secs, static_cast<gint32>((t.ticks - whole) * 100)};
}

/// A product GUID with its name from the built-in table (the GUID text when unknown).
GuidView product_view(wmem_allocator_t* scope, const Guid& g) {
    GuidView v{};
    std::memcpy(v.wire, g.wire.data(), 16);
    const ProductInfo* info = ProductTable::builtin().find(g);
    v.known = info != nullptr;
    v.name = info ? info->name.c_str() : dup(scope, g.to_string());  // table rows live as long as the process
    return v;
}

/// A GUID that names no product (CMIDs).
GuidView plain_view(const Guid& g) {
    GuidView v{};
    std::memcpy(v.wire, g.wire.data(), 16);
    return v;
}

void add_text(wmem_allocator_t* scope, TextList& list, std::string_view name, std::string_view text,
              bool is_count = false) {
    if (list.n >= kMaxItems) return;
    list.name[list.n] = dup(scope, name);
    list.text[list.n] = dup(scope, text);
    list.is_count[list.n] = is_count;
    ++list.n;
}

/// A text the core returns as a view of a string literal: NUL-terminated and alive for the process, so it
/// needs no copy. An empty view (possibly with a NULL data pointer) becomes "".
const char* literal(std::string_view s) {
    return s.empty() ? "" : s.data();
}

/// Names and descriptions of failed checks: both are literals of the core.
void add_failed(TextList& list, const CheckList& checks) {
    for (int i = 0; i < checks.n && list.n < kMaxItems; ++i) {
        auto c = static_cast<kms::Check>(checks.code[i]);
        list.name[list.n] = literal(kms::check_name(c));
        list.text[list.n] = literal(kms::check_description(c));
        list.is_count[list.n] = c == kms::Check::Count;
        ++list.n;
    }
}

CheckList check_list(const kms::Verdict& v) {
    CheckList out{};
    for (auto c : v.failed)
        if (out.n < kMaxItems) out.code[out.n++] = static_cast<guint8>(c);
    return out;
}

template <std::size_t N>
void copy(guint8 (&dst)[N], const std::array<std::uint8_t, N>& src) {
    std::memcpy(dst, src.data(), N);
}

/// The request of a response: the kept decoded copy, else the stored message decoded again.
std::optional<kms::DecodedRequest> request_for(const ResponseInput& in) {
    if (auto kept = capture_file_state().take_request(in.request_key)) return kept;
    if (!in.request_message || !in.request_len) return std::nullopt;
    auto decoded = kms::decode_request(ByteView(in.request_message, in.request_len));
    if (!decoded) return std::nullopt;
    return std::move(*decoded);
}

void fill_request(wmem_allocator_t* scope, const kms::DecodedRequest& q, ByteView message, unsigned want,
                  RequestView* out) {
    out->decoded = true;
    out->encrypted = q.encrypted();
    copy(out->iv, q.iv);
    copy(out->mac, q.mac);
    if (q.encrypted() && !q.plaintext.empty()) {
        out->plaintext = static_cast<const guint8*>(wmem_memdup(scope, q.plaintext.data(), q.plaintext.size()));
        out->plaintext_len = static_cast<guint32>(q.plaintext.size());
    }
    const auto& b = q.base;
    out->vm_info = b.vm_info;
    out->license_status = b.license_status;
    out->binding_expiration = b.binding_expiration;
    out->n_policy = b.n_policy;
    // Every product GUID is looked up: an unknown one is an expert info, which the first pass needs.
    out->sku = product_view(scope, b.sku_id);
    out->app = product_view(scope, b.app_id);
    out->kms = product_view(scope, b.kms_id);
    out->cmid = plain_view(b.cmid);
    out->previous_cmid = plain_view(b.previous_cmid);
    out->client_time = time_view(b.client_time);
    out->workstation = dup(scope, b.workstation());
    if (want & kWantTapText) {
        out->license_status_name = literal(license_status_name(b.license_status));
        out->cmid_text = dup(scope, b.cmid.to_string());
    }
    if (!q.encrypted()) {
        out->mac_status = q.mac_ok ? kCheckGood : kCheckBad;
        if (!q.mac_ok && (want & kWantTree))
            if (auto mac = kms::expected_request_mac(message)) {
                out->has_mac_expected = true;
                copy(out->mac_expected, *mac);
            }
    }
    // On the request frame a failed "version" check means the request's own version is unsupported
    // (the core's description speaks of the response, which is the exchange-level meaning).
    for (auto c : kms::verify_request(q).failed) {
        if (c == kms::Check::Version)
            add_text(scope, out->failed, kms::check_name(c), "unsupported protocol version " + q.version.to_string());
        else
            add_text(scope, out->failed, kms::check_name(c), kms::check_description(c));
    }
}

void fill_epid(wmem_allocator_t* scope, const std::string& epid, EpidView& v) {
    auto parts = parse_epid(epid);
    if (!parts) return;
    v.parsed = true;
    v.platform = parts->platform;
    v.group = parts->group;
    v.key_id = parts->key_id;
    v.channel = parts->channel;
    v.lcid = parts->lcid;
    v.build = parts->build;
    using namespace std::chrono;
    sys_days day =
        sys_days{year{parts->year} / January / 1} + days{parts->day_of_year > 0 ? parts->day_of_year - 1 : 0};
    v.date = TimeView{day.time_since_epoch().count() * 86400LL, 0};
    const year_month_day ymd{day};
    static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const unsigned month = static_cast<unsigned>(ymd.month());
    const int y = static_cast<int>(ymd.year());
    const unsigned d = static_cast<unsigned>(ymd.day());
    v.date_iso = wmem_strdup_printf(scope, "%04d-%02u-%02u", y, month, d);
    v.date_text = wmem_strdup_printf(scope, "%s %u, %d", kMonths[(month + 11) % 12], d, y);
    // The last dash-separated part of the ePID, DDDYYYY (parse_epid accepted it).
    const auto dash = epid.rfind('-');
    v.day_year = dup(scope, dash == std::string::npos ? std::string_view() : std::string_view(epid).substr(dash + 1));
}

void fill_response(wmem_allocator_t* scope, const kms::DecodedResponse& p, ByteView message, unsigned want,
                   ResponseView* out) {
    out->decoded = true;
    out->encrypted = p.encrypted();
    copy(out->iv, p.iv);
    copy(out->mac, p.mac);
    if (p.encrypted() && !p.plaintext.empty()) {
        out->plaintext = static_cast<const guint8*>(wmem_memdup(scope, p.plaintext.data(), p.plaintext.size()));
        out->plaintext_len = static_cast<guint32>(p.plaintext.size());
    }
    out->layout = kms::layout::response_layout(p.base.pid_size, p.version.major);
    out->pid_size = p.base.pid_size;
    out->epid = dup(scope, p.base.epid);
    if (want & kWantTree) fill_epid(scope, p.base.epid, out->epid_parts);  // the parts are tree items only
    std::memcpy(out->cmid, p.base.cmid.wire.data(), 16);
    out->client_time = time_view(p.base.client_time);
    out->count = p.base.count;
    out->activation_interval = p.base.activation_interval;
    out->renewal_interval = p.base.renewal_interval;
    copy(out->random_xored_ivs, p.random_xored_ivs);
    copy(out->hash, p.hash);
    copy(out->xored_ivs, p.xored_ivs);
    copy(out->hmac, p.hmac);
    if (p.hwid) {
        out->has_hwid = true;
        copy(out->hwid, p.hwid->bytes);
    }
    // The MAC and the HMAC depend on the response alone; the hash on the request (set_verdict).
    out->hash_status = kCheckUnverified;
    if (!p.encrypted()) {
        out->mac_status = p.mac_ok ? kCheckGood : kCheckBad;
        if (!p.mac_ok && (want & kWantTree))
            if (auto mac = kms::expected_response_mac(p, message)) {
                out->has_mac_expected = true;
                copy(out->mac_expected, *mac);
            }
    } else if (p.version.major >= 6) {
        out->hmac_status = p.hmac_ok ? kCheckGood : kCheckBad;
        if (!p.hmac_ok && (want & kWantTree))
            if (auto mac = kms::expected_hmac(p)) {
                out->has_hmac_expected = true;
                copy(out->hmac_expected, *mac);
            }
    }
}

/// Feeds an exchange to its server's fingerprint; the verdict and the tells not shown yet go to `out`.
void observe_exchange(wmem_allocator_t* scope, const char* server_key, const Exchange& x, ResponseView* out) {
    auto news = capture_file_state().observe_exchange(server_key, x);
    out->server_impl = news.server_impl;
    for (const auto& tell : news.new_tells) add_text(scope, out->new_tells, "emulator", tell);
}

/// True when check `hash` is among `checks`.
bool kept_hash_failed(const CheckList& checks) {
    for (int i = 0; i < checks.n; ++i)
        if (checks.code[i] == static_cast<guint8>(kms::Check::Hash)) return true;
    return false;
}

/// The core's wording (outcome.hpp) of a verified response's verdict, as every tool prints it.
const char* verdict_text(wmem_allocator_t* scope, const CheckList& checks) {
    kms::Verdict v;
    for (int i = 0; i < checks.n; ++i) v.failed.push_back(static_cast<kms::Check>(checks.code[i]));
    return dup(scope, kmscope::verdict_text(Outcome::Response, v, true, 0));
}

/// The response header anomalies (the core's rules) of a response whose stub framed as `framed`.
void add_header_anomalies(wmem_allocator_t* scope, const ResponseInput& in, const rpc::ResponseStub* framed,
                          ResponseView* out) {
    if (!in.header || !in.header->present) return;
    rpc::ResponseHeaderFacts facts;
    facts.flags = in.header->flags;
    facts.context_id = in.header->context_id;
    facts.cancel_count = in.header->cancel_count;
    facts.alloc_hint = in.header->alloc_hint;
    if (in.header->has_request_context) facts.request_context_id = in.header->request_context_id;
    if (framed && framed->message) facts.message_size = framed->message->size();
    facts.ndr = in.ndr64 ? rpc::Ndr::Ndr64 : rpc::Ndr::Ndr32;
    // Named by kind: the dissector raises each kind's own expert info.
    for (const auto& a : rpc::response_header_anomalies(facts))
        add_text(scope, out->header_anomalies, rpc::rpc_anomaly_name(a.kind), a.text);
}

/// The verdict of a decoded response: the one an earlier pass kept, else verify_exchange on the request plus
/// the RPC checks (stub and header anomalies both fail `rpc`, as in the conversation model).
void set_verdict(wmem_allocator_t* scope, const ResponseInput& in, const std::optional<kms::DecodedRequest>& q,
                 const kms::DecodedResponse& p, bool rpc_anomalies, ResponseView* out) {
    if (in.kept_verdict) {
        out->checks = *in.kept_verdict;
    } else if (q) {
        kms::Verdict v = kms::verify_exchange(*q, p);
        if (rpc_anomalies) v.fail(kms::Check::Rpc);
        out->checks = check_list(v);
    } else {
        return;
    }
    out->verified = true;
    out->valid = out->checks.n == 0;
    add_failed(out->failed, out->checks);
    if (in.want & kWantTapText) out->verdict = verdict_text(scope, out->checks);
    if (p.encrypted()) {
        const bool hash_failed = kept_hash_failed(out->checks);
        out->hash_status = hash_failed ? kCheckBad : kCheckGood;
        if (hash_failed && q && (in.want & kWantTree)) {
            out->has_hash_expected = true;
            copy(out->hash_expected, kms::expected_hash(*q, p));
        }
    }
}

}  // namespace

void decode_request_stub(wmem_allocator_t* scope, const guint8* stub, std::size_t len, bool ndr64, bool decrypt,
                         unsigned want, const void* keep, RequestView* out) noexcept {
    try {
        ByteView bytes(stub, stub ? len : 0);
        auto framed = rpc::parse_request_stub(bytes, ndr64 ? rpc::Ndr::Ndr64 : rpc::Ndr::Ndr32);
        if (!framed) {
            out->error = dup(scope, framed.error().to_string());
            return;
        }
        out->msg_offset = static_cast<guint32>(framed->message_offset);
        out->msg_len = static_cast<guint32>(framed->message.size());
        out->trailing = static_cast<guint32>(framed->trailing);
        if (auto v = kms::peek_version(framed->message)) {
            out->have_version = true;
            out->major = v->major;
            out->minor = v->minor;
            if (!decrypt && v->major >= 5) {
                out->encrypted = true;
                out->decrypt_skipped = true;
                if (framed->message.size() >= kms::layout::kEnvCiphertext)
                    std::memcpy(out->iv, framed->message.data() + kms::layout::kEnvIv, 16);
                return;
            }
        }
        auto q = kms::decode_request(framed->message, framed->message_offset);
        if (!q) {
            out->error = dup(scope, q.error().to_string());
            return;
        }
        fill_request(scope, *q, framed->message, want, out);
        if (keep) capture_file_state().keep_request(keep, std::move(*q));
    } catch (const std::exception& e) {
        out->error = dup(scope, std::string("internal error: ") + e.what());
    } catch (...) {
        out->error = "internal error";
    }
}

void decode_response_stub(wmem_allocator_t* scope, const ResponseInput& in, ResponseView* out) noexcept {
    try {
        out->verdict = "unverified";
        const rpc::Ndr ndr = in.ndr64 ? rpc::Ndr::Ndr64 : rpc::Ndr::Ndr32;
        auto framed = rpc::parse_response_stub(ByteView(in.stub, in.stub ? in.len : 0), ndr);
        add_header_anomalies(scope, in, framed ? &*framed : nullptr, out);
        if (!framed) {
            out->error = dup(scope, framed.error().to_string());
            return;
        }
        for (const auto& a : framed->anomalies) add_text(scope, out->anomalies, rpc::rpc_anomaly_name(a.kind), a.text);
        const bool rpc_anomalies = out->anomalies.n > 0 || out->header_anomalies.n > 0;
        out->hresult = framed->return_value;
        out->hresult_name = literal(hresult_name(framed->return_value));
        // A kept verdict makes the request unnecessary, except for the hash it should carry when that check
        // failed (shown in a tree); else it is needed to verify (and to fingerprint).
        std::optional<kms::DecodedRequest> q;
        if (!in.kept_verdict || ((in.want & kWantTree) && kept_hash_failed(*in.kept_verdict))) q = request_for(in);
        if (!framed->message) {
            out->is_hresult = true;
            if (in.want & kWantTapText)
                out->verdict =
                    dup(scope, kmscope::verdict_text(Outcome::Hresult, kms::Verdict{}, false, framed->return_value));
            if (in.server_key) {
                Exchange x;
                x.call_id = in.call_id;
                x.outcome = Outcome::Hresult;
                x.hresult = framed->return_value;
                x.request = std::move(q);
                observe_exchange(scope, in.server_key, x, out);
            }
            return;
        }
        out->msg_offset = static_cast<guint32>(framed->message_offset);
        out->msg_len = static_cast<guint32>(framed->message->size());
        if (auto v = kms::peek_version(*framed->message)) {
            out->have_version = true;
            out->major = v->major;
            out->minor = v->minor;
            if (!in.decrypt && v->major >= 5) {
                out->encrypted = true;
                out->decrypt_skipped = true;
                if (framed->message->size() >= kms::layout::kEnvCiphertext)
                    std::memcpy(out->iv, framed->message->data() + kms::layout::kEnvIv, 16);
                return;
            }
        }
        auto p = kms::decode_response(*framed->message, framed->message_offset);
        if (!p) {
            out->error = dup(scope, p.error().to_string());
            return;
        }
        fill_response(scope, *p, *framed->message, in.want, out);
        set_verdict(scope, in, q, *p, rpc_anomalies, out);
        if (in.server_key) {
            Exchange x;
            x.call_id = in.call_id;
            x.ndr = ndr;
            x.outcome = Outcome::Response;
            x.request = std::move(q);
            x.response = std::move(*p);
            observe_exchange(scope, in.server_key, x, out);
        }
    } catch (const std::exception& e) {
        out->error = dup(scope, std::string("internal error: ") + e.what());
    } catch (...) {
        out->error = "internal error";
    }
}

bool is_kms_bind(const guint8* bytes, std::size_t len) noexcept {
    try {
        if (!bytes) return false;
        auto pdu = rpc::parse_pdu(ByteView(bytes, len));
        if (!pdu) return false;
        const auto* bind = std::get_if<rpc::BindBody>(&pdu->body);
        if (!bind) return false;
        for (const auto& item : bind->contexts)
            if (item.abstract == rpc::kms_interface()) return true;
    } catch (...) {
    }
    return false;
}

bool starts_with_bind_pdu(const guint8* bytes, std::size_t len) noexcept {
    try {
        if (!bytes) return false;
        auto h = rpc::parse_header(ByteView(bytes, len));
        if (!h || h->frag_length > len) return false;  // only whole PDUs (TCP hands us reassembled ones later)
        return rpc::negotiates_context(h->ptype);
    } catch (...) {
        return false;
    }
}

void observe_segment(guint32 connection, const char* server_key, bool to_server, const guint8* bytes, std::size_t len,
                     gint64 secs, gint32 nsecs) noexcept {
    try {
        FileTime t{FileTime::from_unix(secs).ticks + static_cast<std::uint64_t>(nsecs) / 100};
        capture_file_state().observe_segment(
            connection, server_key, to_server ? Direction::ToServer : Direction::ToClient, t, ByteView(bytes, len));
    } catch (...) {
    }
}

void parse_pdu_view(const guint8* bytes, std::size_t len, PduView* out) noexcept {
    try {
        *out = PduView{};
        if (!bytes) return;
        auto h = rpc::parse_header(ByteView(bytes, len));
        if (!h || h->frag_length > len) return;
        auto pdu = rpc::parse_pdu(ByteView(bytes, h->frag_length));
        if (!pdu) return;
        out->ptype = pdu->header.ptype;
        out->frag_length = pdu->header.frag_length;
        out->call_id = pdu->header.call_id;
        if (const auto* q = std::get_if<rpc::RequestBody>(&pdu->body)) {
            out->ok = true;
            out->opnum = q->opnum;
            out->stub_offset = static_cast<guint32>(q->stub_offset);
            out->stub_length = static_cast<guint32>(q->stub.size());
            // The core's inference, then a KMS version: a request the heuristic must not take for KMS stays 0.
            if (auto ndr = rpc::infer_request_ndr(q->stub)) {
                auto framed = rpc::parse_request_stub(q->stub, *ndr);
                auto v = framed ? kms::peek_version(framed->message) : std::nullopt;
                if (v && v->major >= 4 && v->major <= 6) out->ndr = *ndr == rpc::Ndr::Ndr32 ? 32 : 64;
            }
        } else if (const auto* r = std::get_if<rpc::ResponseBody>(&pdu->body)) {
            out->ok = true;
            out->stub_offset = static_cast<guint32>(r->stub_offset);
            out->stub_length = static_cast<guint32>(r->stub.size());
            if (auto ndr = rpc::infer_response_ndr(r->stub)) out->ndr = *ndr == rpc::Ndr::Ndr32 ? 32 : 64;
        } else {
            out->ok = true;
        }
    } catch (...) {
        *out = PduView{};
    }
}

void check_names(const CheckList& checks, TextList* out) noexcept {
    add_failed(*out, checks);  // literals of the core: nothing allocates
}

void forget_capture_file() noexcept {
    try {
        capture_file_state().clear();
    } catch (...) {
    }
}

InterfaceView kms_interface_view() noexcept {
    InterfaceView v{};
    try {
        const rpc::SyntaxId& kms = rpc::kms_interface();
        std::memcpy(v.uuid, kms.uuid.wire.data(), sizeof v.uuid);
        v.version = static_cast<guint16>(kms.version);  // the major version (low half; the minor, 0, is the high)
    } catch (...) {
    }
    return v;
}

const char* license_status_text(guint32 status) noexcept {
    // The core returns views of string literals; they are NUL-terminated.
    return license_status_name(status).data();
}

const char* hresult_text(guint32 hr) noexcept {
    auto n = hresult_name(hr);
    if (n.empty()) n = nca_status_name(hr);
    return n.empty() ? nullptr : n.data();
}

}  // namespace kmsdiss
