// The values a valid exchange carries where the client compares (see kms_expected.hpp). The same computations as
// decode_response and verify_exchange (kms.cpp), which only keep whether the received value matched.
#include "kmscope/kms_expected.hpp"

#include <algorithm>

#include "kmscope/crypto.hpp"

namespace kmscope::kms {

std::optional<Block> expected_request_mac(ByteView message) {
    if (message.size() < kBaseRequestSize) return std::nullopt;
    return crypto::v4_mac(message.first(kBaseRequestSize));
}

std::optional<Block> expected_response_mac(const DecodedResponse& p, ByteView message) {
    const std::size_t n = p.base.size();
    if (p.version.major != 4 || message.size() < n) return std::nullopt;
    return crypto::v4_mac(message.first(n));
}

std::array<std::uint8_t, 32> expected_hash(const DecodedRequest& q, const DecodedResponse& p) {
    Block s{};
    for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<std::uint8_t>(p.random_xored_ivs[i] ^ q.x[i]);
    return crypto::sha256(s);
}

std::optional<Block> expected_hmac(const DecodedResponse& p) {
    // §8.4: HMAC-SHA256 over D_K(IV_r) || the body up to the HMAC field, keyed by the echoed client time; the
    // message carries the last 16 bytes.
    const std::size_t covered = p.base.size() + 16 + 32 + 8 + 16;
    if (p.version.major != 6 || p.plaintext.size() < covered) return std::nullopt;
    const auto& c = crypto::cipher_for_major(6);
    Bytes data(16 + covered);
    const auto d_iv = c.decrypt_block(ByteView(p.iv.data(), p.iv.size()));
    std::copy(d_iv.begin(), d_iv.end(), data.begin());
    std::copy_n(p.plaintext.begin(), covered, data.begin() + 16);
    const auto mac = crypto::hmac_sha256(crypto::v6_hmac_key(p.base.client_time.ticks), data);
    Block out{};
    std::copy(mac.begin() + 16, mac.end(), out.begin());
    return out;
}

}  // namespace kmscope::kms
