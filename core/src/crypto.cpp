// Block ciphers, CBC, the v4 MAC and the hash-based helpers of the KMS protocol (docs/protocol.md §6.2, §7, §8.4).
//
// Layout of this file:
//   1. Portable Rijndael (128-bit block, Nk = 4 or 5): S-box tables, key expansion, cipher and inverse cipher.
//   2. AES-NI path (x86 only), compiled per function with __attribute__((target)) so the library still runs on
//      CPUs without AES-NI; selected at run time.
//   3. BlockCipher, CBC, cipher_for_major, the v4 MAC, SHA-256/HMAC (OpenSSL), the v6 HMAC key, PKCS#7.
//
// State and round keys are byte arrays in FIPS-197 order: byte i of a block is state[row = i % 4][col = i / 4].

#include "kmscope/crypto.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#define KMSCOPE_CRYPTO_X86 1
#include <immintrin.h>
#else
#define KMSCOPE_CRYPTO_X86 0
#endif

namespace kmscope::crypto {

namespace {

// ---- 1. Portable Rijndael ----------------------------------------------------------------------

// FIPS-197 Figure 7.
constexpr std::array<std::uint8_t, 256> kSbox{
    0x63, 0x7c, 0x77, 0x7b, 0xf2, 0x6b, 0x6f, 0xc5, 0x30, 0x01, 0x67, 0x2b, 0xfe, 0xd7, 0xab, 0x76,  //
    0xca, 0x82, 0xc9, 0x7d, 0xfa, 0x59, 0x47, 0xf0, 0xad, 0xd4, 0xa2, 0xaf, 0x9c, 0xa4, 0x72, 0xc0,  //
    0xb7, 0xfd, 0x93, 0x26, 0x36, 0x3f, 0xf7, 0xcc, 0x34, 0xa5, 0xe5, 0xf1, 0x71, 0xd8, 0x31, 0x15,  //
    0x04, 0xc7, 0x23, 0xc3, 0x18, 0x96, 0x05, 0x9a, 0x07, 0x12, 0x80, 0xe2, 0xeb, 0x27, 0xb2, 0x75,  //
    0x09, 0x83, 0x2c, 0x1a, 0x1b, 0x6e, 0x5a, 0xa0, 0x52, 0x3b, 0xd6, 0xb3, 0x29, 0xe3, 0x2f, 0x84,  //
    0x53, 0xd1, 0x00, 0xed, 0x20, 0xfc, 0xb1, 0x5b, 0x6a, 0xcb, 0xbe, 0x39, 0x4a, 0x4c, 0x58, 0xcf,  //
    0xd0, 0xef, 0xaa, 0xfb, 0x43, 0x4d, 0x33, 0x85, 0x45, 0xf9, 0x02, 0x7f, 0x50, 0x3c, 0x9f, 0xa8,  //
    0x51, 0xa3, 0x40, 0x8f, 0x92, 0x9d, 0x38, 0xf5, 0xbc, 0xb6, 0xda, 0x21, 0x10, 0xff, 0xf3, 0xd2,  //
    0xcd, 0x0c, 0x13, 0xec, 0x5f, 0x97, 0x44, 0x17, 0xc4, 0xa7, 0x7e, 0x3d, 0x64, 0x5d, 0x19, 0x73,  //
    0x60, 0x81, 0x4f, 0xdc, 0x22, 0x2a, 0x90, 0x88, 0x46, 0xee, 0xb8, 0x14, 0xde, 0x5e, 0x0b, 0xdb,  //
    0xe0, 0x32, 0x3a, 0x0a, 0x49, 0x06, 0x24, 0x5c, 0xc2, 0xd3, 0xac, 0x62, 0x91, 0x95, 0xe4, 0x79,  //
    0xe7, 0xc8, 0x37, 0x6d, 0x8d, 0xd5, 0x4e, 0xa9, 0x6c, 0x56, 0xf4, 0xea, 0x65, 0x7a, 0xae, 0x08,  //
    0xba, 0x78, 0x25, 0x2e, 0x1c, 0xa6, 0xb4, 0xc6, 0xe8, 0xdd, 0x74, 0x1f, 0x4b, 0xbd, 0x8b, 0x8a,  //
    0x70, 0x3e, 0xb5, 0x66, 0x48, 0x03, 0xf6, 0x0e, 0x61, 0x35, 0x57, 0xb9, 0x86, 0xc1, 0x1d, 0x9e,  //
    0xe1, 0xf8, 0x98, 0x11, 0x69, 0xd9, 0x8e, 0x94, 0x9b, 0x1e, 0x87, 0xe9, 0xce, 0x55, 0x28, 0xdf,  //
    0x8c, 0xa1, 0x89, 0x0d, 0xbf, 0xe6, 0x42, 0x68, 0x41, 0x99, 0x2d, 0x0f, 0xb0, 0x54, 0xbb, 0x16,  //
};

// The inverse S-box, derived from kSbox at compile time.
constexpr std::array<std::uint8_t, 256> kInvSbox = [] {
    std::array<std::uint8_t, 256> inv{};
    for (std::size_t i = 0; i < 256; ++i) inv[kSbox[i]] = static_cast<std::uint8_t>(i);
    return inv;
}();
static_assert(kInvSbox[0x63] == 0x00 && kInvSbox[0x16] == 0xff && kInvSbox[0x00] == 0x52);

// Round constants Rcon[j] = x^(j-1) in GF(2^8); index 0 unused. Nk = 4 needs j <= 10, Nk = 5 needs j <= 9.
constexpr std::array<std::uint8_t, 11> kRcon{0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1b, 0x36};

// Multiplication by x in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1.
constexpr std::uint8_t xtime(std::uint8_t a) {
    return static_cast<std::uint8_t>((a << 1) ^ ((a & 0x80) ? 0x1b : 0x00));
}

// FIPS-197 §5.2 KeyExpansion for Nk = key.size() / 4 (4 or 5); fills 16 * (Nk + 7) bytes of `w`.
void expand_key(ByteView key, std::uint8_t* w) {
    const std::size_t nk = key.size() / 4;
    const std::size_t total_words = 4 * (nk + 7);  // 4 * (Nr + 1), Nr = Nk + 6
    std::memcpy(w, key.data(), key.size());
    for (std::size_t i = nk; i < total_words; ++i) {
        std::uint8_t temp[4];
        std::memcpy(temp, w + 4 * (i - 1), 4);
        if (i % nk == 0) {
            // temp = SubWord(RotWord(temp)) xor Rcon[i / Nk]
            const std::uint8_t first = temp[0];
            temp[0] = static_cast<std::uint8_t>(kSbox[temp[1]] ^ kRcon[i / nk]);
            temp[1] = kSbox[temp[2]];
            temp[2] = kSbox[temp[3]];
            temp[3] = kSbox[first];
        }
        for (std::size_t b = 0; b < 4; ++b) w[4 * i + b] = static_cast<std::uint8_t>(w[4 * (i - nk) + b] ^ temp[b]);
    }
}

// §7.3: after the complete expansion, XOR the first byte of round keys 4, 6 and 8.
void apply_v6_tweak(std::uint8_t* w) {
    w[64] ^= 0x73;
    w[96] ^= 0x09;
    w[128] ^= 0xE4;
}

void add_round_key(std::uint8_t s[16], const std::uint8_t* rk) {
    for (int i = 0; i < 16; ++i) s[i] ^= rk[i];
}

void sub_bytes(std::uint8_t s[16]) {
    for (int i = 0; i < 16; ++i) s[i] = kSbox[s[i]];
}

void inv_sub_bytes(std::uint8_t s[16]) {
    for (int i = 0; i < 16; ++i) s[i] = kInvSbox[s[i]];
}

// Row r is rotated left by r columns.
void shift_rows(std::uint8_t s[16]) {
    std::uint8_t t[16];
    for (int c = 0; c < 4; ++c)
        for (int r = 0; r < 4; ++r) t[r + 4 * c] = s[r + 4 * ((c + r) % 4)];
    std::memcpy(s, t, 16);
}

// Row r is rotated right by r columns.
void inv_shift_rows(std::uint8_t s[16]) {
    std::uint8_t t[16];
    for (int c = 0; c < 4; ++c)
        for (int r = 0; r < 4; ++r) t[r + 4 * ((c + r) % 4)] = s[r + 4 * c];
    std::memcpy(s, t, 16);
}

// Each column is multiplied by {03}x^3 + {01}x^2 + {01}x + {02}.
void mix_columns(std::uint8_t s[16]) {
    for (int c = 0; c < 4; ++c) {
        std::uint8_t* col = s + 4 * c;
        const std::uint8_t a0 = col[0], a1 = col[1], a2 = col[2], a3 = col[3];
        const std::uint8_t all = static_cast<std::uint8_t>(a0 ^ a1 ^ a2 ^ a3);
        // 2*a_i ^ 3*a_{i+1} ^ a_{i+2} ^ a_{i+3} == a_i ^ all ^ 2*(a_i ^ a_{i+1})
        col[0] = static_cast<std::uint8_t>(a0 ^ all ^ xtime(static_cast<std::uint8_t>(a0 ^ a1)));
        col[1] = static_cast<std::uint8_t>(a1 ^ all ^ xtime(static_cast<std::uint8_t>(a1 ^ a2)));
        col[2] = static_cast<std::uint8_t>(a2 ^ all ^ xtime(static_cast<std::uint8_t>(a2 ^ a3)));
        col[3] = static_cast<std::uint8_t>(a3 ^ all ^ xtime(static_cast<std::uint8_t>(a3 ^ a0)));
    }
}

// InvMixColumns = MixColumns after multiplying each column by {04}x^2 + {05} (The Design of Rijndael, §4.1.3):
// a0 ^= 4*(a0 ^ a2), a2 ^= 4*(a0 ^ a2), a1 ^= 4*(a1 ^ a3), a3 ^= 4*(a1 ^ a3).
void inv_mix_columns(std::uint8_t s[16]) {
    for (int c = 0; c < 4; ++c) {
        std::uint8_t* col = s + 4 * c;
        const std::uint8_t u = xtime(xtime(static_cast<std::uint8_t>(col[0] ^ col[2])));
        const std::uint8_t v = xtime(xtime(static_cast<std::uint8_t>(col[1] ^ col[3])));
        col[0] ^= u;
        col[1] ^= v;
        col[2] ^= u;
        col[3] ^= v;
    }
    mix_columns(s);
}

// FIPS-197 §5.1 Cipher with Nr rounds over round keys w[0..Nr].
void portable_encrypt(const std::uint8_t* w, int nr, const std::uint8_t in[16], std::uint8_t out[16]) {
    std::uint8_t s[16];
    std::memcpy(s, in, 16);
    add_round_key(s, w);
    for (int round = 1; round < nr; ++round) {
        sub_bytes(s);
        shift_rows(s);
        mix_columns(s);
        add_round_key(s, w + 16 * round);
    }
    sub_bytes(s);
    shift_rows(s);
    add_round_key(s, w + 16 * nr);
    std::memcpy(out, s, 16);
}

// FIPS-197 §5.3 InvCipher (the straightforward inverse, same round keys as encryption).
void portable_decrypt(const std::uint8_t* w, int nr, const std::uint8_t in[16], std::uint8_t out[16]) {
    std::uint8_t s[16];
    std::memcpy(s, in, 16);
    add_round_key(s, w + 16 * nr);
    for (int round = nr - 1; round >= 1; --round) {
        inv_shift_rows(s);
        inv_sub_bytes(s);
        add_round_key(s, w + 16 * round);
        inv_mix_columns(s);
    }
    inv_shift_rows(s);
    inv_sub_bytes(s);
    add_round_key(s, w);
    std::memcpy(out, s, 16);
}

// ---- 2. AES-NI -----------------------------------------------------------------------------------

#if KMSCOPE_CRYPTO_X86

bool cpu_has_aesni() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("aes") != 0;
}

// Cipher: whitening with round key 0, Nr - 1 full rounds, final round without MixColumns.
__attribute__((target("aes,sse2"))) void aesni_encrypt(const std::uint8_t* w, int nr, const std::uint8_t in[16],
                                                       std::uint8_t out[16]) {
    __m128i s = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in));
    s = _mm_xor_si128(s, _mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
    for (int round = 1; round < nr; ++round)
        s = _mm_aesenc_si128(s, _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 16 * round)));
    s = _mm_aesenclast_si128(s, _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 16 * nr)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), s);
}

// Equivalent inverse cipher over keys prepared by aesni_make_decryption_keys.
__attribute__((target("aes,sse2"))) void aesni_decrypt(const std::uint8_t* dk, int nr, const std::uint8_t in[16],
                                                       std::uint8_t out[16]) {
    __m128i s = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in));
    s = _mm_xor_si128(s, _mm_loadu_si128(reinterpret_cast<const __m128i*>(dk)));
    for (int round = 1; round < nr; ++round)
        s = _mm_aesdec_si128(s, _mm_loadu_si128(reinterpret_cast<const __m128i*>(dk + 16 * round)));
    s = _mm_aesdeclast_si128(s, _mm_loadu_si128(reinterpret_cast<const __m128i*>(dk + 16 * nr)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), s);
}

// Whole messages with the round keys loaded once, not per block. CBC decryption takes four blocks at a time:
// their decryptions are independent, so the AES unit works on four while each round's latency passes (one
// block at a time, each round waited for the one before). The MAC's chain is serial by nature.
__attribute__((target("aes,sse2"))) void aesni_cbc_decrypt(const std::uint8_t* dk, int nr, const std::uint8_t* iv,
                                                           const std::uint8_t* in, std::uint8_t* out,
                                                           std::size_t blocks) {
    auto load = [](const std::uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); };
    auto store = [](std::uint8_t* p, __m128i v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v); };
    __m128i chain = load(iv);
    std::size_t i = 0;
    for (; i + 4 <= blocks; i += 4) {
        const __m128i c0 = load(in + 16 * i), c1 = load(in + 16 * i + 16), c2 = load(in + 16 * i + 32),
                      c3 = load(in + 16 * i + 48);
        __m128i k = load(dk);
        __m128i s0 = _mm_xor_si128(c0, k), s1 = _mm_xor_si128(c1, k), s2 = _mm_xor_si128(c2, k),
                s3 = _mm_xor_si128(c3, k);
        for (int round = 1; round < nr; ++round) {
            k = load(dk + 16 * round);
            s0 = _mm_aesdec_si128(s0, k), s1 = _mm_aesdec_si128(s1, k);
            s2 = _mm_aesdec_si128(s2, k), s3 = _mm_aesdec_si128(s3, k);
        }
        k = load(dk + 16 * nr);
        store(out + 16 * i, _mm_xor_si128(_mm_aesdeclast_si128(s0, k), chain));
        store(out + 16 * i + 16, _mm_xor_si128(_mm_aesdeclast_si128(s1, k), c0));
        store(out + 16 * i + 32, _mm_xor_si128(_mm_aesdeclast_si128(s2, k), c1));
        store(out + 16 * i + 48, _mm_xor_si128(_mm_aesdeclast_si128(s3, k), c2));
        chain = c3;
    }
    for (; i < blocks; ++i) {
        const __m128i c = load(in + 16 * i);
        __m128i s = _mm_xor_si128(c, load(dk));
        for (int round = 1; round < nr; ++round) s = _mm_aesdec_si128(s, load(dk + 16 * round));
        store(out + 16 * i, _mm_xor_si128(_mm_aesdeclast_si128(s, load(dk + 16 * nr)), chain));
        chain = c;
    }
}

__attribute__((target("aes,sse2"))) void aesni_cbc_mac(const std::uint8_t* w, int nr, std::uint8_t state[16],
                                                       const std::uint8_t* in, std::size_t blocks) {
    auto load = [](const std::uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); };
    __m128i s = load(state);
    for (std::size_t i = 0; i < blocks; ++i) {
        s = _mm_xor_si128(_mm_xor_si128(s, load(in + 16 * i)), load(w));
        for (int round = 1; round < nr; ++round) s = _mm_aesenc_si128(s, load(w + 16 * round));
        s = _mm_aesenclast_si128(s, load(w + 16 * nr));
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(state), s);
}

// FIPS-197 §5.3.5: dk[0] = w[Nr], dk[i] = InvMixColumns(w[Nr - i]) for 1 <= i < Nr, dk[Nr] = w[0]. Valid for any
// round keys (InvMixColumns is linear), hence also for the tweaked v6 schedule and for Nr = 11.
__attribute__((target("aes,sse2"))) void aesni_make_decryption_keys(const std::uint8_t* w, int nr, std::uint8_t* dk) {
    const __m128i* rk = reinterpret_cast<const __m128i*>(w);
    __m128i* out = reinterpret_cast<__m128i*>(dk);
    _mm_storeu_si128(out, _mm_loadu_si128(rk + nr));
    for (int i = 1; i < nr; ++i) _mm_storeu_si128(out + i, _mm_aesimc_si128(_mm_loadu_si128(rk + nr - i)));
    _mm_storeu_si128(out + nr, _mm_loadu_si128(rk));
}

#else

bool cpu_has_aesni() {
    return false;
}

#endif

// ---- 3. helpers for the public API -------------------------------------------------------------

void xor_into(std::uint8_t* dst, const std::uint8_t* src) {
    for (std::size_t i = 0; i < kBlockSize; ++i) dst[i] ^= src[i];
}

// A pointer OpenSSL accepts even for empty input (span::data() may be null).
const unsigned char* nonnull_data(ByteView v) {
    static const unsigned char kEmpty = 0;
    return v.empty() ? &kEmpty : v.data();
}

}  // namespace

bool aesni_available() {
    static const bool available = cpu_has_aesni();
    return available;
}

// ---- BlockCipher --------------------------------------------------------------------------------

namespace {

ByteView key_of(Cipher c) {
    switch (c) {
        case Cipher::V4Rijndael160:
            return kKeyV4;
        case Cipher::V5Aes128:
            return kKeyV5;
        case Cipher::V6Aes128Tweaked:
            return kKeyV6;
    }
    throw std::invalid_argument("crypto: unknown Cipher value");
}

}  // namespace

BlockCipher::BlockCipher(Cipher c, Impl impl) : BlockCipher(key_of(c), c == Cipher::V6Aes128Tweaked, impl) {}

BlockCipher BlockCipher::with_key(ByteView key, bool v6_tweak, Impl impl) {
    return BlockCipher(key, v6_tweak, impl);
}

BlockCipher::BlockCipher(ByteView key, bool v6_tweak, Impl impl) {
    if (key.size() != 16 && key.size() != 20)
        throw std::invalid_argument("crypto: key must be 16 or 20 bytes, got " + std::to_string(key.size()));
    rounds_ = static_cast<int>(key.size() / 4) + 6;
    expand_key(key, enc_.data());
    if (v6_tweak) apply_v6_tweak(enc_.data());

    impl_ = (impl != Impl::Portable && aesni_available()) ? Impl::AesNi : Impl::Portable;
#if KMSCOPE_CRYPTO_X86
    if (impl_ == Impl::AesNi) aesni_make_decryption_keys(enc_.data(), rounds_, dec_.data());
#endif
}

void BlockCipher::encrypt_block(const std::uint8_t in[16], std::uint8_t out[16]) const {
#if KMSCOPE_CRYPTO_X86
    if (impl_ == Impl::AesNi) return aesni_encrypt(enc_.data(), rounds_, in, out);
#endif
    portable_encrypt(enc_.data(), rounds_, in, out);
}

void BlockCipher::decrypt_block(const std::uint8_t in[16], std::uint8_t out[16]) const {
#if KMSCOPE_CRYPTO_X86
    if (impl_ == Impl::AesNi) return aesni_decrypt(dec_.data(), rounds_, in, out);
#endif
    portable_decrypt(enc_.data(), rounds_, in, out);
}

std::array<std::uint8_t, 16> BlockCipher::encrypt_block(ByteView in16) const {
    if (in16.size() != kBlockSize) throw std::invalid_argument("crypto: encrypt_block needs exactly 16 bytes");
    std::array<std::uint8_t, 16> out{};
    encrypt_block(in16.data(), out.data());
    return out;
}

std::array<std::uint8_t, 16> BlockCipher::decrypt_block(ByteView in16) const {
    if (in16.size() != kBlockSize) throw std::invalid_argument("crypto: decrypt_block needs exactly 16 bytes");
    std::array<std::uint8_t, 16> out{};
    decrypt_block(in16.data(), out.data());
    return out;
}

Bytes BlockCipher::cbc_encrypt(ByteView iv16, ByteView plaintext) const {
    if (iv16.size() != kBlockSize || plaintext.size() % kBlockSize != 0) return {};
    Bytes out(plaintext.begin(), plaintext.end());
    const std::uint8_t* chain = iv16.data();
    for (std::size_t off = 0; off < out.size(); off += kBlockSize) {
        std::uint8_t* block = out.data() + off;
        xor_into(block, chain);
        encrypt_block(block, block);
        chain = block;
    }
    return out;
}

Bytes BlockCipher::cbc_decrypt(ByteView iv16, ByteView ciphertext) const {
    if (iv16.size() != kBlockSize || ciphertext.size() % kBlockSize != 0) return {};
    Bytes out(ciphertext.size());
#if KMSCOPE_CRYPTO_X86
    if (impl_ == Impl::AesNi) {
        aesni_cbc_decrypt(dec_.data(), rounds_, iv16.data(), ciphertext.data(), out.data(), out.size() / kBlockSize);
        return out;
    }
#endif
    const std::uint8_t* chain = iv16.data();
    for (std::size_t off = 0; off < out.size(); off += kBlockSize) {
        decrypt_block(ciphertext.data() + off, out.data() + off);
        xor_into(out.data() + off, chain);
        chain = ciphertext.data() + off;
    }
    return out;
}

void BlockCipher::cbc_mac(std::uint8_t state[16], ByteView whole_blocks) const {
    const std::size_t blocks = whole_blocks.size() / kBlockSize;
#if KMSCOPE_CRYPTO_X86
    if (impl_ == Impl::AesNi) return aesni_cbc_mac(enc_.data(), rounds_, state, whole_blocks.data(), blocks);
#endif
    for (std::size_t i = 0; i < blocks; ++i) {
        xor_into(state, whole_blocks.data() + kBlockSize * i);
        encrypt_block(state, state);
    }
}

const BlockCipher& cipher_for_major(int major) {
    switch (major) {
        case 4: {
            static const BlockCipher v4(Cipher::V4Rijndael160);
            return v4;
        }
        case 5: {
            static const BlockCipher v5(Cipher::V5Aes128);
            return v5;
        }
        case 6: {
            static const BlockCipher v6(Cipher::V6Aes128Tweaked);
            return v6;
        }
        default:
            throw std::invalid_argument("crypto: no cipher for KMS major version " + std::to_string(major));
    }
}

// ---- MAC, hashes, v6 key, padding ---------------------------------------------------------------

std::array<std::uint8_t, 16> v4_mac(ByteView message) {
    const BlockCipher& cipher = cipher_for_major(4);
    std::array<std::uint8_t, 16> state{};
    const std::size_t off = message.size() - message.size() % kBlockSize;
    cipher.cbc_mac(state.data(), message.first(off));
    // ISO/IEC 9797-1 method 2: the remaining 0..15 bytes, then 0x80, then zeros (always one more block).
    std::array<std::uint8_t, 16> last{};
    const std::size_t rest = message.size() - off;
    if (rest != 0) std::memcpy(last.data(), message.data() + off, rest);
    last[rest] = 0x80;
    cipher.cbc_mac(state.data(), last);
    return state;
}

namespace {

// OpenSSL 3 looks algorithms up by name on every EVP_sha256()/HMAC() call, which costs more than the
// hashing of a few dozen bytes: fetch once per process and keep one context per thread.
struct MdDeleter {
    void operator()(EVP_MD* p) const { EVP_MD_free(p); }
    void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
    void operator()(EVP_MAC* p) const { EVP_MAC_free(p); }
    void operator()(EVP_MAC_CTX* p) const { EVP_MAC_CTX_free(p); }
};

const EVP_MD* sha256_md() {
    static const std::unique_ptr<EVP_MD, MdDeleter> md(EVP_MD_fetch(nullptr, "SHA256", nullptr));
    if (!md) throw std::runtime_error("crypto: OpenSSL has no SHA-256");
    return md.get();
}

EVP_MD_CTX* thread_md_ctx() {
    thread_local const std::unique_ptr<EVP_MD_CTX, MdDeleter> ctx(EVP_MD_CTX_new());
    if (!ctx) throw std::runtime_error("crypto: EVP_MD_CTX_new failed");
    return ctx.get();
}

EVP_MAC_CTX* thread_hmac_ctx() {
    static const std::unique_ptr<EVP_MAC, MdDeleter> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
    if (!mac) throw std::runtime_error("crypto: OpenSSL has no HMAC");
    thread_local const std::unique_ptr<EVP_MAC_CTX, MdDeleter> ctx = [] {
        std::unique_ptr<EVP_MAC_CTX, MdDeleter> c(EVP_MAC_CTX_new(mac.get()));
        char digest[] = "SHA256";
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0), OSSL_PARAM_construct_end()};
        if (!c || EVP_MAC_CTX_set_params(c.get(), params) != 1)
            throw std::runtime_error("crypto: cannot set up HMAC-SHA256");
        return c;
    }();
    return ctx.get();
}

}  // namespace

std::array<std::uint8_t, 32> sha256(ByteView data) {
    std::array<std::uint8_t, 32> out{};
    unsigned int len = 0;
    EVP_MD_CTX* ctx = thread_md_ctx();
    if (EVP_DigestInit_ex2(ctx, sha256_md(), nullptr) != 1 ||
        EVP_DigestUpdate(ctx, nonnull_data(data), data.size()) != 1 || EVP_DigestFinal_ex(ctx, out.data(), &len) != 1 ||
        len != out.size())
        throw std::runtime_error("crypto: OpenSSL SHA-256 failed");
    return out;
}

std::array<std::uint8_t, 32> hmac_sha256(ByteView key, ByteView data) {
    // The context keeps the key it was last given. Setting a key hashes it into the inner and outer pads
    // (two compressions and several allocations in OpenSSL 3), more than the message itself costs; v6 keys
    // change only every four hours of client time, so the same key is reused, not set again.
    struct LastKey {
        bool set = false;
        std::size_t size = 0;
        std::array<std::uint8_t, 64> bytes{};
        bool same(ByteView k) const { return set && size == k.size() && std::equal(k.begin(), k.end(), bytes.begin()); }
    };
    thread_local LastKey last;
    std::array<std::uint8_t, 32> out{};
    std::size_t len = 0;
    EVP_MAC_CTX* ctx = thread_hmac_ctx();
    bool keyed;
    if (last.same(key)) {
        keyed = EVP_MAC_init(ctx, nullptr, 0, nullptr) == 1;  // no key: start again with the one it has
    } else {
        // A zero-length key still needs a non-null pointer, or EVP_MAC_init keeps the previous key.
        static const std::uint8_t kEmpty = 0;
        last.set = false;
        keyed = EVP_MAC_init(ctx, key.empty() ? &kEmpty : key.data(), key.size(), nullptr) == 1;
        if (keyed && key.size() <= last.bytes.size()) {
            std::copy(key.begin(), key.end(), last.bytes.begin());
            last.size = key.size();
            last.set = true;
        }
    }
    if (!keyed || EVP_MAC_update(ctx, nonnull_data(data), data.size()) != 1 ||
        EVP_MAC_final(ctx, out.data(), &len, out.size()) != 1 || len != out.size()) {
        last.set = false;  // the context's state is unknown now
        throw std::runtime_error("crypto: OpenSSL HMAC-SHA256 failed");
    }
    return out;
}

std::uint64_t v6_hmac_seed(std::uint64_t client_time_filetime) {
    constexpr std::uint64_t kC1 = 0x00000022816889BDULL;
    constexpr std::uint64_t kC2 = 0x000000208CBAB5EDULL;
    constexpr std::uint64_t kC3 = 0x3156CD5AC628477AULL;
    return (client_time_filetime / kC1) * kC2 + kC3;  // unsigned: wraps modulo 2^64
}

std::array<std::uint8_t, 16> v6_hmac_key(std::uint64_t client_time_filetime) {
    const std::uint64_t seed = v6_hmac_seed(client_time_filetime);
    // The seed changes every 4.1 hours of client time, so nearly every call repeats the previous one.
    struct LastKey {
        bool set = false;
        std::uint64_t seed = 0;
        std::array<std::uint8_t, 16> key{};
    };
    thread_local LastKey last;
    if (last.set && last.seed == seed) return last.key;
    std::array<std::uint8_t, 8> le{};
    for (std::size_t i = 0; i < le.size(); ++i) le[i] = static_cast<std::uint8_t>(seed >> (8 * i));
    const std::array<std::uint8_t, 32> digest = sha256(le);
    std::array<std::uint8_t, 16> key{};
    std::memcpy(key.data(), digest.data() + 16, 16);
    last = {true, seed, key};
    return key;
}

Bytes pkcs7_pad(ByteView data) {
    const std::size_t n = kBlockSize - data.size() % kBlockSize;  // 1..16
    Bytes out;
    out.reserve(data.size() + n);
    out.assign(data.begin(), data.end());
    out.insert(out.end(), n, static_cast<std::uint8_t>(n));
    return out;
}

std::optional<std::size_t> pkcs7_unpadded_length(ByteView padded) {
    if (padded.empty() || padded.size() % kBlockSize != 0) return std::nullopt;
    const std::uint8_t n = padded.back();
    if (n < 1 || n > kBlockSize) return std::nullopt;
    for (std::size_t i = padded.size() - n; i < padded.size(); ++i)
        if (padded[i] != n) return std::nullopt;
    return padded.size() - n;
}

}  // namespace kmscope::crypto
