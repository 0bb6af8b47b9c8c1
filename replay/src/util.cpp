#include "util.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/resource.h>

#include <chrono>
#include <cstring>

namespace kmscope::replay {

namespace {
bool is_mapped_v4(const in6_addr& a) {
    return IN6_IS_ADDR_V4MAPPED(&a);
}

bool split_host_port(const std::string& text, std::string& host, std::string& port) {
    if (!text.empty() && text[0] == '[') {
        auto close = text.find(']');
        if (close == std::string::npos) return false;
        host = text.substr(1, close - 1);
        if (close + 1 == text.size()) return true;
        if (text[close + 1] != ':') return false;
        port = text.substr(close + 2);
        return true;
    }
    auto colon = text.rfind(':');
    if (colon == std::string::npos) {
        bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
        (digits ? port : host) = text;
        return true;
    }
    if (text.find(':') != colon) {  // bare IPv6 without port
        host = text;
        return true;
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    return true;
}

std::optional<std::uint16_t> parse_port(const std::string& p, std::uint16_t dflt) {
    if (p.empty()) return dflt;
    if (p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    unsigned long v = std::stoul(p);
    if (v > 65535) return std::nullopt;
    return static_cast<std::uint16_t>(v);
}
}  // namespace

std::string SockAddr::to_string() const {
    char buf[INET6_ADDRSTRLEN] = "?";
    if (ss.ss_family == AF_INET) {
        const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
        return std::string(buf) + ":" + std::to_string(ntohs(a->sin_port));
    }
    if (ss.ss_family == AF_INET6) {
        const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
        if (is_mapped_v4(a->sin6_addr)) {
            inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], buf, sizeof buf);
            return std::string(buf) + ":" + std::to_string(ntohs(a->sin6_port));
        }
        inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
        // Appended piecewise: `"[" + std::string` trips GCC 12's -Wrestrict false positive at -O3.
        std::string s = "[";
        s += buf;
        s += "]:";
        s += std::to_string(ntohs(a->sin6_port));
        return s;
    }
    return "?";
}

std::uint16_t SockAddr::port() const {
    if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
    return 0;
}

std::optional<SockAddr> parse_listen(const std::string& text, std::uint16_t default_port, std::string& error) {
    std::string host, port;
    if (!split_host_port(text, host, port)) {
        error = "malformed address '" + text + "'";
        return std::nullopt;
    }
    auto p = parse_port(port, default_port);
    if (!p) {
        error = "bad port in '" + text + "'";
        return std::nullopt;
    }
    SockAddr out;
    if (host.empty() || host == "*") host = "::";
    auto* a4 = reinterpret_cast<sockaddr_in*>(&out.ss);
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&out.ss);
    if (inet_pton(AF_INET, host.c_str(), &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(*p);
        out.len = sizeof(sockaddr_in);
        return out;
    }
    if (inet_pton(AF_INET6, host.c_str(), &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(*p);
        out.len = sizeof(sockaddr_in6);
        return out;
    }
    error = "'" + host + "' is not a numeric IPv4 or IPv6 address";
    return std::nullopt;
}

std::vector<SockAddr> resolve_listen(const std::string& text, std::uint16_t default_port, std::string& error) {
    std::string numeric_error;
    if (auto a = parse_listen(text, default_port, numeric_error)) return {*a};
    std::string host, port;
    if (!split_host_port(text, host, port)) {
        error = numeric_error;
        return {};
    }
    auto p = parse_port(port, default_port);
    if (!p) {
        error = "bad port in '" + text + "'";
        return {};
    }
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(host.c_str(), std::to_string(*p).c_str(), &hints, &res);
    if (rc != 0 || !res) {
        error = "'" + host + "': " + gai_strerror(rc);
        return {};
    }
    std::vector<SockAddr> out;
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) || ai->ai_addrlen > sizeof(sockaddr_storage))
            continue;
        SockAddr a;
        std::memcpy(&a.ss, ai->ai_addr, ai->ai_addrlen);
        a.len = static_cast<socklen_t>(ai->ai_addrlen);
        bool seen = false;
        for (const auto& b : out) seen = seen || (b.len == a.len && std::memcmp(&b.ss, &a.ss, a.len) == 0);
        if (!seen) out.push_back(a);
    }
    freeaddrinfo(res);
    if (out.empty()) error = "'" + host + "': no IPv4 or IPv6 address";
    return out;
}

std::optional<SockAddr> resolve_target(const std::string& text, std::uint16_t default_port, std::string& error) {
    std::string host, port;
    if (!split_host_port(text, host, port) || host.empty()) {
        error = "malformed target '" + text + "' (want HOST:PORT)";
        return std::nullopt;
    }
    auto p = parse_port(port, default_port);
    if (!p) {
        error = "bad port in '" + text + "'";
        return std::nullopt;
    }
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(host.c_str(), std::to_string(*p).c_str(), &hints, &res);
    if (rc != 0 || !res) {
        error = host + ": " + gai_strerror(rc);
        return std::nullopt;
    }
    SockAddr out;
    std::memcpy(&out.ss, res->ai_addr, res->ai_addrlen);
    out.len = static_cast<socklen_t>(res->ai_addrlen);
    freeaddrinfo(res);
    return out;
}

std::optional<Cidr> Cidr::parse(const std::string& text) {
    Cidr c;
    std::string addr = text;
    int prefix = -1;
    if (auto slash = text.find('/'); slash != std::string::npos) {
        addr = text.substr(0, slash);
        auto p = text.substr(slash + 1);
        if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
        prefix = std::stoi(p);
    }
    if (inet_pton(AF_INET, addr.c_str(), c.addr) == 1) {
        c.v6 = false;
        if (prefix > 32) return std::nullopt;
        c.prefix = prefix < 0 ? 32 : prefix;
        return c;
    }
    if (inet_pton(AF_INET6, addr.c_str(), c.addr) == 1) {
        c.v6 = true;
        if (prefix > 128) return std::nullopt;
        c.prefix = prefix < 0 ? 128 : prefix;
        return c;
    }
    return std::nullopt;
}

bool Cidr::contains(const SockAddr& a) const {
    const std::uint8_t* bytes = nullptr;
    bool is6 = false;
    if (a.ss.ss_family == AF_INET) {
        bytes = reinterpret_cast<const std::uint8_t*>(&reinterpret_cast<const sockaddr_in*>(&a.ss)->sin_addr);
    } else if (a.ss.ss_family == AF_INET6) {
        const auto& in6 = reinterpret_cast<const sockaddr_in6*>(&a.ss)->sin6_addr;
        if (is_mapped_v4(in6)) {
            bytes = in6.s6_addr + 12;
        } else {
            bytes = in6.s6_addr;
            is6 = true;
        }
    } else {
        return false;
    }
    if (is6 != v6) return false;
    int full = prefix / 8, rest = prefix % 8;
    if (std::memcmp(bytes, addr, static_cast<std::size_t>(full)) != 0) return false;
    if (rest == 0) return true;
    std::uint8_t mask = static_cast<std::uint8_t>(0xFF << (8 - rest));
    return (bytes[full] & mask) == (addr[full] & mask);
}

void set_nonblocking(int fd) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
}

std::uint64_t raise_nofile(std::uint64_t want) {
    rlimit r{};
    if (getrlimit(RLIMIT_NOFILE, &r) != 0) return 0;
    if (r.rlim_cur < want) {
        r.rlim_cur = (r.rlim_max == RLIM_INFINITY || r.rlim_max >= want) ? want : r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
        getrlimit(RLIMIT_NOFILE, &r);
    }
    return r.rlim_cur;
}

std::int64_t mono_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace kmscope::replay
