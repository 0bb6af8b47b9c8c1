#include "dns.hpp"

#include <algorithm>
#include <cctype>

namespace kmscope::analyzer {

namespace {

std::uint16_t be16(ByteView m, std::size_t at) {
    return static_cast<std::uint16_t>(m[at] << 8 | m[at + 1]);
}

// Reads a (possibly compressed) name at `pos`; advances pos past it in the message.
std::optional<std::string> read_name(ByteView m, std::size_t& pos) {
    std::string out;
    std::size_t p = pos;
    bool jumped = false;
    for (int steps = 0; steps < 128; ++steps) {
        if (p >= m.size()) return std::nullopt;
        std::uint8_t len = m[p];
        if ((len & 0xC0) == 0xC0) {
            if (p + 1 >= m.size()) return std::nullopt;
            std::size_t target = static_cast<std::size_t>(len & 0x3F) << 8 | m[p + 1];
            if (!jumped) pos = p + 2;
            jumped = true;
            p = target;
            continue;
        }
        if (len & 0xC0) return std::nullopt;
        if (len == 0) {
            if (!jumped) pos = p + 1;
            return out;
        }
        if (p + 1 + len > m.size() || out.size() + len > 255) return std::nullopt;
        if (!out.empty()) out += '.';
        for (std::size_t i = 0; i < len; ++i) {
            char c = static_cast<char>(m[p + 1 + i]);
            out += std::isprint(static_cast<unsigned char>(c)) ? c : '?';
        }
        p += 1 + len;
    }
    return std::nullopt;
}

bool is_vlmcs(const std::string& name) {
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    return lower.rfind("_vlmcs._tcp", 0) == 0;
}

}  // namespace

std::optional<KmsDiscovery> parse_kms_discovery(ByteView m) {
    if (m.size() < 12) return std::nullopt;
    KmsDiscovery d;
    d.id = be16(m, 0);
    d.response = m[2] & 0x80;
    if (((m[2] >> 3) & 0x0F) != 0) return std::nullopt;  // not a standard query
    d.rcode = m[3] & 0x0F;
    std::uint16_t qd = be16(m, 4), an = be16(m, 6);
    if (qd != 1) return std::nullopt;
    std::size_t pos = 12;
    auto qname = read_name(m, pos);
    if (!qname || pos + 4 > m.size() || !is_vlmcs(*qname)) return std::nullopt;
    d.name = *qname;
    d.qtype = be16(m, pos);
    pos += 4;
    for (std::uint16_t i = 0; i < an && i < 64; ++i) {
        auto owner = read_name(m, pos);
        if (!owner || pos + 10 > m.size()) break;
        std::uint16_t type = be16(m, pos);
        std::uint32_t ttl = static_cast<std::uint32_t>(be16(m, pos + 4)) << 16 | be16(m, pos + 6);
        std::uint16_t rdlen = be16(m, pos + 8);
        pos += 10;
        if (pos + rdlen > m.size()) break;
        if (type == 33 && rdlen >= 7) {  // SRV
            SrvRecord r;
            r.priority = be16(m, pos);
            r.weight = be16(m, pos + 2);
            r.port = be16(m, pos + 4);
            r.ttl = ttl;
            std::size_t tpos = pos + 6;
            auto target = read_name(m, tpos);
            if (target) {
                r.target = *target;
                d.answers.push_back(std::move(r));
            }
        }
        pos += rdlen;
    }
    return d;
}

std::string rcode_name(std::uint8_t rcode) {
    static const char* kNames[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"};
    return rcode < 6 ? kNames[rcode] : std::to_string(rcode);
}

}  // namespace kmscope::analyzer
