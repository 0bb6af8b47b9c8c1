// The values a valid KMS exchange carries where a client compares a received value with one it computes: the v4
// MAC (docs/protocol.md §6.2), the v5/v6 hash of the server random (§8.5) and the v6 HMAC (§8.4). Front ends show
// them next to a value that failed its check ("should be ..."), as Wireshark does for a bad checksum; the checks
// themselves are verify_request / verify_exchange's.
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "kmscope/bytes.hpp"
#include "kmscope/kms.hpp"

namespace kmscope::kms {

/// The v4 MAC of a request message (the MAC over its base request), or nothing when `message` is shorter
/// than a base request.
std::optional<Block> expected_request_mac(ByteView message);

/// The v4 MAC of a decoded v4 response `p` whose message is `message` (the MAC over its base response).
std::optional<Block> expected_response_mac(const DecodedResponse& p, ByteView message);

/// The hash a v5/v6 response to request `q` must carry: SHA-256 of the server random that its
/// RandomXoredIVs hides under the request's X = D_K(IV_q).
std::array<std::uint8_t, 32> expected_hash(const DecodedRequest& q, const DecodedResponse& p);

/// The HMAC a decoded v6 response must carry (keyed by its echoed client time), or nothing for v4/v5.
std::optional<Block> expected_hmac(const DecodedResponse& p);

}  // namespace kmscope::kms
