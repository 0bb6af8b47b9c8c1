// KMS messages: decode_request / decode_response / verify_exchange on arbitrary bytes, and the builders.
// Input: [mode] [rest]; mode % 3:
//   0: rest is one message, decoded both as a request and as a response;
//   1: [u16le n] [request: n bytes] [response: the rest], decoded and verified as an exchange;
//   2: rest chooses the fields of a request and of its response, which are built, decoded and verified.
// Invariants: decoded sizes are consistent; re-encoding a decoded request reproduces the input exactly when its
// integrity check (v4 MAC / v5-v6 padding) passes, for unsupported versions too (decoded with the nearest
// envelope, failing only the Version check); a v4 response re-encodes to its input when its ePID does;
// verify_exchange reports each failed check once and includes the request's own failures; and any message
// built by build_request_message / build_response_message decodes to the chosen fields and verifies with
// exactly the failures the chosen fields imply (Count, Pid, IvReused), nothing else.
#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "fuzz_check.hpp"
#include "kmscope/crypto.hpp"
#include "kmscope/kms.hpp"

using namespace kmscope;
using namespace kmscope::kms;

namespace {

bool same_base(const BaseRequest& a, const BaseRequest& b) {
    return a.version == b.version && a.vm_info == b.vm_info && a.license_status == b.license_status &&
           a.binding_expiration == b.binding_expiration && a.app_id == b.app_id && a.sku_id == b.sku_id &&
           a.kms_id == b.kms_id && a.cmid == b.cmid && a.n_policy == b.n_policy && a.client_time == b.client_time &&
           a.previous_cmid == b.previous_cmid && a.workstation_raw == b.workstation_raw;
}

bool prefix_equal(const Bytes& built, ByteView in) {
    return built.size() <= in.size() && std::equal(built.begin(), built.end(), in.begin());
}

// The envelope a request of this version is decoded and built with (unsupported versions: the nearest one).
int envelope(Version v) {
    return v.major <= 4 ? 4 : v.major >= 6 ? 6 : 5;
}

void check_request(ByteView msg) {
    auto q = decode_request(msg);
    if (!q) return;
    FUZZ_CHECK(q->message_size == msg.size());
    FUZZ_CHECK(*peek_version(msg) == q->version);
    Verdict v = verify_request(*q);
    for (Check c : v.failed) FUZZ_CHECK(c == Check::RequestMac || c == Check::RequestPadding || c == Check::Version);
    FUZZ_CHECK(v.has(Check::Version) == !q->version.supported());
    if (envelope(q->version) == 4) {
        FUZZ_CHECK(msg.size() >= kV4RequestSize && q->plaintext.empty());
        FUZZ_CHECK(v.has(Check::RequestMac) == !q->mac_ok);
    } else {
        FUZZ_CHECK(msg.size() >= kV5RequestSize && q->plaintext.size() == 240);
        FUZZ_CHECK(v.has(Check::RequestPadding) == !q->padding_ok);
        FUZZ_CHECK(std::equal(q->iv.begin(), q->iv.end(), msg.begin() + 4));
    }
    // Re-encoding (the builder takes the version from the base request, so only when inner == outer).
    if (q->base.version == q->version) {
        Bytes again = build_request_message(q->base, q->iv);
        const bool intact = envelope(q->version) == 4 ? q->mac_ok : q->padding_ok;
        FUZZ_CHECK(again.size() == (envelope(q->version) == 4 ? kV4RequestSize : kV5RequestSize));
        FUZZ_CHECK(prefix_equal(again, msg) == intact);
    }
}

void check_response(ByteView msg) {
    auto p = decode_response(msg);
    if (!p) return;
    FUZZ_CHECK(p->version.supported() && p->message_size == msg.size());
    FUZZ_CHECK(p->base.size() == 44 + std::size_t{p->base.pid_size});
    const auto l = layout::response_layout(p->base.pid_size, p->version.major);
    FUZZ_CHECK(l.base_end == p->base.size() && l.epid == 8 && l.cmid == 8 + std::size_t{p->base.pid_size});
    if (p->version.major == 4)
        FUZZ_CHECK(l.body_end == p->body_size + layout::kMacSize && l.body_end <= msg.size());
    else
        FUZZ_CHECK(l.body_end <= p->body_size);
    if (p->base.pid_well_formed)
        FUZZ_CHECK(p->base.pid_size >= 2 && p->base.pid_size <= 128 && p->base.pid_size % 2 == 0);
    if (p->version.major == 4) {
        FUZZ_CHECK(p->body_size == p->base.size() && msg.size() >= p->body_size + 16);
        FUZZ_CHECK(!p->hwid);
        // The ePID re-encodes to its bytes when they are UTF-16 of the decoded text plus one NUL.
        Bytes pid = utf8_to_utf16le(p->base.epid);
        pid.push_back(0);
        pid.push_back(0);
        if (equal_bytes(pid, msg.subspan(8, p->base.pid_size))) {
            Writer w;
            write_base_response(w, p->base);
            FUZZ_CHECK(prefix_equal(w.buffer(), msg));
            FUZZ_CHECK((crypto::v4_mac(w.buffer()) == p->mac) == p->mac_ok);
        }
        return;
    }
    FUZZ_CHECK(msg.size() >= 36 && (msg.size() - 20) % 16 == 0);
    FUZZ_CHECK(p->plaintext.size() == msg.size() - 20);
    FUZZ_CHECK(p->body_size <= p->plaintext.size());
    if (p->padding_ok)
        FUZZ_CHECK(p->plaintext.size() - p->body_size >= 1 && p->plaintext.size() - p->body_size <= 16);
    else
        FUZZ_CHECK(p->body_size == p->plaintext.size());
    FUZZ_CHECK(p->base.size() + 48 + (p->version.major == 6 ? 40 : 0) <= p->body_size);
    FUZZ_CHECK(p->hwid.has_value() == (p->version.major == 6));
    FUZZ_CHECK(std::equal(p->iv.begin(), p->iv.end(), msg.begin() + 4));
}

void check_pair(ByteView rq, ByteView rs) {
    auto q = decode_request(rq);
    auto p = decode_response(rs);
    if (!q || !p) return;
    Verdict v = verify_exchange(*q, *p);
    for (std::size_t i = 0; i < v.failed.size(); ++i)
        for (std::size_t j = i + 1; j < v.failed.size(); ++j) FUZZ_CHECK(v.failed[i] != v.failed[j]);
    for (Check c : verify_request(*q).failed) FUZZ_CHECK(v.has(c));
    FUZZ_CHECK(v.has(Check::Version) ==
               (p->version != q->version || p->base.version != p->version || !q->version.supported()));
    FUZZ_CHECK(v.has(Check::Cmid) == (p->base.cmid != q->base.cmid));
    FUZZ_CHECK(v.has(Check::ClientTime) == (p->base.client_time != q->base.client_time));
    FUZZ_CHECK(v.has(Check::Pid) == !p->base.pid_well_formed);
    FUZZ_CHECK(v.has(Check::Count) == (p->base.count < q->base.n_policy));
    FUZZ_CHECK(v.has(Check::Size) == (p->message_size != expected_response_size(p->version, p->base.pid_size)));
    FUZZ_CHECK(!v.has(Check::Rpc));
    if (p->version.major == 4) FUZZ_CHECK(v.has(Check::ResponseMac) == !p->mac_ok);
    for (Check c : {Check::Hash, Check::Iv, Check::XoredIvs, Check::Hmac, Check::IvReused, Check::Decrypt})
        if (v.has(c)) FUZZ_CHECK(p->version.major >= 5 && p->version == q->version);
}

// Consumes fixed-size fields from the input, zero-filled when it runs out.
struct Fields {
    ByteView in;
    std::size_t pos = 0;
    void take(std::span<std::uint8_t> out) {
        for (auto& b : out) b = pos < in.size() ? in[pos++] : 0;
    }
    std::uint8_t u8() {
        std::uint8_t b[1];
        take(b);
        return b[0];
    }
    std::uint32_t u32() {
        std::uint8_t b[4];
        take(b);
        return load_u32le(b);
    }
    std::uint64_t u64() {
        std::uint8_t b[8];
        take(b);
        return load_u64le(b);
    }
    Guid guid() {
        Guid g;
        take(g.wire);
        return g;
    }
    ByteView rest() { return in.subspan(std::min(pos, in.size())); }
};

void check_built(ByteView in) {
    Fields f{in};
    const std::uint8_t major_byte = f.u8(), flags = f.u8();
    BaseRequest base;
    // Mostly the real versions; sometimes anything (vlmcs -K sends unsupported ones deliberately).
    base.version = (flags & 0x80) ? Version{static_cast<std::uint16_t>(major_byte), static_cast<std::uint16_t>(f.u8())}
                                  : Version{static_cast<std::uint16_t>(4 + major_byte % 3), 0};
    base.vm_info = f.u32();
    base.license_status = f.u32();
    base.binding_expiration = f.u32();
    base.app_id = f.guid();
    base.sku_id = f.guid();
    base.kms_id = f.guid();
    base.cmid = f.guid();
    base.n_policy = (flags & 1) ? f.u32() : f.u8();
    base.client_time.ticks = f.u64();
    base.previous_cmid = f.guid();
    if (flags & 2)
        f.take(base.workstation_raw);
    else
        base.set_workstation(
            std::string(reinterpret_cast<const char*>(in.data()), std::min<std::size_t>(in.size(), 70)));
    Block iv{};
    f.take(iv);
    ResponseFields fields;
    fields.count = (flags & 4) ? f.u32() : f.u8();
    fields.activation_interval = f.u32();
    fields.renewal_interval = f.u32();
    f.take(fields.hwid.bytes);
    ResponseRandom rnd;
    f.take(rnd.s);
    f.take(rnd.iv);
    if (flags & 8) rnd.iv = iv;  // a v6 response that reuses the request IV (v5 rules)
    ByteView epid = f.rest();
    fields.epid.assign(reinterpret_cast<const char*>(epid.data()), epid.size());

    Bytes request = build_request_message(base, iv);
    auto q = decode_request(request);
    FUZZ_CHECK(q.ok());
    FUZZ_CHECK(q->version == base.version && same_base(q->base, base));
    FUZZ_CHECK(request.size() == (envelope(base.version) == 4 ? kV4RequestSize : kV5RequestSize));
    if (envelope(base.version) != 4) FUZZ_CHECK(q->iv == iv);
    const Verdict qv = verify_request(*q);
    if (!base.version.supported()) {
        // Unsupported versions (vlmcs -K) decode with the nearest envelope and fail only the version check.
        FUZZ_CHECK(qv.failed.size() == 1 && qv.has(Check::Version));
        return;  // build_response_message has no envelope for them (servers refuse them first)
    }
    FUZZ_CHECK(qv.ok());

    Bytes response = build_response_message(*q, fields, rnd);
    auto p = decode_response(response);
    FUZZ_CHECK(p.ok());
    FUZZ_CHECK(p->version == base.version && p->base.version == base.version);
    FUZZ_CHECK(p->base.cmid == base.cmid && p->base.client_time == base.client_time);
    FUZZ_CHECK(p->base.count == fields.count && p->base.activation_interval == fields.activation_interval &&
               p->base.renewal_interval == fields.renewal_interval);
    const Bytes pid = utf8_to_utf16le(fields.epid);
    FUZZ_CHECK(p->base.pid_size == pid.size() + 2);
    FUZZ_CHECK(p->base.epid == utf16le_to_utf8(pid, true));
    if (base.version.major == 6) FUZZ_CHECK(p->hwid && *p->hwid == fields.hwid);

    bool pid_has_nul = false;
    for (std::size_t i = 0; i + 1 < pid.size(); i += 2) pid_has_nul |= load_u16le(pid.data() + i) == 0;
    Verdict expected;
    if (pid_has_nul || pid.size() + 2 > 128) expected.fail(Check::Pid);
    if (base.version.major == 6 && rnd.iv == q->iv) expected.fail(Check::IvReused);
    if (fields.count < base.n_policy) expected.fail(Check::Count);
    Verdict v = verify_exchange(*q, *p);
    std::sort(expected.failed.begin(), expected.failed.end());
    std::sort(v.failed.begin(), v.failed.end());
    if (v.failed != expected.failed) {
        std::fprintf(stderr, "verify_exchange of a built exchange: got");
        for (Check c : v.failed) std::fprintf(stderr, " %s", std::string(check_name(c)).c_str());
        std::fprintf(stderr, ", expected");
        for (Check c : expected.failed) std::fprintf(stderr, " %s", std::string(check_name(c)).c_str());
        std::fprintf(stderr, "\n");
    }
    FUZZ_CHECK(v.failed == expected.failed);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const ByteView rest(data + 1, size - 1);
    switch (data[0] % 3) {
        case 0:
            check_request(rest);
            check_response(rest);
            break;
        case 1: {
            if (rest.size() < 2) return 0;
            const std::size_t n = std::min<std::size_t>(load_u16le(rest.data()), rest.size() - 2);
            check_pair(rest.subspan(2, n), rest.subspan(2 + n));
            break;
        }
        case 2:
            check_built(rest);
            break;
    }
    return 0;
}
