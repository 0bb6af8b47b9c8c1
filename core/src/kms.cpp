#include "kmscope/kms.hpp"

#include <algorithm>

#include "kmscope/crypto.hpp"

namespace kmscope::kms {

namespace {

Block to_block(ByteView b) {
    Block out{};
    std::copy_n(b.begin(), std::min<std::size_t>(16, b.size()), out.begin());
    return out;
}

Block xor_blocks(const Block& a, const Block& b) {
    Block out{};
    for (std::size_t i = 0; i < 16; ++i) out[i] = a[i] ^ b[i];
    return out;
}

const crypto::BlockCipher& cipher(Version v) {
    return crypto::cipher_for_major(v.major);
}

// Clients may deliberately send versions a server must refuse (vlmcs -K 7.0): such requests are
// built with the envelope of the nearest real version.
const crypto::BlockCipher& cipher_for_building(Version v) {
    return crypto::cipher_for_major(v.major >= 6 ? 6 : 5);
}

}  // namespace

layout::ResponseLayout layout::response_layout(std::uint32_t pid_size, int major) {
    ResponseLayout l;
    l.cmid = 8 + pid_size;
    l.client_time = l.cmid + 16;
    l.count = l.client_time + 8;
    l.activation_interval = l.count + 4;
    l.renewal_interval = l.activation_interval + 4;
    l.base_end = l.renewal_interval + 4;
    if (major >= 5) {
        l.random_xored_ivs = l.base_end;
        l.hash = l.random_xored_ivs + 16;
        l.body_end = l.hash + 32;
        if (major >= 6) {
            l.hwid = l.body_end;
            l.xored_ivs = l.hwid + 8;
            l.hmac = l.xored_ivs + 16;
            l.body_end = l.hmac + 16;
        }
    } else {
        l.body_end = l.base_end + kMacSize;
    }
    return l;
}

std::string Version::to_string() const {
    return std::to_string(major) + "." + std::to_string(minor);
}

std::optional<Version> peek_version(ByteView message) {
    if (message.size() < 4) return std::nullopt;
    return Version{load_u16le(message.data() + 2), load_u16le(message.data())};
}

// ---- base request -----------------------------------------------------------------------------

std::string BaseRequest::workstation() const {
    return utf16le_to_utf8(workstation_raw, true);
}

void BaseRequest::set_workstation(std::string_view utf8) {
    workstation_raw.fill(0);
    Bytes units = utf8_to_utf16le(utf8);
    std::size_t n = std::min(units.size(), kWorkstationBytes - 2);
    // Never cut a surrogate pair in half.
    if (n >= 2 && n < units.size()) {
        std::uint16_t last = load_u16le(units.data() + n - 2);
        if (last >= 0xD800 && last <= 0xDBFF) n -= 2;
    }
    std::copy_n(units.begin(), n, workstation_raw.begin());
}

Result<BaseRequest> parse_base_request(ByteView bytes, std::size_t base_offset) {
    Reader r(bytes, base_offset);
    BaseRequest q;
    q.version.minor = r.u16le("version.minor");
    q.version.major = r.u16le("version.major");
    q.vm_info = r.u32le("vm_info");
    q.license_status = r.u32le("license_status");
    q.binding_expiration = r.u32le("binding_expiration");
    q.app_id = r.guid("app_id");
    q.sku_id = r.guid("sku_id");
    q.kms_id = r.guid("kms_id");
    q.cmid = r.guid("cmid");
    q.n_policy = r.u32le("n_policy");
    q.client_time.ticks = r.u64le("client_time");
    q.previous_cmid = r.guid("previous_cmid");
    auto ws = r.bytes(kWorkstationBytes, "workstation");
    if (!r.ok()) return *r.error();
    std::copy(ws.begin(), ws.end(), q.workstation_raw.begin());
    return q;
}

void write_base_request(Writer& w, const BaseRequest& q) {
    w.u16le(q.version.minor);
    w.u16le(q.version.major);
    w.u32le(q.vm_info);
    w.u32le(q.license_status);
    w.u32le(q.binding_expiration);
    w.guid(q.app_id);
    w.guid(q.sku_id);
    w.guid(q.kms_id);
    w.guid(q.cmid);
    w.u32le(q.n_policy);
    w.u64le(q.client_time.ticks);
    w.guid(q.previous_cmid);
    w.bytes(q.workstation_raw);
}

// ---- base response ----------------------------------------------------------------------------

namespace {
constexpr std::uint32_t kMaxPidSize = 128;

bool pid_well_formed(ByteView pid) {
    if (pid.size() < 2 || pid.size() % 2 || pid.size() > kMaxPidSize) return false;
    for (std::size_t i = 0; i + 2 < pid.size(); i += 2)
        if (load_u16le(pid.data() + i) == 0) return false;
    return load_u16le(pid.data() + pid.size() - 2) == 0;
}
}  // namespace

Result<BaseResponse> parse_base_response(ByteView bytes, std::size_t base_offset) {
    Reader r(bytes, base_offset);
    BaseResponse p;
    p.version.minor = r.u16le("version.minor");
    p.version.major = r.u16le("version.major");
    p.pid_size = r.u32le("pid_size");
    if (r.ok() && p.pid_size > r.remaining())
        r.fail("pid_size", "PIDSize " + std::to_string(p.pid_size) + " exceeds the " + std::to_string(r.remaining()) +
                               " bytes left");
    auto pid = r.bytes(p.pid_size, "epid");
    p.cmid = r.guid("cmid");
    p.client_time.ticks = r.u64le("client_time");
    p.count = r.u32le("count");
    p.activation_interval = r.u32le("activation_interval");
    p.renewal_interval = r.u32le("renewal_interval");
    if (!r.ok()) return *r.error();
    p.epid = utf16le_to_utf8(pid, true);
    p.pid_well_formed = pid_well_formed(pid);
    if (auto parts = parse_epid(p.epid)) p.epid_parts = *parts;
    return p;
}

void write_base_response(Writer& w, const BaseResponse& p) {
    Bytes pid = utf8_to_utf16le(p.epid);
    pid.push_back(0);
    pid.push_back(0);
    w.u16le(p.version.minor);
    w.u16le(p.version.major);
    w.u32le(static_cast<std::uint32_t>(pid.size()));
    w.bytes(pid);
    w.guid(p.cmid);
    w.u64le(p.client_time.ticks);
    w.u32le(p.count);
    w.u32le(p.activation_interval);
    w.u32le(p.renewal_interval);
}

// ---- checks -----------------------------------------------------------------------------------

std::string_view check_name(Check c) {
    switch (c) {
        case Check::RequestMac:
            return "request_mac";
        case Check::RequestPadding:
            return "request_padding";
        case Check::ResponseMac:
            return "response_mac";
        case Check::Decrypt:
            return "decrypt";
        case Check::Version:
            return "version";
        case Check::Cmid:
            return "cmid";
        case Check::ClientTime:
            return "client_time";
        case Check::Pid:
            return "pid";
        case Check::Hash:
            return "hash";
        case Check::Iv:
            return "iv";
        case Check::XoredIvs:
            return "xored_ivs";
        case Check::Hmac:
            return "hmac";
        case Check::IvReused:
            return "iv_reused";
        case Check::Size:
            return "size";
        case Check::Count:
            return "count";
        case Check::Rpc:
            return "rpc";
    }
    return "unknown";
}

std::string_view check_description(Check c) {
    switch (c) {
        case Check::RequestMac:
            return "v4 request MAC does not match the base request";
        case Check::RequestPadding:
            return "request does not decrypt to PKCS#7 padding 04040404";
        case Check::ResponseMac:
            return "v4 response MAC does not match the base response";
        case Check::Decrypt:
            return "response does not decrypt to valid PKCS#7 padding";
        case Check::Version:
            return "response version differs from the request version";
        case Check::Cmid:
            return "response does not echo the request CMID";
        case Check::ClientTime:
            return "response does not echo the request client time";
        case Check::Pid:
            return "ePID is not a NUL-terminated string of at most 64 UTF-16 units";
        case Check::Hash:
            return "SHA-256 of the server random does not match the response hash";
        case Check::Iv:
            return "v5 response IV differs from the request IV";
        case Check::XoredIvs:
            return "v6 XoredIVs differ from the decrypted request IV";
        case Check::Hmac:
            return "v6 response HMAC does not verify";
        case Check::IvReused:
            return "v6 response reuses the request IV (emulator following v5 rules)";
        case Check::Size:
            return "response message size differs from the size its body implies";
        case Check::Count:
            return "count is below the request's N policy (client reports 0xC004F038)";
        case Check::Rpc:
            return "RPC response framing deviates from what a Windows client accepts";
    }
    return "unknown check";
}

bool Verdict::has(Check c) const {
    return std::find(failed.begin(), failed.end(), c) != failed.end();
}

void Verdict::fail(Check c) {
    if (!has(c)) failed.push_back(c);
}

// ---- request decoding -------------------------------------------------------------------------

Result<DecodedRequest> decode_request(ByteView message, std::size_t base_offset) {
    auto version = peek_version(message);
    if (!version) return ParseError{"version", base_offset, "KMS request shorter than its 4-byte version"};
    DecodedRequest out;
    out.version = *version;
    out.message_size = message.size();
    // Unsupported versions (vlmcs -K 7.0) are still decoded, with the envelope of the nearest real
    // version, so that the fields of a refused request can be shown; servers refuse them.
    const std::uint16_t layout = version->major <= 4 ? 4 : version->major >= 6 ? 6 : 5;
    if (layout == 4) {
        if (message.size() < kV4RequestSize)
            return ParseError{"request", base_offset,
                              "v4 request of " + std::to_string(message.size()) + " bytes, needs 252"};
        auto base = parse_base_request(message.first(kBaseRequestSize), base_offset);
        if (!base) return base.error();
        out.base = std::move(*base);
        out.mac = to_block(message.subspan(kBaseRequestSize, 16));
        out.mac_ok = crypto::v4_mac(message.first(kBaseRequestSize)) == out.mac;
        return out;
    }
    if (message.size() < kV5RequestSize) {
        // Built by appending: GCC 12 reports a false -Wrestrict at -O3 for `"literal" + std::string`.
        std::string what = "v";
        what.append(std::to_string(version->major))
            .append(" request of ")
            .append(std::to_string(message.size()))
            .append(" bytes, needs 260");
        return ParseError{"request", base_offset, std::move(what)};
    }
    const auto& c = crypto::cipher_for_major(layout);
    out.iv = to_block(message.subspan(4, 16));
    out.x = c.decrypt_block(out.iv);
    out.plaintext = c.cbc_decrypt(out.iv, message.subspan(20, 240));
    static constexpr std::uint8_t kPad[4] = {4, 4, 4, 4};
    out.padding_ok = std::equal(kPad, kPad + 4, out.plaintext.begin() + kBaseRequestSize);
    auto base = parse_base_request(ByteView(out.plaintext).first(kBaseRequestSize), 0);
    if (!base) return base.error();
    out.base = std::move(*base);
    return out;
}

Verdict verify_request(const DecodedRequest& q) {
    Verdict v;
    if (q.version.major <= 4 && !q.mac_ok) v.fail(Check::RequestMac);
    if (q.encrypted() && !q.padding_ok) v.fail(Check::RequestPadding);
    if (!q.version.supported()) v.fail(Check::Version);
    return v;
}

// ---- response decoding ------------------------------------------------------------------------

std::size_t expected_response_size(Version v, std::uint32_t pid_size) {
    if (v.major == 4) return 60 + pid_size;
    std::size_t body = (v.major == 5 ? 92 : 132) + static_cast<std::size_t>(pid_size);
    return 20 + 16 * (body / 16 + 1);
}

Result<DecodedResponse> decode_response(ByteView message, std::size_t base_offset) {
    auto version = peek_version(message);
    if (!version) return ParseError{"version", base_offset, "KMS response shorter than its 4-byte version"};
    if (!version->supported())
        return ParseError{"version", base_offset, "unsupported KMS protocol version " + version->to_string()};
    DecodedResponse out;
    out.version = *version;
    out.message_size = message.size();
    if (version->major == 4) {
        auto base = parse_base_response(message, base_offset);
        if (!base) return base.error();
        out.base = std::move(*base);
        std::size_t n = out.base.size();
        Reader r(message.subspan(n), base_offset + n);
        out.mac = to_block(r.bytes(16, "mac"));
        if (!r.ok()) return *r.error();
        out.mac_ok = crypto::v4_mac(message.first(n)) == out.mac;
        out.body_size = n;
        return out;
    }
    Reader r(message, base_offset);
    r.skip(4, "version");
    out.iv = to_block(r.bytes(16, "iv"));
    if (!r.ok()) return *r.error();
    ByteView ciphertext = r.rest();
    if (ciphertext.empty() || ciphertext.size() % 16)
        return ParseError{
            "ciphertext", r.offset(),
            "encrypted part of " + std::to_string(ciphertext.size()) + " bytes is not a positive multiple of 16"};
    const auto& c = cipher(*version);
    out.plaintext = c.cbc_decrypt(out.iv, ciphertext);
    auto unpadded = crypto::pkcs7_unpadded_length(out.plaintext);
    out.padding_ok = unpadded.has_value();
    ByteView body(out.plaintext.data(), unpadded.value_or(out.plaintext.size()));
    out.body_size = body.size();
    // Offsets in diagnostics refer to the decrypted body.
    auto base = parse_base_response(body, 0);
    if (!base) return base.error();
    out.base = std::move(*base);
    Reader b(body.subspan(out.base.size()), out.base.size());
    out.random_xored_ivs = to_block(b.bytes(16, "random_xored_ivs"));
    auto hash = b.bytes(32, "hash");
    if (version->major == 6) {
        auto hw = b.bytes(8, "hwid");
        out.xored_ivs = to_block(b.bytes(16, "xored_ivs"));
        out.hmac = to_block(b.bytes(16, "hmac"));
        if (b.ok()) {
            HwId h;
            std::copy(hw.begin(), hw.end(), h.bytes.begin());
            out.hwid = h;
        }
    }
    if (!b.ok()) return *b.error();
    std::copy(hash.begin(), hash.end(), out.hash.begin());
    if (version->major == 6) {
        // HMAC over D_K(IV_r) || body up to the HMAC field, keyed by the echoed client time.
        std::size_t covered = out.base.size() + 16 + 32 + 8 + 16;
        Bytes data(16 + covered);
        auto d_iv = c.decrypt_block(out.iv);
        std::copy(d_iv.begin(), d_iv.end(), data.begin());
        std::copy_n(body.begin(), covered, data.begin() + 16);
        auto key = crypto::v6_hmac_key(out.base.client_time.ticks);
        auto mac = crypto::hmac_sha256(key, data);
        out.hmac_ok = std::equal(out.hmac.begin(), out.hmac.end(), mac.begin() + 16);
    }
    return out;
}

Verdict verify_exchange(const DecodedRequest& q, const DecodedResponse& p) {
    Verdict v = verify_request(q);
    if (p.version != q.version || p.base.version != p.version) v.fail(Check::Version);
    if (p.base.cmid != q.base.cmid) v.fail(Check::Cmid);
    if (p.base.client_time != q.base.client_time) v.fail(Check::ClientTime);
    if (!p.base.pid_well_formed) v.fail(Check::Pid);
    if (p.version.major == 4) {
        if (!p.mac_ok) v.fail(Check::ResponseMac);
    } else if (p.version == q.version) {
        if (!p.padding_ok) v.fail(Check::Decrypt);
        Block s = xor_blocks(p.random_xored_ivs, q.x);
        if (crypto::sha256(s) != p.hash) v.fail(Check::Hash);
        if (p.version.major == 5) {
            if (p.iv != q.iv) v.fail(Check::Iv);
        } else {
            if (p.xored_ivs != q.x) v.fail(Check::XoredIvs);
            if (!p.hmac_ok) v.fail(Check::Hmac);
            if (p.iv == q.iv) v.fail(Check::IvReused);
        }
    }
    if (p.message_size != expected_response_size(p.version, p.base.pid_size)) v.fail(Check::Size);
    if (p.base.count < q.base.n_policy) v.fail(Check::Count);
    return v;
}

// ---- construction -----------------------------------------------------------------------------

Bytes build_response_message(const DecodedRequest& q, const ResponseFields& f, const ResponseRandom& rnd) {
    BaseResponse base;
    base.version = q.version;
    base.epid = f.epid;
    base.cmid = q.base.cmid;
    base.client_time = q.base.client_time;
    base.count = f.count;
    base.activation_interval = f.activation_interval;
    base.renewal_interval = f.renewal_interval;
    Writer w;
    if (q.version.major <= 4) {
        write_base_response(w, base);
        auto mac = crypto::v4_mac(w.buffer());
        w.bytes(mac);
        return w.take();
    }
    const auto& c = cipher_for_building(q.version);
    Writer body;
    write_base_response(body, base);
    body.bytes(xor_blocks(rnd.s, q.x));
    body.bytes(crypto::sha256(rnd.s));
    Block iv_r = q.iv;
    if (q.version.major >= 6) {
        iv_r = rnd.iv;
        body.bytes(f.hwid.bytes);
        body.bytes(q.x);
        Bytes data(16);
        auto d_iv = c.decrypt_block(iv_r);
        std::copy(d_iv.begin(), d_iv.end(), data.begin());
        data.insert(data.end(), body.buffer().begin(), body.buffer().end());
        auto mac = crypto::hmac_sha256(crypto::v6_hmac_key(q.base.client_time.ticks), data);
        body.bytes(ByteView(mac).subspan(16));
    }
    w.u16le(q.version.minor);
    w.u16le(q.version.major);
    w.bytes(iv_r);
    w.bytes(c.cbc_encrypt(iv_r, crypto::pkcs7_pad(body.buffer())));
    return w.take();
}

Bytes build_response_message(const DecodedRequest& q, const ResponseFields& f, RandomSource& rng) {
    ResponseRandom rnd;
    if (q.version.major >= 5) rng.fill(rnd.s);
    if (q.version.major >= 6) {
        do rng.fill(rnd.iv);
        while (rnd.iv == q.iv);
    }
    return build_response_message(q, f, rnd);
}

ResponseRandom recorded_random(const DecodedRequest& q, const DecodedResponse& p) {
    return ResponseRandom{xor_blocks(p.random_xored_ivs, q.x), p.iv};
}

Bytes build_request_message(const BaseRequest& base, const Block& iv) {
    Writer plain;
    write_base_request(plain, base);
    if (base.version.major <= 4) {
        auto mac = crypto::v4_mac(plain.buffer());
        plain.bytes(mac);
        return plain.take();
    }
    plain.bytes(std::array<std::uint8_t, 4>{4, 4, 4, 4});
    Writer w;
    w.u16le(base.version.minor);
    w.u16le(base.version.major);
    w.bytes(iv);
    w.bytes(cipher_for_building(base.version).cbc_encrypt(iv, plain.buffer()));
    return w.take();
}

Bytes build_request_message(const BaseRequest& base, RandomSource& rng) {
    Block iv{};
    rng.fill(iv);
    return build_request_message(base, iv);
}

}  // namespace kmscope::kms
