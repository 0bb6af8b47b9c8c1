// The bridge between Wireshark and the kmscope core (see kms_bridge.hpp). Every entry point catches
// everything: no C++ exception may reach Wireshark.
#include "kms_bridge.hpp"

#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "kmscope/conversation.hpp"
#include "kmscope/epid.hpp"
#include "kmscope/fingerprint.hpp"
#include "kmscope/ndr.hpp"
#include "kmscope/products.hpp"
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

void add_failed(wmem_allocator_t* scope, TextList& list, const kms::Verdict& v) {
    for (auto c : v.failed) add_text(scope, list, kms::check_name(c), kms::check_description(c), c == kms::Check::Count);
}

template <std::size_t N>
void copy(guint8 (&dst)[N], const std::array<std::uint8_t, N>& src) {
    std::memcpy(dst, src.data(), N);
}

/// Fingerprints per server endpoint and conversations per TCP connection, kept for one capture file.
std::mutex g_fingerprints_mu;
std::map<std::string, ServerFingerprint>* g_fingerprints = nullptr;
std::map<guint32, Conversation>* g_connections = nullptr;
std::map<std::string, std::size_t>* g_reported_tells = nullptr;  // tells already shown, per server

ServerFingerprint& fingerprint_for(const char* server_key) {
    if (!g_fingerprints) g_fingerprints = new std::map<std::string, ServerFingerprint>();
    return (*g_fingerprints)[server_key];
}

void fill_request(wmem_allocator_t* scope, const kms::DecodedRequest& q, RequestView* out) {
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
    out->license_status_name = dup(scope, license_status_name(b.license_status));
    out->app = product_view(scope, b.app_id);
    out->sku = product_view(scope, b.sku_id);
    out->kms = product_view(scope, b.kms_id);
    out->cmid = plain_view(b.cmid);
    out->previous_cmid = plain_view(b.previous_cmid);
    out->client_time = time_view(b.client_time);
    out->workstation = dup(scope, b.workstation());
    out->cmid_text = dup(scope, b.cmid.to_string());
    // On the request frame a failed "version" check means the request's own version is unsupported
    // (the core's description speaks of the response, which is the exchange-level meaning).
    for (auto c : kms::verify_request(q).failed) {
        if (c == kms::Check::Version)
            add_text(scope, out->failed, kms::check_name(c), "unsupported protocol version " + q.version.to_string());
        else
            add_text(scope, out->failed, kms::check_name(c), kms::check_description(c));
    }
}

void fill_epid(const std::string& epid, EpidView& v) {
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
    sys_days day = sys_days{year{parts->year} / January / 1} + days{parts->day_of_year > 0 ? parts->day_of_year - 1 : 0};
    v.date = TimeView{day.time_since_epoch().count() * 86400LL, 0};
}

void fill_response(wmem_allocator_t* scope, const kms::DecodedResponse& p, ResponseView* out) {
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
    fill_epid(p.base.epid, out->epid_parts);
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
}

/// Feeds an exchange to its server's fingerprint; the verdict and the tells not shown yet (including those
/// of the bind answers of this server's connections) go to `out`.
void observe_exchange(wmem_allocator_t* scope, const char* server_key, const Exchange& x, ResponseView* out) {
    std::lock_guard<std::mutex> lock(g_fingerprints_mu);
    ServerFingerprint& fp = fingerprint_for(server_key);
    fp.observe(x);
    out->server_impl = server_impl_name(fp.verdict());
    if (!g_reported_tells) g_reported_tells = new std::map<std::string, std::size_t>();
    std::size_t& reported = (*g_reported_tells)[server_key];
    for (std::size_t i = reported; i < fp.tells().size(); ++i)
        add_text(scope, out->new_tells, "emulator", fp.tells()[i]);
    reported = fp.tells().size();
}

std::string verdict_text(const kms::Verdict& v) {
    if (v.ok()) return "ok";
    std::string s = "FAIL";
    for (auto c : v.failed) s += std::string(" ") + std::string(kms::check_name(c));
    return s;
}

}  // namespace

void decode_request_stub(wmem_allocator_t* scope, const guint8* stub, std::size_t len, bool ndr64, bool decrypt,
                         RequestView* out) noexcept {
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
        fill_request(scope, *q, out);
    } catch (const std::exception& e) {
        out->error = dup(scope, std::string("internal error: ") + e.what());
    } catch (...) {
        out->error = "internal error";
    }
}

void decode_response_stub(wmem_allocator_t* scope, const guint8* stub, std::size_t len, bool ndr64, bool decrypt,
                          const guint8* request_message, std::size_t request_len, const char* server_key,
                          guint32 call_id, ResponseView* out) noexcept {
    try {
        out->verdict = "unverified";
        ByteView bytes(stub, stub ? len : 0);
        auto framed = rpc::parse_response_stub(bytes, ndr64 ? rpc::Ndr::Ndr64 : rpc::Ndr::Ndr32);
        if (!framed) {
            out->error = dup(scope, framed.error().to_string());
            return;
        }
        for (const auto& a : framed->anomalies) add_text(scope, out->anomalies, "rpc", a);
        out->hresult = framed->return_value;
        out->hresult_name = dup(scope, hresult_name(framed->return_value));
        std::optional<kms::DecodedRequest> q;
        if (request_message && request_len) {
            auto decoded = kms::decode_request(ByteView(request_message, request_len));
            if (decoded) q = std::move(*decoded);
        }
        if (!framed->message) {
            out->is_hresult = true;
            out->verdict = dup(scope, "HRESULT " + hex32(framed->return_value) +
                                          (out->hresult_name[0] ? std::string(" ") + out->hresult_name : ""));
            if (server_key) {
                Exchange x;
                x.call_id = call_id;
                x.outcome = Outcome::Hresult;
                x.hresult = framed->return_value;
                x.request = std::move(q);
                observe_exchange(scope, server_key, x, out);
            }
            return;
        }
        out->msg_offset = static_cast<guint32>(framed->message_offset);
        out->msg_len = static_cast<guint32>(framed->message->size());
        if (auto v = kms::peek_version(*framed->message)) {
            out->have_version = true;
            out->major = v->major;
            out->minor = v->minor;
            if (!decrypt && v->major >= 5) {
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
        fill_response(scope, *p, out);
        if (q) {
            kms::Verdict v = kms::verify_exchange(*q, *p);
            if (!framed->anomalies.empty()) v.fail(kms::Check::Rpc);
            out->verified = true;
            out->valid = v.ok();
            add_failed(scope, out->failed, v);
            out->verdict = dup(scope, verdict_text(v));
        }
        if (server_key) {
            Exchange x;
            x.call_id = call_id;
            x.ndr = ndr64 ? rpc::Ndr::Ndr64 : rpc::Ndr::Ndr32;
            x.outcome = Outcome::Response;
            x.request = std::move(q);
            x.response = std::move(*p);
            observe_exchange(scope, server_key, x, out);
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
        switch (static_cast<rpc::PduType>(h->ptype)) {
            case rpc::PduType::Bind:
            case rpc::PduType::BindAck:
            case rpc::PduType::BindNak:
            case rpc::PduType::AlterContext:
            case rpc::PduType::AlterContextResp:
                return true;
            default:
                return false;
        }
    } catch (...) {
        return false;
    }
}

void observe_segment(guint32 connection, const char* server_key, bool to_server, const guint8* bytes,
                     std::size_t len, gint64 secs, gint32 nsecs) noexcept {
    try {
        std::lock_guard<std::mutex> lock(g_fingerprints_mu);
        if (!g_connections) g_connections = new std::map<guint32, Conversation>();
        auto it = g_connections->find(connection);
        if (it == g_connections->end()) {
            ConversationOptions options;
            options.emit_pdu_events = false;
            it = g_connections->try_emplace(connection, options).first;
        }
        FileTime t{FileTime::from_unix(secs).ticks + static_cast<std::uint64_t>(nsecs) / 100};
        it->second.feed(to_server ? Direction::ToServer : Direction::ToClient, t, ByteView(bytes, len));
        ServerFingerprint& fp = fingerprint_for(server_key);
        bool answered = false;
        for (const auto& e : it->second.take_events())
            if (const auto* n = std::get_if<ContextNegotiation>(&e)) {
                fp.observe(*n);
                answered = true;
            }
        // Only bind-type PDUs are fed, so once the answer is in nothing is pending: free the model (a
        // later bind or alter_context on the connection starts a fresh one).
        if (answered && it->second.pending_requests() == 0) g_connections->erase(it);
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
            for (auto ndr : {rpc::Ndr::Ndr32, rpc::Ndr::Ndr64}) {
                auto framed = rpc::parse_request_stub(q->stub, ndr);
                if (!framed) continue;
                auto v = kms::peek_version(framed->message);
                if (v && v->major >= 4 && v->major <= 6) {
                    out->ndr = ndr == rpc::Ndr::Ndr32 ? 32 : 64;
                    break;
                }
            }
        } else if (const auto* r = std::get_if<rpc::ResponseBody>(&pdu->body)) {
            out->ok = true;
            out->stub_offset = static_cast<guint32>(r->stub_offset);
            out->stub_length = static_cast<guint32>(r->stub.size());
            for (auto ndr : {rpc::Ndr::Ndr32, rpc::Ndr::Ndr64}) {
                auto framed = rpc::parse_response_stub(r->stub, ndr);
                if (framed && framed->anomalies.empty()) {
                    out->ndr = ndr == rpc::Ndr::Ndr32 ? 32 : 64;
                    break;
                }
            }
        } else {
            out->ok = true;
        }
    } catch (...) {
        *out = PduView{};
    }
}

void reset_fingerprints() noexcept {
    std::lock_guard<std::mutex> lock(g_fingerprints_mu);
    delete g_fingerprints;
    g_fingerprints = nullptr;
    delete g_connections;
    g_connections = nullptr;
    delete g_reported_tells;
    g_reported_tells = nullptr;
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
