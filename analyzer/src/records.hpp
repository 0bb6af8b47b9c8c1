// What kms-analyze reports: one typed record per exchange, per unanswered or troubled KMS connection and
// per DNS SRV discovery message. Records carry the core's decoded values as they are; turning them into
// text (JSON lines, CSV, table) is the printers' job, filtering the filter's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "dns.hpp"
#include "kmscope/conversation.hpp"
#include "kmscope/fingerprint.hpp"

namespace kmscope::analyzer {

/// One request/response exchange (or half of one) of a KMS connection.
struct ExchangeRecord {
    const std::string* file = nullptr;  // the input file's name, valid while the file is analysed
    std::uint64_t stream = 0;           // 0-based index of the TCP connection in the file
    std::string client, server;         // "ip:port", IPv6 in brackets
    std::string client_ip, server_ip;   // the addresses alone ("::1" without brackets)
    std::uint16_t client_port = 0, server_port = 0;
    FileTime first_seen, last_seen;     // of the connection, when the exchange was complete
    Exchange x;
    std::vector<std::string> stream_diagnostics;  // about the byte stream before this exchange
    ServerImpl impl = ServerImpl::Unknown;        // the server's fingerprint at that point

    /// When the exchange happened: the request's time, else the response's, else the connection's start.
    FileTime time() const { return x.request_time.value_or(x.response_time.value_or(first_seen)); }
    /// The protocol version of the request (also of an undecodable one), else of the response.
    std::optional<kms::Version> version() const;
};

/// A KMS connection that no exchange tells about completely: never answered, reset, or with stream
/// diagnostics left after its last exchange; also an unanswered connection to a KMS port.
struct ConnectionRecord {
    const std::string* file = nullptr;
    std::uint64_t stream = 0;
    FileTime first_seen;
    std::string client, server;
    std::string client_ip, server_ip;
    std::uint16_t client_port = 0, server_port = 0;
    const char* state = "open";  // refused, no_answer, reset, closed, idle, open
    bool kms = false;            // DCE/RPC KMS was seen on it
    std::uint64_t client_bytes = 0, server_bytes = 0;
    std::vector<std::string> diagnostics;
    bool unanswered = false;  // counts as a KMS connection that was never answered
};

/// A DNS message about _vlmcs._tcp (KMS auto-discovery).
struct DnsRecord {
    const std::string* file = nullptr;
    FileTime time;
    std::string client, server;  // the resolver's client, the DNS server
    std::string client_ip, server_ip;
    std::uint16_t client_port = 0, server_port = 0;
    KmsDiscovery message;
};

using Record = std::variant<ExchangeRecord, ConnectionRecord, DnsRecord>;

}  // namespace kmscope::analyzer
