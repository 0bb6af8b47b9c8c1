// Cryptographic primitives of the KMS protocol (docs/protocol.md §6.2, §7, §8.4): the three block ciphers
// (Rijndael-128/160 for the v4 MAC, plain AES-128 for v5, AES-128 with the modified key schedule for v6) with a
// portable and an AES-NI implementation chosen at run time, CBC mode, the v4 CBC-MAC, SHA-256/HMAC-SHA256 via
// OpenSSL, the v6 time-slot HMAC key and PKCS#7 padding. All keys are public constants, so nothing here tries to
// be constant-time.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "kmscope/bytes.hpp"

namespace kmscope::crypto {

/// Block size of every cipher here (bytes).
inline constexpr std::size_t kBlockSize = 16;

/// v4 MAC key (Rijndael with a 160-bit key, 11 rounds), §7.1.
inline constexpr std::array<std::uint8_t, 20> kKeyV4{0x05, 0x3D, 0x83, 0x07, 0xF9, 0xE5, 0xF0, 0x88, 0xEB, 0x5E,
                                                     0xA6, 0x68, 0x6C, 0xF0, 0x37, 0xC7, 0xE4, 0xEF, 0xD2, 0xD6};
/// v5 key (standard AES-128), §7.1.
inline constexpr std::array<std::uint8_t, 16> kKeyV5{0xCD, 0x7E, 0x79, 0x6F, 0x2A, 0xB2, 0x5D, 0xCB,
                                                     0x55, 0xFF, 0xC8, 0xEF, 0x83, 0x64, 0xC4, 0x70};
/// v6 key (AES-128 with the tweaked key schedule of §7.3), §7.1.
inline constexpr std::array<std::uint8_t, 16> kKeyV6{0xA9, 0x4A, 0x41, 0x95, 0xE2, 0x01, 0x43, 0x2D,
                                                     0x9B, 0xCB, 0x46, 0x04, 0x05, 0xD8, 0x4A, 0x21};

/// The block cipher variant used by one protocol version.
enum class Cipher {
    V4Rijndael160,    ///< Rijndael, 128-bit block, 160-bit key kKeyV4, 11 rounds (v4 MAC)
    V5Aes128,         ///< standard AES-128 with kKeyV5
    V6Aes128Tweaked,  ///< AES-128 with kKeyV6 and three expanded-key bytes XORed (§7.3)
};

/// Which implementation of the block cipher to use.
enum class Impl {
    Auto,      ///< AES-NI when the CPU has it, else portable
    Portable,  ///< table-based C++ (any CPU)
    AesNi,     ///< x86 AES-NI instructions (falls back to Portable when the CPU lacks them)
};

/// True when this CPU supports the AES-NI instructions (checked at run time).
bool aesni_available();

/// A keyed 128-bit-block Rijndael instance (Nk = 4 or 5, Nr = Nk + 6). Immutable after construction, so one
/// instance may be used from many threads at once. Copyable; no heap memory.
class BlockCipher {
public:
    /// The cipher of one protocol version with its protocol key.
    explicit BlockCipher(Cipher c, Impl impl = Impl::Auto);
    /// A cipher with an arbitrary 16- or 20-byte key (throws std::invalid_argument otherwise); `v6_tweak` applies
    /// the §7.3 schedule modification. For known-answer tests such as FIPS-197.
    static BlockCipher with_key(ByteView key, bool v6_tweak, Impl impl = Impl::Auto);

    /// Encrypts one 16-byte block; `in` and `out` may alias. Does not allocate.
    void encrypt_block(const std::uint8_t in[16], std::uint8_t out[16]) const;
    /// Decrypts one 16-byte block (inverse cipher over the same round keys); `in` and `out` may alias.
    void decrypt_block(const std::uint8_t in[16], std::uint8_t out[16]) const;
    /// Encrypts one block given as a view (throws std::invalid_argument unless it is exactly 16 bytes).
    std::array<std::uint8_t, 16> encrypt_block(ByteView in16) const;
    /// Decrypts one block given as a view (throws std::invalid_argument unless it is exactly 16 bytes).
    std::array<std::uint8_t, 16> decrypt_block(ByteView in16) const;

    /// CBC encryption without padding; empty result if `iv16` is not 16 bytes or the length is not a multiple of 16.
    Bytes cbc_encrypt(ByteView iv16, ByteView plaintext) const;
    /// CBC decryption without unpadding; empty result if `iv16` is not 16 bytes or the length is not a multiple
    /// of 16.
    Bytes cbc_decrypt(ByteView iv16, ByteView ciphertext) const;

    /// CBC-MAC over whole blocks: for each 16-byte block of `whole_blocks` (a multiple of 16 bytes; a shorter
    /// tail is ignored), state = E(state xor block). The v4 MAC's chain. Does not allocate.
    void cbc_mac(std::uint8_t state[16], ByteView whole_blocks) const;

    /// Number of rounds Nr (10 for AES-128, 11 for the 160-bit key).
    int rounds() const { return rounds_; }
    /// The (possibly tweaked) encryption key schedule, 16 * (Nr + 1) bytes: 176 or 192.
    ByteView expanded_key() const { return ByteView(enc_.data(), 16 * static_cast<std::size_t>(rounds_ + 1)); }
    /// The implementation actually in use (Portable or AesNi, never Auto).
    Impl impl() const { return impl_; }

private:
    BlockCipher(ByteView key, bool v6_tweak, Impl impl);

    static constexpr std::size_t kMaxScheduleBytes = 16 * 12;  // Nk = 5: 12 round keys

    alignas(16) std::array<std::uint8_t, kMaxScheduleBytes> enc_{};  // round keys 0..Nr, encryption order
    alignas(16) std::array<std::uint8_t, kMaxScheduleBytes> dec_{};  // AES-NI only: equivalent inverse cipher keys
    int rounds_ = 0;
    Impl impl_ = Impl::Portable;
};

/// The process-wide cipher of protocol major version 4, 5 or 6 (thread-safe lazy statics, Impl::Auto); throws
/// std::invalid_argument for any other value.
const BlockCipher& cipher_for_major(int major);

/// The v4 MAC of §6.2: CBC-MAC (zero IV, 0x80 0x00... padding always added) over Rijndael-160 with kKeyV4.
std::array<std::uint8_t, 16> v4_mac(ByteView message);

/// SHA-256 of `data` (OpenSSL).
std::array<std::uint8_t, 32> sha256(ByteView data);

/// HMAC-SHA256 of `data` under `key` (OpenSSL).
std::array<std::uint8_t, 32> hmac_sha256(ByteView key, ByteView data);

/// The v6 time-slot seed of §8.4 step 2: (t / C1) * C2 + C3 mod 2^64 for the request's FILETIME ClientTime t.
std::uint64_t v6_hmac_seed(std::uint64_t client_time_filetime);

/// The v6 HMAC key Kh of §8.4 steps 1-4: the last 16 bytes of SHA-256(seed as 8 bytes little-endian).
std::array<std::uint8_t, 16> v6_hmac_key(std::uint64_t client_time_filetime);

/// PKCS#7-pads `data` to a multiple of 16 bytes (always adds 1..16 bytes of value n).
Bytes pkcs7_pad(ByteView data);

/// Length of `padded` without its PKCS#7 padding; nullopt unless `padded` is a non-empty multiple of 16 bytes
/// whose last byte n is 1..16 and whose last n bytes all equal n.
std::optional<std::size_t> pkcs7_unpadded_length(ByteView padded);

}  // namespace kmscope::crypto
