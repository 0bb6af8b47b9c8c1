// The Community ID of a flow (version 1 of the Corelight specification, as Zeek, Suricata and Arkime
// write it): "1:" and the base64 SHA-1 of the seed, both addresses, the IP protocol and both ports,
// the endpoints in a fixed order so that both directions of a flow give the same ID. SIEM pipelines
// join kms-analyze's EVE records with other tools' records of the same flow on it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "packet_source.hpp"

namespace kmscope::capture {

inline constexpr std::uint8_t kIpProtoTcp = 6;
inline constexpr std::uint8_t kIpProtoUdp = 17;

/// The ID of the flow between `a` and `b` (same address family) over `proto`, with seed 0 unless given.
std::string community_id(const Endpoint& a, const Endpoint& b, std::uint8_t proto, std::uint16_t seed = 0);

}  // namespace kmscope::capture
