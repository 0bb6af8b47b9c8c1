// Socket addresses, CIDR allow-lists and small helpers shared by serve and send.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kmscope::replay {

/// A socket address (IPv4 or IPv6).
struct SockAddr {
    sockaddr_storage ss{};
    socklen_t len = 0;
    /// "1.2.3.4:1688" or "[::1]:1688" (IPv4-mapped IPv6 addresses are shown as IPv4).
    std::string to_string() const;
    /// The port.
    std::uint16_t port() const;
};

/// Parses "ADDR:PORT", "[V6ADDR]:PORT", "ADDR" or ":PORT" / "PORT" (numeric addresses only; an empty address
/// means dual-stack any). Returns nullopt with `error` set when malformed.
std::optional<SockAddr> parse_listen(const std::string& text, std::uint16_t default_port, std::string& error);
/// The addresses to listen on for "HOST:PORT": numeric forms as parse_listen(); a host name is resolved
/// with getaddrinfo and every address it returns is listed (duplicates dropped), e.g. "localhost:1688"
/// gives 127.0.0.1:1688 and [::1]:1688. Empty with `error` set when malformed or not resolvable.
std::vector<SockAddr> resolve_listen(const std::string& text, std::uint16_t default_port, std::string& error);
/// Resolves "HOST:PORT" / "[V6]:PORT" (names allowed) for connecting.
std::optional<SockAddr> resolve_target(const std::string& text, std::uint16_t default_port, std::string& error);

/// One network of an allow-list.
struct Cidr {
    std::uint8_t addr[16]{};
    bool v6 = false;
    int prefix = 0;
    /// Parses "10.0.0.0/8", "::1/128", "192.168.1.7" (a host).
    static std::optional<Cidr> parse(const std::string& text);
    /// True when `a` (IPv4-mapped addresses count as IPv4) lies in this network.
    bool contains(const SockAddr& a) const;
};

/// Sets O_NONBLOCK and FD_CLOEXEC.
void set_nonblocking(int fd);
/// Raises RLIMIT_NOFILE's soft limit to `want` (or the hard limit); returns the new soft limit.
std::uint64_t raise_nofile(std::uint64_t want);
/// Monotonic time in nanoseconds.
std::int64_t mono_ns();

}  // namespace kmscope::replay
