// KMS message layer against the worked examples of docs/protocol.md §12.3 and the genuine
// Windows Server 2022 request (§12.2): decoding, verification, byte-exact construction.
#include <gtest/gtest.h>

#include "kmscope/kms.hpp"
#include "kmscope/ndr.hpp"
#include "sheet_vectors.hpp"
#include "test_util.hpp"

namespace kmscope {
namespace {

using test::guid;
using test::hex;
namespace sheet = test::sheet;

kms::Block block(std::string_view h) {
    kms::Block b{};
    auto v = hex(h);
    std::copy_n(v.begin(), 16, b.begin());
    return b;
}

const std::string kSheetEpid = "06401-00206-271-392041-03-1033-9600.0000-3652013";

kms::ResponseFields sheet_fields() {
    kms::ResponseFields f;
    f.epid = kSheetEpid;
    f.count = 50;
    f.activation_interval = 120;
    f.renewal_interval = 10080;
    f.hwid = *HwId::parse("3a1c049600b60076");
    return f;
}

void expect_sheet_base_request(const kms::BaseRequest& b, std::uint16_t major) {
    EXPECT_EQ(b.version, (kms::Version{major, 0}));
    EXPECT_EQ(b.vm_info, 0u);
    EXPECT_EQ(b.license_status, 2u);
    EXPECT_EQ(b.binding_expiration, 43200u);
    EXPECT_EQ(b.app_id, guid("55c92734-d682-4d71-983e-d6ec3f16059f"));
    EXPECT_EQ(b.sku_id, guid("73111121-5638-40f6-bc11-f1d7b0d64300"));
    EXPECT_EQ(b.kms_id, guid("58e2134f-8e11-4d17-9cb2-91069c151148"));
    EXPECT_EQ(b.cmid, guid("11111111-2222-4333-8444-555555555555"));
    EXPECT_EQ(b.n_policy, 25u);
    EXPECT_EQ(b.client_time.ticks, 0x01D7657AB62CD55Cull);
    EXPECT_TRUE(b.previous_cmid.is_nil());
    EXPECT_EQ(b.workstation(), "TESTPC");
}

TEST(KmsSheetVectors, V4RequestDecodesAndMacVerifies) {
    auto msg = hex(sheet::kV4_Request);
    auto q = kms::decode_request(msg);
    ASSERT_TRUE(q) << q.error().to_string();
    expect_sheet_base_request(q->base, 4);
    EXPECT_TRUE(q->mac_ok);
    EXPECT_EQ(to_hex(q->mac), "2984b75c970a16bae34b2017fc64a0eb");
    EXPECT_TRUE(kms::verify_request(*q).ok());
}

TEST(KmsSheetVectors, V4ResponseIsByteExact) {
    auto q = kms::decode_request(hex(sheet::kV4_Request));
    ASSERT_TRUE(q);
    Bytes built = kms::build_response_message(*q, sheet_fields(), kms::ResponseRandom{});
    EXPECT_EQ(to_hex(built), sheet::kV4_Response);
    auto p = kms::decode_response(built);
    ASSERT_TRUE(p) << p.error().to_string();
    EXPECT_EQ(p->base.epid, kSheetEpid);
    EXPECT_EQ(p->base.pid_size, 98u);
    EXPECT_EQ(p->base.count, 50u);
    EXPECT_EQ(to_hex(p->mac), "74906e6737decb9052b4877cc8740904");
    EXPECT_TRUE(kms::verify_exchange(*q, *p).ok());
}

TEST(KmsSheetVectors, V5RequestDecryptsAndResponseIsByteExact) {
    auto q = kms::decode_request(hex(sheet::kV5_Request));
    ASSERT_TRUE(q) << q.error().to_string();
    expect_sheet_base_request(q->base, 5);
    EXPECT_TRUE(q->padding_ok);
    EXPECT_EQ(to_hex(q->x), "86bf207b6970ef43830e988ff1e6f329");
    EXPECT_EQ(to_hex(ByteView(q->plaintext).first(236)), sheet::kV5_RequestPlainBase);
    kms::ResponseRandom rnd{block("f0e1d2c3b4a5968778695a4b3c2d1e0f"), {}};
    Bytes built = kms::build_response_message(*q, sheet_fields(), rnd);
    EXPECT_EQ(to_hex(built), sheet::kV5_Response);
    auto p = kms::decode_response(built);
    ASSERT_TRUE(p) << p.error().to_string();
    EXPECT_EQ(p->body_size, 190u);
    EXPECT_EQ(to_hex(ByteView(p->plaintext).first(190)), sheet::kV5_PlainBody);
    EXPECT_EQ(p->iv, q->iv);
    EXPECT_EQ(to_hex(p->hash), "6995d874e546bd6eae594d5ef6b696bad37e7c076ad2ab7a7f5460ac8b8472fe");
    EXPECT_TRUE(kms::verify_exchange(*q, *p).ok());
}

TEST(KmsSheetVectors, V6RequestDecryptsAndResponseIsByteExact) {
    auto q = kms::decode_request(hex(sheet::kV6_Request));
    ASSERT_TRUE(q) << q.error().to_string();
    expect_sheet_base_request(q->base, 6);
    EXPECT_EQ(to_hex(q->x), "7c49a81964119e65c24b99a098afe453");
    kms::ResponseRandom rnd{block("f0e1d2c3b4a5968778695a4b3c2d1e0f"), block("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf")};
    Bytes built = kms::build_response_message(*q, sheet_fields(), rnd);
    EXPECT_EQ(to_hex(built), sheet::kV6_Response);
    auto p = kms::decode_response(built);
    ASSERT_TRUE(p) << p.error().to_string();
    EXPECT_EQ(to_hex(ByteView(p->plaintext).first(230)), sheet::kV6_PlainBody);
    ASSERT_TRUE(p->hwid);
    EXPECT_EQ(p->hwid->to_string(), "3A1C049600B60076");
    EXPECT_EQ(to_hex(p->hmac), "288803fe0a7011fa1ab536dec837e46a");
    EXPECT_TRUE(p->hmac_ok);
    EXPECT_EQ(p->xored_ivs, q->x);
    EXPECT_TRUE(kms::verify_exchange(*q, *p).ok());
}

TEST(KmsSheetVectors, GenuineServer2022Request) {
    auto pdu = hex(sheet::kGenuineServer2022Request);
    auto stub = rpc::parse_request_stub(ByteView(pdu).subspan(24), rpc::Ndr::Ndr32);
    ASSERT_TRUE(stub);
    auto q = kms::decode_request(stub->message);
    ASSERT_TRUE(q) << q.error().to_string();
    EXPECT_EQ(to_hex(q->plaintext), sheet::kGenuineServer2022Plain);
    EXPECT_TRUE(q->padding_ok);
    EXPECT_EQ(to_hex(q->x), "988fca82b1b8c28ef8567c9697e660b0");
    const auto& b = q->base;
    EXPECT_EQ(b.version, (kms::Version{6, 0}));
    EXPECT_EQ(b.vm_info, 1u);
    EXPECT_EQ(b.license_status, 5u);
    EXPECT_EQ(b.binding_expiration, 0u);
    EXPECT_EQ(b.app_id, guid("55c92734-d682-4d71-983e-d6ec3f16059f"));
    EXPECT_EQ(b.sku_id, guid("ef6cfc9f-8c5d-44ac-9aad-de6a2ea0ae03"));
    EXPECT_EQ(b.kms_id, guid("b74263e4-0f92-46c6-bcf8-c11d5efe2959"));
    EXPECT_EQ(b.cmid, guid("ce1310fe-7800-4af8-a7b0-55d49854dedc"));
    EXPECT_EQ(b.n_policy, 5u);
    EXPECT_EQ(b.client_time.ticks, 0x01D7657AB62CD55Cull);
    EXPECT_EQ(b.client_time.to_iso8601(), "2021-06-20T02:19:34.7525980Z");
    // Only up to the first NUL: the leftover text after it is not part of the name.
    EXPECT_EQ(b.workstation(), "WIN-FKRAT939LQN");
    // Re-encrypting the decoded base with the same IV gives the genuine bytes back.
    EXPECT_EQ(kms::build_request_message(b, q->iv), Bytes(stub->message.begin(), stub->message.end()));
}

// Tampering: every check must catch exactly its own kind of damage.
struct Tamper {
    const char* name;
    int major;
    std::function<void(kms::DecodedRequest&, kms::DecodedResponse&)> damage;
    kms::Check expected;
};

kms::DecodedRequest sheet_request(int major) {
    auto h = major == 4 ? sheet::kV4_Request : major == 5 ? sheet::kV5_Request : sheet::kV6_Request;
    return *kms::decode_request(hex(h));
}

kms::DecodedResponse sheet_response(int major) {
    auto h = major == 4 ? sheet::kV4_Response : major == 5 ? sheet::kV5_Response : sheet::kV6_Response;
    return *kms::decode_response(hex(h));
}

class KmsTamper : public ::testing::TestWithParam<Tamper> {};

TEST_P(KmsTamper, FailsExactlyTheTamperedCheck) {
    const auto& t = GetParam();
    auto q = sheet_request(t.major);
    auto p = sheet_response(t.major);
    t.damage(q, p);
    auto v = kms::verify_exchange(q, p);
    ASSERT_EQ(v.failed.size(), 1u) << t.name << ": " << v.failed.size() << " failures";
    EXPECT_EQ(v.failed[0], t.expected) << kms::check_name(v.failed[0]);
}

INSTANTIATE_TEST_SUITE_P(
    AllChecks, KmsTamper,
    ::testing::Values(Tamper{"v4 request mac", 4, [](auto& q, auto&) { q.mac_ok = false; }, kms::Check::RequestMac},
                      Tamper{"v4 response mac", 4, [](auto&, auto& p) { p.mac_ok = false; }, kms::Check::ResponseMac},
                      Tamper{"v5 cmid", 5, [](auto&, auto& p) { p.base.cmid.wire[0] ^= 1; }, kms::Check::Cmid},
                      Tamper{"v6 time", 6, [](auto&, auto& p) { p.base.client_time.ticks++; }, kms::Check::ClientTime},
                      Tamper{"v5 pid", 5, [](auto&, auto& p) { p.base.pid_well_formed = false; }, kms::Check::Pid},
                      Tamper{"v5 hash", 5, [](auto&, auto& p) { p.hash[3] ^= 0xFF; }, kms::Check::Hash},
                      Tamper{"v5 iv", 5, [](auto&, auto& p) { p.iv[0] ^= 1; }, kms::Check::Iv},
                      Tamper{"v6 xored ivs", 6, [](auto&, auto& p) { p.xored_ivs[5] ^= 1; }, kms::Check::XoredIvs},
                      Tamper{"v6 hmac", 6, [](auto&, auto& p) { p.hmac_ok = false; }, kms::Check::Hmac},
                      Tamper{"v6 iv reused", 6, [](auto& q, auto& p) { q.iv = p.iv; }, kms::Check::IvReused},
                      Tamper{"v6 padding", 6, [](auto&, auto& p) { p.padding_ok = false; }, kms::Check::Decrypt},
                      Tamper{"v5 request padding", 5, [](auto& q, auto&) { q.padding_ok = false; },
                             kms::Check::RequestPadding},
                      Tamper{"v6 size", 6, [](auto&, auto& p) { p.message_size += 16; }, kms::Check::Size},
                      Tamper{"v4 count", 4, [](auto&, auto& p) { p.base.count = 24; }, kms::Check::Count},
                      Tamper{"v6 version", 6, [](auto&, auto& p) { p.base.version.minor = 1; }, kms::Check::Version}),
    [](const auto& info) { return test::param_name(info.param.name); });

TEST(KmsWire, FlippedCiphertextByteInHashFailsOnlyHash) {
    // Same kind of damage as the tampered capture: a byte of ciphertext block 10 of a v5 response.
    auto q = sheet_request(5);
    auto wire = hex(sheet::kV5_Response);
    wire[183] ^= 0xFF;
    auto p = kms::decode_response(wire);
    ASSERT_TRUE(p) << p.error().to_string();
    auto v = kms::verify_exchange(q, *p);
    ASSERT_EQ(v.failed.size(), 1u);
    EXPECT_EQ(v.failed[0], kms::Check::Hash);
}

TEST(KmsWire, UnsupportedVersionDecodesButFailsTheVersionCheck) {
    auto base = sheet_request(6).base;
    base.version = {7, 0};
    auto msg = kms::build_request_message(base, kms::Block{});
    auto q = kms::decode_request(msg);
    ASSERT_TRUE(q) << q.error().to_string();
    EXPECT_EQ(q->version.to_string(), "7.0");
    EXPECT_TRUE(q->padding_ok);  // built and read with the v6 envelope
    EXPECT_EQ(q->base.cmid, base.cmid);
    auto v = kms::verify_request(*q);
    ASSERT_EQ(v.failed.size(), 1u);
    EXPECT_EQ(v.failed[0], kms::Check::Version);
    EXPECT_FALSE(kms::decode_response(msg));  // responses of unknown versions are not guessed at
    // Building an answer for it (which servers refuse to do) does not throw either.
    EXPECT_EQ(kms::build_response_message(*q, kms::ResponseFields{"x", 1}, kms::ResponseRandom{}).size(),
              kms::expected_response_size({6, 0}, 4));  // built with the v6 envelope
}

TEST(KmsWire, ShortMessagesAreErrorsNamingTheField) {
    auto msg = hex(sheet::kV4_Request);
    auto q = kms::decode_request(ByteView(msg).first(251));
    ASSERT_FALSE(q);
    EXPECT_NE(q.error().message.find("needs 252"), std::string::npos);
    auto resp = hex(sheet::kV4_Response);
    auto p = kms::decode_response(ByteView(resp).first(100));
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().field, "pid_size");  // PIDSize 98 does not fit the 92 bytes left
}

TEST(KmsWire, ExpectedResponseSizes) {
    EXPECT_EQ(kms::expected_response_size({4, 0}, 98), 158u);
    EXPECT_EQ(kms::expected_response_size({4, 0}, 100), 160u);
    EXPECT_EQ(kms::expected_response_size({5, 0}, 98), 212u);
    EXPECT_EQ(kms::expected_response_size({5, 0}, 100), 228u);
    EXPECT_EQ(kms::expected_response_size({6, 0}, 98), 260u);
    EXPECT_EQ(kms::expected_response_size({6, 0}, 100), 260u);
}

TEST(KmsWire, ResponseLayoutMatchesTheSheet) {
    auto v6 = kms::layout::response_layout(98, 6);
    EXPECT_EQ(v6.cmid, 106u);
    EXPECT_EQ(v6.base_end, 142u);
    EXPECT_EQ(v6.hash, 158u);
    EXPECT_EQ(v6.hwid, 190u);
    EXPECT_EQ(v6.hmac, 214u);
    EXPECT_EQ(v6.body_end, 230u);                                   // 132 + P
    EXPECT_EQ(kms::layout::response_layout(98, 5).body_end, 190u);  // 92 + P
    EXPECT_EQ(kms::layout::response_layout(100, 4).body_end, 160u);
    // The decoded sheet vector has its CMID where the layout says.
    auto p = sheet_response(6);
    EXPECT_EQ(Guid::from_wire(ByteView(p.plaintext).subspan(v6.cmid, 16)), p.base.cmid);
}

TEST(KmsWire, WorkstationUnicodeRoundTrip) {
    kms::BaseRequest b;
    b.set_workstation("PC-Ünïcødé-Кирилл-漢字-😀");
    EXPECT_EQ(b.workstation(), "PC-Ünïcødé-Кирилл-漢字-😀");
    b.set_workstation(std::string(100, 'A'));
    EXPECT_EQ(b.workstation(), std::string(63, 'A'));  // 63 units plus the NUL fill 128 bytes
}

// Mid-stream captures: the NDR flavour comes from the stub's framing alone, for every message size the
// protocol has (v4 to v6 requests and responses, both error stubs).
TEST(KmsWire, NdrInferredFromStubFraming) {
    for (std::size_t size : {236u, 260u, 252u, 284u, 5u, 0u})
        for (auto ndr : {rpc::Ndr::Ndr32, rpc::Ndr::Ndr64}) {
            const Bytes message(size, 0xA5);
            EXPECT_EQ(rpc::infer_request_ndr(rpc::build_request_stub(message, ndr)), ndr) << size;
            if (size > 0) {
                EXPECT_EQ(rpc::infer_response_ndr(rpc::build_response_stub(message, ndr)), ndr) << size;
            }
            EXPECT_EQ(rpc::infer_response_ndr(rpc::build_error_stub(0xC004F042, ndr)), ndr);
        }
    EXPECT_FALSE(rpc::infer_request_ndr(Bytes{1, 0, 0, 0, 2, 0, 0, 0}));  // sizes that disagree
    EXPECT_FALSE(rpc::infer_response_ndr(Bytes(7, 0)));
}

}  // namespace
}  // namespace kmscope
