// DNS over UDP, just enough to report KMS auto-discovery: SRV queries and answers for _vlmcs._tcp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kmscope/bytes.hpp"

namespace kmscope::analyzer {

/// One SRV record of an answer.
struct SrvRecord {
    std::string target;
    std::uint16_t port = 0, priority = 0, weight = 0;
    std::uint32_t ttl = 0;
};

/// A DNS message that asks about (or answers for) a _vlmcs._tcp SRV name.
struct KmsDiscovery {
    std::uint16_t id = 0;
    bool response = false;
    std::uint8_t rcode = 0;
    std::string name;  // the question name, e.g. "_vlmcs._tcp.example.com"
    std::uint16_t qtype = 0;
    std::vector<SrvRecord> answers;
};

/// Parses a DNS message; returns it when its question is a _vlmcs._tcp name, nullopt otherwise
/// (including for malformed messages).
std::optional<KmsDiscovery> parse_kms_discovery(ByteView message);

/// "NOERROR", "NXDOMAIN", ... or the number.
std::string rcode_name(std::uint8_t rcode);

}  // namespace kmscope::analyzer
