// Known-answer and consistency tests for kmscope/crypto.hpp: FIPS-197, the primitive vectors of
// docs/protocol.md §7 and §12.4, the message-level examples of §12.3 and the genuine Windows request of §12.2.
// Every block-cipher test runs once per implementation (Portable, AesNi).

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "kmscope/bytes.hpp"
#include "kmscope/crypto.hpp"
#include "kmscope/environment.hpp"

namespace kmscope::crypto {
namespace {

// Parses hex that must be valid (whitespace allowed).
Bytes unhex(std::string_view text) {
    std::optional<Bytes> b = from_hex(text);
    if (!b) ADD_FAILURE() << "bad hex in test: " << text;
    return b.value_or(Bytes{});
}

// Copies a byte range of a view into a vector.
Bytes slice(ByteView v, std::size_t offset, std::size_t length) {
    Bytes out(v.begin() + static_cast<std::ptrdiff_t>(offset),
              v.begin() + static_cast<std::ptrdiff_t>(offset + length));
    return out;
}

Bytes concat(ByteView a, ByteView b) {
    Bytes out(a.begin(), a.end());
    out.insert(out.end(), b.begin(), b.end());
    return out;
}

std::string impl_name(Impl impl) {
    switch (impl) {
        case Impl::Auto:
            return "Auto";
        case Impl::Portable:
            return "Portable";
        case Impl::AesNi:
            return "AesNi";
    }
    return "?";
}

// ---- Vectors (docs/protocol.md) ----------------------------------------------------------------

// §12.2 genuine Windows Server 2022 request PDU (292 bytes); the KMS message starts at PDU offset 32.
constexpr std::string_view kGenuinePdu =
    "050000031000000024010000020000000c010000000000000401000004010000"
    "0000060077c2a71717fce0943715cef95cab8b7449ee194b603778e3d7449275"
    "a743e779bb6de4f8ce3a2128ca87f07bb7f39085a78742f8ceda309523066d56"
    "77e27fc5e8d242d1ca25fb02ca3a6d17d2712e027c1a25b1763cfaaa94db878f"
    "d0cc3238b6f039c03510707173e32c7bf07a683a52f6ec86bfbbd1cc6a872445"
    "a96446cdbdfc2e10812ba8f0605f1c550f49e2cace495814f478628ddccf4032"
    "21df79e202e39d7a45593a040cad005e57598401f31fffcf7adebb755b8f4bd0"
    "1e5fbe72da4489d0975fe445360a9dff7d1e3e3b1a960eb49bb5fed3ca0dc3ad"
    "b077ff113cc7ebbd51467116dd9e6035e76402585b2aebe5b22423f7bead3cb0"
    "ab2d0951";
constexpr std::string_view kGenuinePlain =
    "000006000100000005000000000000003427c95582d6714d983ed6ec3f16059f"
    "9ffc6cef5d8cac449aadde6a2ea0ae03e46342b7920fc646bcf8c11d5efe2959"
    "fe1013ce0078f84aa7b055d49854dedc050000005cd52cb67a65d70100000000"
    "000000000000000000000000570049004e002d0046004b005200410054003900"
    "330039004c0051004e0000006f00770073002800520029002c00200053006500"
    "72007600650072004400610074006100630065006e0074006500720020006500"
    "64006900740069006f006e000000000000000000000000000000000000000000"
    "00000000000000000000000004040404";

// §12.3 v4.
constexpr std::string_view kV4Request =
    "000004000000000002000000c0a800003427c95582d6714d983ed6ec3f16059f"
    "211111733856f640bc11f1d7b0d643004f13e258118e174d9cb291069c151148"
    "11111111222233438444555555555555190000005cd52cb67a65d70100000000"
    "0000000000000000000000005400450053005400500043000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000002984b75c970a16bae34b2017fc64a0eb";
constexpr std::string_view kV4Response =
    "0000040062000000300036003400300031002d00300030003200300036002d00"
    "3200370031002d003300390032003000340031002d00300033002d0031003000"
    "330033002d0039003600300030002e0030003000300030002d00330036003500"
    "32003000310033000000111111112222334384445555555555555cd52cb67a65"
    "d70132000000780000006027000074906e6737decb9052b4877cc8740904";

// §12.3 v5.
constexpr std::string_view kV5PlainBody =
    "0000050062000000300036003400300031002d00300030003200300036002d00"
    "3200370031002d003300390032003000340031002d00300033002d0031003000"
    "330033002d0039003600300030002e0030003000300030002d00330036003500"
    "32003000310033000000111111112222334384445555555555555cd52cb67a65"
    "d701320000007800000060270000765ef2b8ddd579c4fb67c2c4cdcbed266995"
    "d874e546bd6eae594d5ef6b696bad37e7c076ad2ab7a7f5460ac8b8472fe";
constexpr std::string_view kV5Request =
    "00000500000102030405060708090a0b0c0d0e0f953cccda1e87c124691cbb4b"
    "d7bba5f70b4b401990ad011bf5e10bf002647e0b16b5e9892dd0aa4dbcd36c9f"
    "314d6c6b8f3e12257346db611420eeab1cc5f71e8e0d972dc4bbea4ea19d6e78"
    "09be9e28b8ff3f881f160e371a4a274e3cafc87dbb2a81e154ef5ae0a86795d5"
    "25ba795554a17ae4e7fba0fdb6c6800fe9d11df3ffc2fb03aa015f95cbb367ab"
    "9e6272fdfa1faa9f5851cd21efff05a9b553e553fd57fc7da275907ddc1e31f4"
    "9f6ae4a47d7b762c48d2d2dfd3053e81704c84f37ecc8bd0e93d5ad6137ab9e0"
    "335e25d0aab4cbfa3e95357fc10d0ce0287e87560832f46b85bc36a74d63a7ea"
    "5e7e6d2a";
constexpr std::string_view kV5Response =
    "00000500000102030405060708090a0b0c0d0e0fd0e200b5e4ae818bf82570b6"
    "35da248bf2af72e8e3c72509307a61502f2f5dfdf0d93af49fa202dc42ffd217"
    "1798c982a13d964f8c2d7cb3b21d4b2bdb135b3ac3b31159380ec54e16891a7c"
    "24ab85be3fe79a761f6dc1af85eaa271622bb652cd22e37e0cdf07318c5e1e6f"
    "39ea98b997784b757b8fc351fe88be9d48950ec4073e2b64ab87db2a0483cc5b"
    "98b4904421fb36f674e765b0076456c4f5d3117f07b4ae6aed4a9c1e3428bdb5"
    "bd919cdaa62b765636a70ec4c15dfc48971569d9";
constexpr std::string_view kV5RequestPlainBase =
    "000005000000000002000000c0a800003427c95582d6714d983ed6ec3f16059f"
    "211111733856f640bc11f1d7b0d643004f13e258118e174d9cb291069c151148"
    "11111111222233438444555555555555190000005cd52cb67a65d70100000000"
    "0000000000000000000000005400450053005400500043000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000";

// §12.3 v6.
constexpr std::string_view kV6PlainBody =
    "0000060062000000300036003400300031002d00300030003200300036002d00"
    "3200370031002d003300390032003000340031002d00300033002d0031003000"
    "330033002d0039003600300030002e0030003000300030002d00330036003500"
    "32003000310033000000111111112222334384445555555555555cd52cb67a65"
    "d7013200000078000000602700008ca87adad0b408e2ba22c3eba482fa5c6995"
    "d874e546bd6eae594d5ef6b696bad37e7c076ad2ab7a7f5460ac8b8472fe3a1c"
    "049600b600767c49a81964119e65c24b99a098afe453288803fe0a7011fa1ab5"
    "36dec837e46a";
constexpr std::string_view kV6Request =
    "00000600000102030405060708090a0b0c0d0e0f0e9fd870b28b8285f736f82c"
    "6cd0e06b03fcffed0b5b85dd300094cac36be16529362786518b4d232dfb1a3b"
    "dc8eab5c08cc00381df7bb7944addbdc295c5c590ea37de771542c603e4f97bb"
    "f54ac897e11e6d427fd2b3ef8e2d9354a04bcb23e413dd13e219abf7beb492b1"
    "a621649119893ecb1450866f19c0afc60bb2f0fe52e03ea2b213f255023030bd"
    "d0dd1fd9b21374db859dd439dd220061ae5adb93cb80528ca274d01c34591c14"
    "3ae69d6a4cf3111310c58fe39c7b5cd7982936401bc6c1b71dd52e8771026cf3"
    "f675c2d6efc419a0dfa374f38a779bcade6588ff8d2f5d1c5fb26948aa921f02"
    "7a99f4fe";
constexpr std::string_view kV6Response =
    "00000600a0a1a2a3a4a5a6a7a8a9aaabacadaeaf0e8fe949d7750ad7585cb926"
    "3d158039cbf097f4190e448c0121cfef39cfb4d122f86f4d933b53c216414bbc"
    "3f3377c86c7a56e788a382fec6dffb15f63a6c1936e35baee06e2cd9a12d2896"
    "85d34c69a6e0785c975d2ffd30c19cd172c6013c55b7c0e58879896ea11a5ee0"
    "0c69074fedff160a61d8a45bbe617977429a6ee9fdb9869dd5aa814bc523e352"
    "e1442734c092f38cf3a5dec05bbc0f6199c08279890fd014ba74580473418711"
    "b75300ea5dbc01e9068f0a5cd3ab86f4ae36bce968a57eb860d46eaa5361d46e"
    "81b961d96e7c63eb8a1ee156d8da69e144aa838a8436cd0248a3cd9abb628d9f"
    "66bd00a9";
constexpr std::string_view kV6RequestPlainBase =
    "000006000000000002000000c0a800003427c95582d6714d983ed6ec3f16059f"
    "211111733856f640bc11f1d7b0d643004f13e258118e174d9cb291069c151148"
    "11111111222233438444555555555555190000005cd52cb67a65d70100000000"
    "0000000000000000000000005400450053005400500043000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000";

constexpr std::string_view kRandomS = "f0e1d2c3b4a5968778695a4b3c2d1e0f";
constexpr std::string_view kSha256OfS = "6995d874e546bd6eae594d5ef6b696bad37e7c076ad2ab7a7f5460ac8b8472fe";

// Offsets in the §12.3 response bodies (P = 98, §8.2).
constexpr std::size_t kPidSize = 98;
constexpr std::size_t kBaseResponseLen = 44 + kPidSize;    // 142
constexpr std::size_t kRandomXoredIvsOff = 44 + kPidSize;  // 142
constexpr std::size_t kHashOff = 60 + kPidSize;            // 158
constexpr std::size_t kHwIdOff = 92 + kPidSize;            // 190
constexpr std::size_t kXoredIvsOff = 100 + kPidSize;       // 198
constexpr std::size_t kHmacOff = 116 + kPidSize;           // 214
constexpr std::size_t kClientTimeOff = 24 + kPidSize;      // 122 (echoed ClientTime)

// ---- Parameterised block-cipher tests (Portable and AesNi) -------------------------------------

class CryptoCipher : public ::testing::TestWithParam<Impl> {
protected:
    void SetUp() override {
        if (GetParam() == Impl::AesNi && !aesni_available()) GTEST_SKIP() << "CPU has no AES-NI";
    }
    BlockCipher make(Cipher c) const {
        BlockCipher cipher(c, GetParam());
        EXPECT_EQ(cipher.impl(), GetParam());
        return cipher;
    }
    BlockCipher make_with_key(std::string_view key_hex, bool v6_tweak = false) const {
        BlockCipher cipher = BlockCipher::with_key(unhex(key_hex), v6_tweak, GetParam());
        EXPECT_EQ(cipher.impl(), GetParam());
        return cipher;
    }
};

TEST_P(CryptoCipher, Fips197AppendixC1Aes128) {
    const BlockCipher aes = make_with_key("000102030405060708090a0b0c0d0e0f");
    EXPECT_EQ(aes.rounds(), 10);
    const Bytes plain = unhex("00112233445566778899aabbccddeeff");
    const Bytes cipher = unhex("69c4e0d86a7b0430d8cdb78070b4c55a");
    EXPECT_EQ(to_hex(aes.encrypt_block(plain)), to_hex(cipher));
    EXPECT_EQ(to_hex(aes.decrypt_block(cipher)), to_hex(plain));
}

TEST_P(CryptoCipher, Fips197AppendixA1KeyExpansion) {
    const BlockCipher aes = make_with_key("2b7e151628aed2a6abf7158809cf4f3c");
    const ByteView w = aes.expanded_key();
    ASSERT_EQ(w.size(), 176u);
    EXPECT_EQ(to_hex(w.subspan(0, 16)), "2b7e151628aed2a6abf7158809cf4f3c");
    EXPECT_EQ(to_hex(w.subspan(16, 16)), "a0fafe1788542cb123a339392a6c7605");
    EXPECT_EQ(to_hex(w.subspan(160, 16)), "d014f9a8c9ee2589e13f0cc8b6630ca6");
}

TEST_P(CryptoCipher, Section12_4BlockVectors) {
    const std::array<std::uint8_t, 16> zeros{};
    const Bytes counting = unhex("000102030405060708090a0b0c0d0e0f");

    const BlockCipher v5 = make(Cipher::V5Aes128);
    EXPECT_EQ(to_hex(v5.encrypt_block(zeros)), "ec7c7e75b1923978eac4b2d2260235d5");
    EXPECT_EQ(to_hex(v5.decrypt_block(zeros)), "9f1680f29feed1274e875c9d86d107af");

    const BlockCipher v6 = make(Cipher::V6Aes128Tweaked);
    EXPECT_EQ(to_hex(v6.encrypt_block(zeros)), "8ca59de0c483c04aa7026a22d6dd208e");
    EXPECT_EQ(to_hex(v6.decrypt_block(zeros)), "8a1a5b385caaff8dd0ce3913d2cbc26f");
    EXPECT_EQ(to_hex(v6.encrypt_block(counting)), "ca89ca11b2c4e77a94e806af17136b38");

    const BlockCipher v4 = make(Cipher::V4Rijndael160);
    EXPECT_EQ(v4.rounds(), 11);
    EXPECT_EQ(to_hex(v4.encrypt_block(zeros)), "933030f10e2e7782b80915d5778a4957");
    EXPECT_EQ(to_hex(v4.decrypt_block(unhex("933030f10e2e7782b80915d5778a4957"))), to_hex(zeros));
}

TEST_P(CryptoCipher, Section7_2ExpandedV4Key) {
    const BlockCipher v4 = make(Cipher::V4Rijndael160);
    EXPECT_EQ(v4.expanded_key().size(), 192u);
    EXPECT_EQ(to_hex(v4.expanded_key()),
              "053d8307f9e5f088eb5ea6686cf037c7e4efd2d6db88756e226d85e6c933238e"
              "a5c31449412cc69fa83caeed8a512b0b43620885e6a11ccca78dda53f16b43b1"
              "7b3a68ba3858603fdef97cf37974a6a06b4fa3071075cbbd282dab82f6d4d771"
              "8fa071d19bec9d748b9956c9a3b4fd4b55602a3adac05beb01d574238a4c22ea"
              "29f8dfa17c98f59ba658ae702b312507a17d07ed8885d84cf41d2dd7524583a7"
              "c5dd790764a07eeaec25a6a618388b714a7d08d621ed8fd1454df13ba968579d");
}

TEST_P(CryptoCipher, Section7_3TweakedV6Schedule) {
    const BlockCipher v6 = make(Cipher::V6Aes128Tweaked);
    const ByteView w = v6.expanded_key();
    ASSERT_EQ(w.size(), 176u);
    EXPECT_EQ(to_hex(w),
              "a94a4195e201432d9bcb460405d84a21c99cbcfe2b9dffd3b056b9d7b58ef3f6"
              "d291fe2bf90c01f8495ab82ffcd44bd99e22cb9b672eca632e74724cd2a03995"
              "0530e12e111e2b4d3f6a5901edca609412e0c37b03fee8363c94b137d15ed1a3"
              "63dec9456920217355b4904484ea41e7ad5d5d1ac47d7c6991c9ec2d1523adca"
              "efc82943cfb5552a5e7cb9074b5f14cddf3294f01087c1da4efb78dd05a46c10"
              "a0625e9bb0e59f41fe1ee79cfbba8b8c");
    EXPECT_EQ(w[64], 0x05);
    EXPECT_EQ(w[96], 0x63);
    EXPECT_EQ(w[128], 0xef);

    // The untweaked expansion of the same key differs in exactly those three bytes (76 / 6a / 0b).
    const BlockCipher plain = BlockCipher::with_key(kKeyV6, false, GetParam());
    const ByteView u = plain.expanded_key();
    ASSERT_EQ(u.size(), 176u);
    for (std::size_t i = 0; i < u.size(); ++i) {
        if (i == 64 || i == 96 || i == 128) continue;
        EXPECT_EQ(u[i], w[i]) << "byte " << i;
    }
    EXPECT_EQ(u[64], 0x76);
    EXPECT_EQ(u[96], 0x6a);
    EXPECT_EQ(u[128], 0x0b);
    // with_key(kKeyV6, true) is the protocol's v6 cipher.
    EXPECT_EQ(to_hex(BlockCipher::with_key(kKeyV6, true, GetParam()).expanded_key()), to_hex(w));
}

// §6.2: the v4 MAC equals the last block of a zero-IV CBC encryption of the bit-padded message, here with the
// implementation under test (v4_mac itself uses the process-wide Impl::Auto instance).
TEST_P(CryptoCipher, V4MacAsCbcOfBitPaddedMessage) {
    const BlockCipher v4 = make(Cipher::V4Rijndael160);
    const std::array<std::uint8_t, 16> zero_iv{};
    auto cbc_mac = [&](Bytes msg) {
        msg.push_back(0x80);
        while (msg.size() % 16 != 0) msg.push_back(0x00);
        const Bytes c = v4.cbc_encrypt(zero_iv, msg);
        return to_hex(ByteView(c).last(16));
    };
    EXPECT_EQ(cbc_mac(Bytes(236, 0)), "4c1b4de4008508d66d9ed22963ae52b2");
    EXPECT_EQ(cbc_mac(unhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")),
              "63a8205f72a50cd39be8c47bf15b1d07");
    const Bytes request = unhex(kV4Request);
    EXPECT_EQ(cbc_mac(slice(request, 0, 236)), "2984b75c970a16bae34b2017fc64a0eb");
}

// §12.3 v5: X = D(IV_q), request decryption, response decryption and re-encryption.
TEST_P(CryptoCipher, Section12_3V5Exchange) {
    const BlockCipher v5 = make(Cipher::V5Aes128);
    const Bytes request = unhex(kV5Request);
    const Bytes response = unhex(kV5Response);
    ASSERT_EQ(request.size(), 260u);
    ASSERT_EQ(response.size(), 212u);
    const Bytes iv_q = slice(request, 4, 16);

    const std::array<std::uint8_t, 16> x = v5.decrypt_block(iv_q);
    EXPECT_EQ(to_hex(x), "86bf207b6970ef43830e988ff1e6f329");

    const Bytes request_plain = v5.cbc_decrypt(iv_q, slice(request, 20, 240));
    EXPECT_EQ(to_hex(request_plain), std::string(kV5RequestPlainBase) + "04040404");
    EXPECT_EQ(pkcs7_unpadded_length(request_plain), std::optional<std::size_t>(236));
    EXPECT_EQ(to_hex(v5.cbc_encrypt(iv_q, request_plain)), to_hex(slice(request, 20, 240)));

    // The emulators' view: zero-IV CBC over IV_q || ciphertext yields X then the plaintext.
    const std::array<std::uint8_t, 16> zero_iv{};
    const Bytes joint = v5.cbc_decrypt(zero_iv, slice(request, 4, 256));
    EXPECT_EQ(to_hex(slice(joint, 0, 16)), to_hex(x));
    EXPECT_EQ(to_hex(slice(joint, 16, 240)), to_hex(request_plain));

    // Response: IV_r == IV_q, body = base || S^X || SHA-256(S), pad 2.
    const Bytes iv_r = slice(response, 4, 16);
    EXPECT_EQ(to_hex(iv_r), to_hex(iv_q));
    const Bytes q = v5.cbc_decrypt(iv_r, slice(response, 20, response.size() - 20));
    ASSERT_EQ(q.size(), 192u);
    const std::optional<std::size_t> body_len = pkcs7_unpadded_length(q);
    ASSERT_EQ(body_len, std::optional<std::size_t>(190));
    const Bytes body = slice(q, 0, *body_len);
    EXPECT_EQ(to_hex(body), kV5PlainBody);

    Bytes s = slice(body, kRandomXoredIvsOff, 16);
    for (std::size_t i = 0; i < 16; ++i) s[i] ^= x[i];
    EXPECT_EQ(to_hex(s), kRandomS);
    EXPECT_EQ(to_hex(sha256(s)), kSha256OfS);
    EXPECT_EQ(to_hex(slice(body, kHashOff, 32)), kSha256OfS);

    EXPECT_EQ(to_hex(v5.cbc_encrypt(iv_r, pkcs7_pad(body))), to_hex(slice(response, 20, response.size() - 20)));
}

// §12.3 v6 and §8.4/§8.5: X, request decryption, response decryption and HMAC verification.
TEST_P(CryptoCipher, Section12_3V6Exchange) {
    const BlockCipher v6 = make(Cipher::V6Aes128Tweaked);
    const Bytes request = unhex(kV6Request);
    const Bytes response = unhex(kV6Response);
    ASSERT_EQ(request.size(), 260u);
    ASSERT_EQ(response.size(), 260u);
    const Bytes iv_q = slice(request, 4, 16);

    const std::array<std::uint8_t, 16> x = v6.decrypt_block(iv_q);
    EXPECT_EQ(to_hex(x), "7c49a81964119e65c24b99a098afe453");

    const Bytes request_plain = v6.cbc_decrypt(iv_q, slice(request, 20, 240));
    EXPECT_EQ(to_hex(request_plain), std::string(kV6RequestPlainBase) + "04040404");
    EXPECT_EQ(to_hex(v6.cbc_encrypt(iv_q, request_plain)), to_hex(slice(request, 20, 240)));

    // Response.
    const Bytes iv_r = slice(response, 4, 16);
    EXPECT_EQ(to_hex(iv_r), "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
    const Bytes q = v6.cbc_decrypt(iv_r, slice(response, 20, 240));
    ASSERT_EQ(q.size(), 240u);
    const std::optional<std::size_t> body_len = pkcs7_unpadded_length(q);
    ASSERT_EQ(body_len, std::optional<std::size_t>(230));
    const Bytes body = slice(q, 0, *body_len);
    EXPECT_EQ(to_hex(body), kV6PlainBody);

    Bytes s = slice(body, kRandomXoredIvsOff, 16);
    for (std::size_t i = 0; i < 16; ++i) s[i] ^= x[i];
    EXPECT_EQ(to_hex(s), kRandomS);
    EXPECT_EQ(to_hex(slice(body, kHashOff, 32)), to_hex(sha256(s)));
    EXPECT_EQ(to_hex(slice(body, kHwIdOff, 8)), "3a1c049600b60076");
    EXPECT_EQ(to_hex(slice(body, kXoredIvsOff, 16)), to_hex(x));

    // HMAC: key from the echoed ClientTime, data = D(IV_r) || body up to the HMAC field, field = last 16 bytes.
    const std::uint64_t client_time = load_u64le(body.data() + kClientTimeOff);
    EXPECT_EQ(client_time, 0x01D7657AB62CD55CULL);
    const std::array<std::uint8_t, 16> d_iv_r = v6.decrypt_block(iv_r);
    EXPECT_EQ(to_hex(d_iv_r), "ea86076dcb5e1dca591b247e741baddd");
    const std::array<std::uint8_t, 16> kh = v6_hmac_key(client_time);
    EXPECT_EQ(to_hex(kh), "699238519ac59c996f93b997393a4a62");
    const Bytes hmac_data = concat(d_iv_r, slice(body, 0, kHmacOff));
    EXPECT_EQ(hmac_data.size(), 16 + 116 + kPidSize);
    const std::array<std::uint8_t, 32> hmac_full = hmac_sha256(kh, hmac_data);
    EXPECT_EQ(to_hex(hmac_full), "d8d425c1107d407b9700dba34c8a9e43288803fe0a7011fa1ab536dec837e46a");
    EXPECT_EQ(to_hex(ByteView(hmac_full).last(16)), "288803fe0a7011fa1ab536dec837e46a");
    EXPECT_EQ(to_hex(slice(body, kHmacOff, 16)), "288803fe0a7011fa1ab536dec837e46a");

    EXPECT_EQ(to_hex(v6.cbc_encrypt(iv_r, pkcs7_pad(body))), to_hex(slice(response, 20, 240)));
}

// §12.2: the genuine Windows Server 2022 request decrypts with the tweaked v6 cipher.
TEST_P(CryptoCipher, Section12_2GenuineWindowsRequest) {
    const BlockCipher v6 = make(Cipher::V6Aes128Tweaked);
    const Bytes pdu = unhex(kGenuinePdu);
    ASSERT_EQ(pdu.size(), 292u);
    const Bytes kms = slice(pdu, 32, 260);
    EXPECT_EQ(to_hex(slice(kms, 0, 4)), "00000600");
    const Bytes iv_q = slice(kms, 4, 16);
    EXPECT_EQ(to_hex(v6.decrypt_block(iv_q)), "988fca82b1b8c28ef8567c9697e660b0");
    const Bytes plain = v6.cbc_decrypt(iv_q, slice(kms, 20, 240));
    EXPECT_EQ(to_hex(plain), kGenuinePlain);
    EXPECT_EQ(pkcs7_unpadded_length(plain), std::optional<std::size_t>(236));
    EXPECT_EQ(load_u64le(plain.data() + 84), 0x01D7657AB62CD55CULL);
}

TEST_P(CryptoCipher, CbcRoundTripOnRandomData) {
    SeededRandom rng(0x6b6d7363ULL);
    for (Cipher c : {Cipher::V4Rijndael160, Cipher::V5Aes128, Cipher::V6Aes128Tweaked}) {
        const BlockCipher cipher = make(c);
        for (std::size_t len : {0u, 16u, 32u, 240u, 4096u}) {
            Bytes iv(16), plain(len);
            rng.fill(iv);
            rng.fill(plain);
            const Bytes ct = cipher.cbc_encrypt(iv, plain);
            ASSERT_EQ(ct.size(), len);
            if (len >= 32) {
                // Chaining: block 1 = E(P1 ^ C0).
                std::array<std::uint8_t, 16> in{};
                for (std::size_t i = 0; i < 16; ++i) in[i] = static_cast<std::uint8_t>(plain[16 + i] ^ ct[i]);
                EXPECT_EQ(to_hex(cipher.encrypt_block(in)), to_hex(slice(ct, 16, 16)));
            }
            EXPECT_EQ(to_hex(cipher.cbc_decrypt(iv, ct)), to_hex(plain));
        }
    }
}

TEST_P(CryptoCipher, CbcRejectsBadLengths) {
    const BlockCipher v5 = make(Cipher::V5Aes128);
    const Bytes iv(16, 0xAA);
    EXPECT_TRUE(v5.cbc_encrypt(iv, Bytes(15, 1)).empty());
    EXPECT_TRUE(v5.cbc_decrypt(iv, Bytes(17, 1)).empty());
    EXPECT_TRUE(v5.cbc_encrypt(Bytes(15, 0), Bytes(16, 1)).empty());
    EXPECT_TRUE(v5.cbc_decrypt(Bytes(17, 0), Bytes(16, 1)).empty());
    EXPECT_TRUE(v5.cbc_encrypt(iv, Bytes{}).empty());
}

TEST_P(CryptoCipher, BlockInPlaceAndViewSizeChecks) {
    const BlockCipher v6 = make(Cipher::V6Aes128Tweaked);
    std::array<std::uint8_t, 16> block{};
    v6.encrypt_block(block.data(), block.data());
    EXPECT_EQ(to_hex(block), "8ca59de0c483c04aa7026a22d6dd208e");
    v6.decrypt_block(block.data(), block.data());
    EXPECT_EQ(to_hex(block), "00000000000000000000000000000000");
    EXPECT_THROW(v6.encrypt_block(Bytes(15, 0)), std::invalid_argument);
    EXPECT_THROW(v6.decrypt_block(Bytes(17, 0)), std::invalid_argument);
}

// Standard AES-128 (the v5 cipher without a fixed key) agrees with OpenSSL on random keys and blocks.
TEST_P(CryptoCipher, Aes128MatchesOpenSsl) {
    SeededRandom rng(197);
    std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
    ASSERT_NE(ctx, nullptr);
    for (int k = 0; k < 50; ++k) {
        std::array<std::uint8_t, 16> key{};
        rng.fill(key);
        const BlockCipher ours = BlockCipher::with_key(key, false, GetParam());
        std::array<std::uint8_t, 16 * 20> plain{};
        rng.fill(plain);
        std::array<std::uint8_t, 16 * 20> expected{};
        int out_len = 0;
        ASSERT_EQ(EVP_EncryptInit_ex(ctx.get(), EVP_aes_128_ecb(), nullptr, key.data(), nullptr), 1);
        ASSERT_EQ(EVP_CIPHER_CTX_set_padding(ctx.get(), 0), 1);
        ASSERT_EQ(EVP_EncryptUpdate(ctx.get(), expected.data(), &out_len, plain.data(), static_cast<int>(plain.size())),
                  1);
        ASSERT_EQ(out_len, static_cast<int>(plain.size()));
        for (std::size_t off = 0; off < plain.size(); off += 16) {
            std::uint8_t out[16];
            ours.encrypt_block(plain.data() + off, out);
            ASSERT_EQ(to_hex(ByteView(out, 16)), to_hex(ByteView(expected).subspan(off, 16)));
            ours.decrypt_block(expected.data() + off, out);
            ASSERT_EQ(to_hex(ByteView(out, 16)), to_hex(ByteView(plain).subspan(off, 16)));
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Impls, CryptoCipher, ::testing::Values(Impl::Portable, Impl::AesNi),
                         [](const ::testing::TestParamInfo<Impl>& info) { return impl_name(info.param); });

// ---- Implementation selection -------------------------------------------------------------------

TEST(CryptoImpl, SelectionFollowsCpu) {
    const Impl best = aesni_available() ? Impl::AesNi : Impl::Portable;
    EXPECT_EQ(BlockCipher(Cipher::V5Aes128).impl(), best);
    EXPECT_EQ(BlockCipher(Cipher::V5Aes128, Impl::Auto).impl(), best);
    EXPECT_EQ(BlockCipher(Cipher::V5Aes128, Impl::AesNi).impl(), best);
    EXPECT_EQ(BlockCipher(Cipher::V5Aes128, Impl::Portable).impl(), Impl::Portable);
    EXPECT_EQ(cipher_for_major(6).impl(), best);
}

TEST(CryptoImpl, WithKeyRejectsBadKeySizes) {
    for (std::size_t n : {0u, 15u, 17u, 24u, 32u})
        EXPECT_THROW(BlockCipher::with_key(Bytes(n, 0), false), std::invalid_argument) << n;
    EXPECT_EQ(BlockCipher::with_key(Bytes(20, 0), false).rounds(), 11);
}

// Portable and AES-NI agree on 10,000 random blocks per cipher, in both directions.
TEST(CryptoImpl, PortableAndAesNiAgreeOnRandomBlocks) {
    if (!aesni_available()) GTEST_SKIP() << "CPU has no AES-NI";
    SeededRandom rng(10000);
    for (Cipher c : {Cipher::V4Rijndael160, Cipher::V5Aes128, Cipher::V6Aes128Tweaked}) {
        const BlockCipher portable(c, Impl::Portable);
        const BlockCipher aesni(c, Impl::AesNi);
        ASSERT_EQ(portable.impl(), Impl::Portable);
        ASSERT_EQ(aesni.impl(), Impl::AesNi);
        EXPECT_EQ(to_hex(portable.expanded_key()), to_hex(aesni.expanded_key()));
        int mismatches = 0;
        for (int i = 0; i < 10000; ++i) {
            std::array<std::uint8_t, 16> block{}, e1{}, e2{}, d1{}, d2{};
            rng.fill(block);
            portable.encrypt_block(block.data(), e1.data());
            aesni.encrypt_block(block.data(), e2.data());
            portable.decrypt_block(block.data(), d1.data());
            aesni.decrypt_block(block.data(), d2.data());
            std::array<std::uint8_t, 16> back{};
            aesni.decrypt_block(e1.data(), back.data());
            if (e1 != e2 || d1 != d2 || back != block) ++mismatches;
        }
        EXPECT_EQ(mismatches, 0) << "cipher " << static_cast<int>(c);
    }
}

// Whole-message CBC decryption and CBC-MAC (AES-NI: four blocks at a time, round keys loaded once) agree
// with the portable code and with block-by-block CBC encryption, for every message length from 0 to 21
// blocks: the four-block body, every tail, and messages shorter than four blocks.
TEST(CryptoImpl, WholeMessageCbcAgreesAcrossImplementationsAndLengths) {
    if (!aesni_available()) GTEST_SKIP() << "CPU has no AES-NI";
    SeededRandom rng(21);
    for (Cipher c : {Cipher::V4Rijndael160, Cipher::V5Aes128, Cipher::V6Aes128Tweaked}) {
        const BlockCipher portable(c, Impl::Portable), aesni(c, Impl::AesNi);
        for (std::size_t blocks = 0; blocks <= 21; ++blocks) {
            SCOPED_TRACE(blocks);
            std::array<std::uint8_t, 16> iv{};
            rng.fill(iv);
            Bytes plain(16 * blocks);
            rng.fill(plain);
            const Bytes cipher = portable.cbc_encrypt(iv, plain);
            EXPECT_EQ(to_hex(aesni.cbc_decrypt(iv, cipher)), to_hex(plain));
            EXPECT_EQ(to_hex(portable.cbc_decrypt(iv, cipher)), to_hex(plain));
            // The MAC chain from `iv` is the last block of CBC encryption under that IV.
            std::array<std::uint8_t, 16> mac_ni = iv, mac_portable = iv;
            aesni.cbc_mac(mac_ni.data(), plain);
            portable.cbc_mac(mac_portable.data(), plain);
            const std::string want = blocks ? to_hex(ByteView(cipher).last(16)) : to_hex(iv);
            EXPECT_EQ(to_hex(mac_ni), want);
            EXPECT_EQ(to_hex(mac_portable), want);
        }
    }
}

// ---- Process-wide ciphers, MAC, hashes, v6 key, padding -----------------------------------------

TEST(CryptoCipherForMajor, ReturnsTheProtocolCiphers) {
    const BlockCipher& v4 = cipher_for_major(4);
    const BlockCipher& v5 = cipher_for_major(5);
    const BlockCipher& v6 = cipher_for_major(6);
    EXPECT_EQ(&v4, &cipher_for_major(4));
    EXPECT_EQ(&v6, &cipher_for_major(6));
    EXPECT_EQ(v4.rounds(), 11);
    EXPECT_EQ(v5.rounds(), 10);
    EXPECT_EQ(v6.rounds(), 10);
    const std::array<std::uint8_t, 16> zeros{};
    EXPECT_EQ(to_hex(v4.encrypt_block(zeros)), "933030f10e2e7782b80915d5778a4957");
    EXPECT_EQ(to_hex(v5.encrypt_block(zeros)), "ec7c7e75b1923978eac4b2d2260235d5");
    EXPECT_EQ(to_hex(v6.encrypt_block(zeros)), "8ca59de0c483c04aa7026a22d6dd208e");
    for (int bad : {-1, 0, 1, 3, 7, 0x40000}) EXPECT_THROW(cipher_for_major(bad), std::invalid_argument) << bad;
}

TEST(CryptoV4Mac, Section12_4Vectors) {
    EXPECT_EQ(to_hex(v4_mac(Bytes(236, 0))), "4c1b4de4008508d66d9ed22963ae52b2");
    EXPECT_EQ(to_hex(v4_mac(unhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"))),
              "63a8205f72a50cd39be8c47bf15b1d07");
}

TEST(CryptoV4Mac, Section12_3RequestAndResponse) {
    const Bytes request = unhex(kV4Request);
    const Bytes response = unhex(kV4Response);
    ASSERT_EQ(request.size(), 252u);
    ASSERT_EQ(response.size(), 158u);
    EXPECT_EQ(to_hex(v4_mac(ByteView(request).first(236))), "2984b75c970a16bae34b2017fc64a0eb");
    EXPECT_EQ(to_hex(ByteView(request).last(16)), "2984b75c970a16bae34b2017fc64a0eb");
    EXPECT_EQ(to_hex(v4_mac(ByteView(response).first(kBaseResponseLen))), "74906e6737decb9052b4877cc8740904");
    EXPECT_EQ(to_hex(ByteView(response).last(16)), "74906e6737decb9052b4877cc8740904");
}

TEST(CryptoV4Mac, PaddingAlwaysAddsABlock) {
    // A 16-byte message is MACed as two blocks: M, then 80 00..00.
    const Bytes m = unhex("00112233445566778899aabbccddeeff");
    const BlockCipher& v4 = cipher_for_major(4);
    std::array<std::uint8_t, 16> s = v4.encrypt_block(m);
    s[0] ^= 0x80;
    EXPECT_EQ(to_hex(v4_mac(m)), to_hex(v4.encrypt_block(s)));
    // The empty message is the single block 80 00..00.
    std::array<std::uint8_t, 16> pad{};
    pad[0] = 0x80;
    EXPECT_EQ(to_hex(v4_mac(ByteView{})), to_hex(v4.encrypt_block(pad)));
}

TEST(CryptoHash, Sha256) {
    const std::string abc = "abc";
    const ByteView abc_bytes(reinterpret_cast<const std::uint8_t*>(abc.data()), abc.size());
    EXPECT_EQ(to_hex(sha256(abc_bytes)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(to_hex(sha256(ByteView{})), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(to_hex(sha256(unhex(kRandomS))), kSha256OfS);
}

TEST(CryptoHash, HmacSha256) {
    const std::string abc = "abc";
    const ByteView abc_bytes(reinterpret_cast<const std::uint8_t*>(abc.data()), abc.size());
    EXPECT_EQ(to_hex(hmac_sha256(unhex("000102030405060708090a0b0c0d0e0f"), abc_bytes)),
              "d601cc177559b0248459787f7e804ed7f27689b5995c59b661802d9682fdf8d2");
    EXPECT_EQ(to_hex(hmac_sha256(ByteView{}, ByteView{})),
              "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

// The context keeps its last key and skips setting it again: every call must still use exactly the key it is
// given, whether that is the last one, another, one longer than a SHA-256 block (never kept) or empty.
TEST(CryptoHash, HmacSha256KeyReuseNeverLeaksAKey) {
    const auto text = [](std::string_view s) { return Bytes(s.begin(), s.end()); };
    const Bytes k1(20, 0x0b), jefe = text("Jefe"), long_key(131, 0xaa);
    const Bytes hi = text("Hi There"), want = text("what do ya want for nothing?");
    struct Call {
        const Bytes* key;
        const Bytes* data;
        const char* hex;
    };
    // RFC 4231 cases 1, 2 and 6, and the same keys with the other message (Python's hmac module).
    const Bytes big = text("Test Using Larger Than Block-Size Key - Hash Key First");
    const Call calls[] = {
        {&k1, &hi, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {&k1, &hi, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {&k1, &want, "6a055afb1295ef9de35605919cbb8f86f51ee183901f001e6dc53ec3d2480ba9"},
        {&jefe, &want, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        {&jefe, &hi, "6bfb115ca30df3be0dfdffe79a51cbee88186db55acc287af148d7ff6220f92e"},
        {&long_key, &big, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
        {&long_key, &hi, "59ba1905fc8de5590cdea645f741312c20dbe6eff55bc4c8e66aaa97d3cfe114"},
        {&k1, &hi, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
    };
    for (const Call& c : calls) EXPECT_EQ(to_hex(hmac_sha256(*c.key, *c.data)), c.hex);
    EXPECT_EQ(to_hex(hmac_sha256(ByteView{}, ByteView{})),
              "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
    EXPECT_EQ(to_hex(hmac_sha256(ByteView(jefe).first(0), ByteView{})),
              "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
    EXPECT_EQ(to_hex(hmac_sha256(jefe, hi)), "6bfb115ca30df3be0dfdffe79a51cbee88186db55acc287af148d7ff6220f92e");
}

TEST(CryptoV6Key, Section12_4SeedsAndKeys) {
    EXPECT_EQ(v6_hmac_seed(0x01DD7A10FCC7C980ULL), 0x331937194f251ef1ULL);
    EXPECT_EQ(to_hex(v6_hmac_key(0x01DD7A10FCC7C980ULL)), "2ccea25979db8b01c60a078c79e76ca8");
    EXPECT_EQ(v6_hmac_seed(0x01D7657AB62CD55CULL), 0x33137acd18be9005ULL);
    EXPECT_EQ(to_hex(v6_hmac_key(0x01D7657AB62CD55CULL)), "699238519ac59c996f93b997393a4a62");
    // The last key is kept: the same time slot gives it again, another slot never does.
    EXPECT_EQ(to_hex(v6_hmac_key(0x01D7657AB62CD55CULL + 1)), "699238519ac59c996f93b997393a4a62");
    EXPECT_EQ(to_hex(v6_hmac_key(0x01DD7A10FCC7C980ULL)), "2ccea25979db8b01c60a078c79e76ca8");
    EXPECT_EQ(to_hex(v6_hmac_key(0x01D7657AB62CD55CULL)), "699238519ac59c996f93b997393a4a62");
}

TEST(CryptoV6Key, SeedArithmetic) {
    constexpr std::uint64_t c1 = 0x00000022816889BDULL;
    constexpr std::uint64_t c3 = 0x3156CD5AC628477AULL;
    EXPECT_EQ(v6_hmac_seed(0), c3);
    EXPECT_EQ(v6_hmac_seed(c1 - 1), c3);  // same time slot
    EXPECT_EQ(v6_hmac_seed(c1), c3 + 0x000000208CBAB5EDULL);
    // Wraps modulo 2^64 for large times without UB.
    const std::uint64_t max_t = ~std::uint64_t{0};
    EXPECT_EQ(v6_hmac_seed(max_t), (max_t / c1) * 0x000000208CBAB5EDULL + c3);
}

TEST(CryptoPkcs7, PadAddsOneToSixteenBytes) {
    EXPECT_EQ(to_hex(pkcs7_pad(ByteView{})), "10101010101010101010101010101010");
    EXPECT_EQ(to_hex(pkcs7_pad(Bytes(15, 0xAB))), "ababababababababababababababab01");
    const Bytes aligned = pkcs7_pad(Bytes(16, 0xCD));
    ASSERT_EQ(aligned.size(), 32u);
    EXPECT_EQ(to_hex(ByteView(aligned).last(16)), "10101010101010101010101010101010");
    const Bytes request = pkcs7_pad(Bytes(236, 0));
    ASSERT_EQ(request.size(), 240u);
    EXPECT_EQ(to_hex(ByteView(request).last(4)), "04040404");
    for (std::size_t len = 0; len < 64; ++len) {
        const Bytes padded = pkcs7_pad(Bytes(len, 0x55));
        EXPECT_EQ(padded.size() % 16, 0u);
        EXPECT_GT(padded.size(), len);
        EXPECT_LE(padded.size(), len + 16);
        EXPECT_EQ(pkcs7_unpadded_length(padded), std::optional<std::size_t>(len));
    }
}

TEST(CryptoPkcs7, RejectsInvalidPadding) {
    auto block_ending_with = [](std::initializer_list<std::uint8_t> tail) {
        Bytes b(16 - tail.size(), 0x00);
        b.insert(b.end(), tail);
        return b;
    };
    EXPECT_EQ(pkcs7_unpadded_length(ByteView{}), std::nullopt);                             // empty
    EXPECT_EQ(pkcs7_unpadded_length(block_ending_with({0x00})), std::nullopt);              // n = 0
    EXPECT_EQ(pkcs7_unpadded_length(block_ending_with({0x11})), std::nullopt);              // n = 17
    EXPECT_EQ(pkcs7_unpadded_length(block_ending_with({0xFF})), std::nullopt);              // n = 255
    EXPECT_EQ(pkcs7_unpadded_length(block_ending_with({0x03, 0x02, 0x03})), std::nullopt);  // mismatched
    EXPECT_EQ(pkcs7_unpadded_length(block_ending_with({0x04, 0x04, 0x04})), std::nullopt);  // too few bytes of n
    EXPECT_EQ(pkcs7_unpadded_length(Bytes(15, 0x01)), std::nullopt);                        // not a whole block
    Bytes full(16, 0x10);
    full[0] = 0x0F;  // n = 16 but one byte differs
    EXPECT_EQ(pkcs7_unpadded_length(full), std::nullopt);

    EXPECT_EQ(pkcs7_unpadded_length(block_ending_with({0x01})), std::optional<std::size_t>(15));
    EXPECT_EQ(pkcs7_unpadded_length(Bytes(16, 0x10)), std::optional<std::size_t>(0));
    EXPECT_EQ(pkcs7_unpadded_length(block_ending_with({0x02, 0x02})), std::optional<std::size_t>(14));
}

}  // namespace
}  // namespace kmscope::crypto
