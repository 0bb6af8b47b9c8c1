#include "packet_source.hpp"

#include <cstdio>
#include <stdexcept>

namespace kmscope::capture {

namespace {

constexpr int kLinkSll2 = 276;  // DLT_LINUX_SLL2 (not in every libpcap header)
constexpr int kLinkIpv4 = 228;
constexpr int kLinkIpv6 = 229;

std::uint16_t be16(const std::uint8_t* p) {
    return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}
std::uint32_t be32(const std::uint8_t* p) {
    return static_cast<std::uint32_t>(p[0]) << 24 | static_cast<std::uint32_t>(p[1]) << 16 |
           static_cast<std::uint32_t>(p[2]) << 8 | p[3];
}

std::optional<TcpSegment> decode_tcp(ByteView seg, TcpSegment out) {
    if (seg.size() < 20) return std::nullopt;
    std::size_t header = static_cast<std::size_t>(seg[12] >> 4) * 4;
    if (header < 20 || header > seg.size()) return std::nullopt;
    out.src.port = be16(seg.data());
    out.dst.port = be16(seg.data() + 2);
    out.seq = be32(seg.data() + 4);
    out.ack = be32(seg.data() + 8);
    out.flags = seg[13];
    out.payload = seg.subspan(header);
    return out;
}

std::optional<TcpSegment> decode_ipv4(ByteView p) {
    if (p.size() < 20 || (p[0] >> 4) != 4) return std::nullopt;
    std::size_t ihl = static_cast<std::size_t>(p[0] & 15) * 4;
    std::size_t total = be16(p.data() + 2);
    if (ihl < 20 || total < ihl || ihl > p.size()) return std::nullopt;
    if (total > p.size()) total = p.size();  // snapped packet: keep what is there
    if (p[9] != 6) return std::nullopt;
    if ((be16(p.data() + 6) & 0x3FFF) != 0) return std::nullopt;  // IP fragments are not reassembled
    TcpSegment s;
    std::copy_n(p.data() + 12, 4, s.src.addr.begin());
    std::copy_n(p.data() + 16, 4, s.dst.addr.begin());
    return decode_tcp(p.subspan(ihl, total - ihl), s);
}

std::optional<TcpSegment> decode_ipv6(ByteView p) {
    if (p.size() < 40 || (p[0] >> 4) != 6) return std::nullopt;
    std::size_t payload = be16(p.data() + 4);
    std::uint8_t next = p[6];
    TcpSegment s;
    s.src.v6 = s.dst.v6 = true;
    std::copy_n(p.data() + 8, 16, s.src.addr.begin());
    std::copy_n(p.data() + 24, 16, s.dst.addr.begin());
    std::size_t end = std::min(p.size(), 40 + payload);
    std::size_t off = 40;
    for (int hops = 0; hops < 16; ++hops) {  // bounded walk over extension headers
        if (next == 6) return decode_tcp(p.subspan(off, end - off), s);
        if (next == 44) return std::nullopt;  // fragment header: not reassembled
        if (next != 0 && next != 43 && next != 60 && next != 51) return std::nullopt;
        if (off + 8 > end) return std::nullopt;
        std::size_t len = next == 51 ? (static_cast<std::size_t>(p[off + 1]) + 2) * 4
                                     : (static_cast<std::size_t>(p[off + 1]) + 1) * 8;
        next = p[off];
        off += len;
        if (off > end) return std::nullopt;
    }
    return std::nullopt;
}

std::optional<TcpSegment> decode_ethertype(std::uint16_t type, ByteView p) {
    if (type == 0x0800) return decode_ipv4(p);
    if (type == 0x86DD) return decode_ipv6(p);
    return std::nullopt;
}

std::optional<TcpSegment> decode_ip_guess(ByteView p) {
    if (p.empty()) return std::nullopt;
    return (p[0] >> 4) == 6 ? decode_ipv6(p) : decode_ipv4(p);
}

}  // namespace

std::string Endpoint::to_string() const {
    char buf[64];
    if (!v6) {
        std::snprintf(buf, sizeof buf, "%u.%u.%u.%u:%u", addr[0], addr[1], addr[2], addr[3], port);
        return buf;
    }
    // RFC 5952: lower case, longest run of two or more zero groups compressed.
    std::uint16_t g[8];
    for (int i = 0; i < 8; ++i) g[i] = be16(addr.data() + 2 * i);
    int best = -1, best_len = 0;
    for (int i = 0; i < 8;) {
        if (g[i] != 0) {
            ++i;
            continue;
        }
        int j = i;
        while (j < 8 && g[j] == 0) ++j;
        if (j - i > best_len && j - i >= 2) best = i, best_len = j - i;
        i = j;
    }
    std::string out = "[";
    for (int i = 0; i < 8; ++i) {
        if (i == best) {
            out += "::";
            i += best_len - 1;
            continue;
        }
        if (!out.empty() && out.back() != ':' && out.back() != '[') out += ':';
        std::snprintf(buf, sizeof buf, "%x", g[i]);
        out += buf;
    }
    out += "]:" + std::to_string(port);
    return out;
}

std::optional<TcpSegment> decode_packet(int link_type, ByteView p) {
    switch (link_type) {
        case DLT_EN10MB: {
            if (p.size() < 14) return std::nullopt;
            std::size_t off = 12;
            std::uint16_t type = be16(p.data() + off);
            for (int tags = 0; (type == 0x8100 || type == 0x88A8 || type == 0x9100) && tags < 4; ++tags) {
                off += 4;
                if (off + 2 > p.size()) return std::nullopt;
                type = be16(p.data() + off);
            }
            return decode_ethertype(type, p.subspan(off + 2));
        }
        case DLT_LINUX_SLL:
            if (p.size() < 16) return std::nullopt;
            return decode_ethertype(be16(p.data() + 14), p.subspan(16));
        case kLinkSll2:
            if (p.size() < 20) return std::nullopt;
            return decode_ethertype(be16(p.data()), p.subspan(20));
        case DLT_NULL:
        case DLT_LOOP: {
            if (p.size() < 4) return std::nullopt;
            std::uint32_t family = link_type == DLT_LOOP ? be32(p.data()) : load_u32le(p.data());
            if (family > 0xFFFF) family = be32(p.data());  // written on a big-endian host
            if (family == 2) return decode_ipv4(p.subspan(4));
            if (family == 24 || family == 28 || family == 30 || family == 10) return decode_ipv6(p.subspan(4));
            return std::nullopt;
        }
        case DLT_RAW:
        case 101:  // LINKTYPE_RAW
            return decode_ip_guess(p);
        case kLinkIpv4:
            return decode_ipv4(p);
        case kLinkIpv6:
            return decode_ipv6(p);
        default:
            return std::nullopt;
    }
}

PacketSource::PacketSource(const std::string& path) : path_(path) {
    char err[PCAP_ERRBUF_SIZE] = {};
    pcap_ = pcap_open_offline(path.c_str(), err);
    if (!pcap_) throw std::runtime_error(path + ": " + err);
}

PacketSource::~PacketSource() {
    if (pcap_) pcap_close(pcap_);
}

int PacketSource::link_type() const {
    return pcap_datalink(pcap_);
}

bool PacketSource::for_each_segment(const std::function<void(const TcpSegment&)>& on_segment) {
    const int link = link_type();
    pcap_pkthdr* hdr = nullptr;
    const u_char* data = nullptr;
    for (;;) {
        int rc = pcap_next_ex(pcap_, &hdr, &data);
        if (rc == PCAP_ERROR_BREAK) return true;  // end of file
        if (rc != 1) {
            error_ = path_ + ": after packet " + std::to_string(packets_) + ": " + pcap_geterr(pcap_);
            return false;
        }
        ++packets_;
        auto seg = decode_packet(link, ByteView(data, hdr->caplen));
        if (!seg) {
            ++skipped_;
            continue;
        }
        seg->frame = packets_;
        seg->time.ticks = static_cast<std::uint64_t>(FileTime::from_unix(hdr->ts.tv_sec).ticks) +
                          static_cast<std::uint64_t>(hdr->ts.tv_usec) * 10;
        on_segment(*seg);
    }
}

}  // namespace kmscope::capture
