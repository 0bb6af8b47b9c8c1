#include "packet_source.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cstddef>
#include <cstring>
#include <stdexcept>

#include "packet_source_input.hpp"

namespace kmscope::capture {

namespace {

constexpr int kLinkSll2 = 276;  // DLT_LINUX_SLL2 (not in every libpcap header)
constexpr int kLinkIpv4 = 228;
constexpr int kLinkIpv6 = 229;
constexpr std::uint8_t kProtoTcp = 6, kProtoUdp = 17;

std::uint16_t be16(const std::uint8_t* p) {
    return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}
std::uint32_t be32(const std::uint8_t* p) {
    return static_cast<std::uint32_t>(p[0]) << 24 | static_cast<std::uint32_t>(p[1]) << 16 |
           static_cast<std::uint32_t>(p[2]) << 8 | p[3];
}

// A packet cut down to its transport header and payload. The addresses stay in the packet: endpoints are
// built once, whole, by decode_tcp and decode_udp (see put_endpoint).
struct L4 {
    std::uint8_t proto = 0;
    bool v6 = false;
    const std::uint8_t* src = nullptr;  // 4 or 16 bytes in the packet
    const std::uint8_t* dst = nullptr;
    ByteView data;  // transport header + payload
};

// The decoders fill the caller's object and say whether the packet was one, instead of returning an
// optional: building a struct on the stack and copying it out cost a store-forwarding stall per copy.

bool decode_ipv4(ByteView p, L4& out) {
    if (p.size() < 20 || (p[0] >> 4) != 4) return false;
    std::size_t ihl = static_cast<std::size_t>(p[0] & 15) * 4;
    std::size_t total = be16(p.data() + 2);
    if (ihl < 20 || total < ihl || ihl > p.size()) return false;
    if (total > p.size()) total = p.size();                // snapped packet: keep what is there
    if ((be16(p.data() + 6) & 0x3FFF) != 0) return false;  // IP fragments are not reassembled
    out.proto = p[9];
    out.v6 = false;
    out.src = p.data() + 12;
    out.dst = p.data() + 16;
    out.data = p.subspan(ihl, total - ihl);
    return true;
}

bool decode_ipv6(ByteView p, L4& out) {
    if (p.size() < 40 || (p[0] >> 4) != 6) return false;
    std::size_t payload = be16(p.data() + 4);
    std::uint8_t next = p[6];
    std::size_t end = std::min(p.size(), 40 + payload);
    std::size_t off = 40;
    for (int hops = 0; hops < 16; ++hops) {  // bounded walk over extension headers
        if (next == kProtoTcp || next == kProtoUdp) {
            out.proto = next;
            out.v6 = true;
            out.src = p.data() + 8;
            out.dst = p.data() + 24;
            out.data = p.subspan(off, end - off);
            return true;
        }
        if (next == 44) return false;  // fragment header: not reassembled
        if (next != 0 && next != 43 && next != 60 && next != 51) return false;
        if (off + 8 > end) return false;
        std::size_t len = next == 51 ? (static_cast<std::size_t>(p[off + 1]) + 2) * 4
                                     : (static_cast<std::size_t>(p[off + 1]) + 1) * 8;
        next = p[off];
        off += len;
        if (off > end) return false;
    }
    return false;
}

bool decode_ethertype(std::uint16_t type, ByteView p, L4& out) {
    if (type == 0x0800) return decode_ipv4(p, out);
    if (type == 0x86DD) return decode_ipv6(p, out);
    return false;
}

bool decode_ip_guess(ByteView p, L4& out) {
    if (p.empty()) return false;
    return (p[0] >> 4) == 6 ? decode_ipv6(p, out) : decode_ipv4(p, out);
}

bool decode_link(int link_type, ByteView p, L4& out) {
    switch (link_type) {
        case DLT_EN10MB: {
            if (p.size() < 14) return false;
            std::size_t off = 12;
            std::uint16_t type = be16(p.data() + off);
            for (int tags = 0; (type == 0x8100 || type == 0x88A8 || type == 0x9100) && tags < 4; ++tags) {
                off += 4;
                if (off + 2 > p.size()) return false;
                type = be16(p.data() + off);
            }
            return decode_ethertype(type, p.subspan(off + 2), out);
        }
        case DLT_LINUX_SLL:
            if (p.size() < 16) return false;
            return decode_ethertype(be16(p.data() + 14), p.subspan(16), out);
        case kLinkSll2:
            if (p.size() < 20) return false;
            return decode_ethertype(be16(p.data()), p.subspan(20), out);
        case DLT_NULL:
        case DLT_LOOP: {
            if (p.size() < 4) return false;
            std::uint32_t family = link_type == DLT_LOOP ? be32(p.data()) : load_u32le(p.data());
            if (family > 0xFFFF) family = be32(p.data());  // written on a big-endian host
            if (family == 2) return decode_ipv4(p.subspan(4), out);
            if (family == 24 || family == 28 || family == 30 || family == 10) return decode_ipv6(p.subspan(4), out);
            return false;
        }
        case DLT_RAW:
        case 101:  // LINKTYPE_RAW
            return decode_ip_guess(p, out);
        case kLinkIpv4:
            return decode_ipv4(p, out);
        case kLinkIpv6:
            return decode_ipv6(p, out);
        default:
            return false;
    }
}

// Writes an endpoint with one 16-byte store for the address and one 4-byte store for the rest. The
// reassembler copies and compares endpoints with wide loads right after, and a load that spans several
// narrower stores still on their way to the cache cannot take its bytes from them: it waits for them, about
// 15 cycles each time. Built field by field, endpoints cost a third of the packet decoder's time that way.
void put_endpoint(Endpoint& e, const std::uint8_t* addr, bool v6, std::uint16_t port) {
    using Words = std::uint32_t __attribute__((vector_size(16)));
    Words a;
    if (v6) {
        std::memcpy(&a, addr, 16);
    } else {
        std::uint32_t v4;
        std::memcpy(&v4, addr, 4);
        a = Words{v4, 0, 0, 0};
    }
    std::memcpy(e.addr.data(), &a, 16);
    static_assert(offsetof(Endpoint, v6) == 16 && offsetof(Endpoint, port) == 18 && sizeof(Endpoint) == 20);
    const std::uint32_t tail = std::endian::native == std::endian::little
                                   ? std::uint32_t{v6} | std::uint32_t{port} << 16
                                   : std::uint32_t{v6} << 24 | std::uint32_t{port};
    std::memcpy(reinterpret_cast<unsigned char*>(&e) + offsetof(Endpoint, v6), &tail, 4);  // v6, padding, port
}

bool decode_tcp(const L4& l4, TcpSegment& out) {
    ByteView seg = l4.data;
    if (l4.proto != kProtoTcp || seg.size() < 20) return false;
    std::size_t header = static_cast<std::size_t>(seg[12] >> 4) * 4;
    if (header < 20 || header > seg.size()) return false;
    put_endpoint(out.src, l4.src, l4.v6, be16(seg.data()));
    put_endpoint(out.dst, l4.dst, l4.v6, be16(seg.data() + 2));
    out.seq = be32(seg.data() + 4);
    out.ack = be32(seg.data() + 8);
    out.flags = seg[13];
    out.payload = seg.subspan(header);
    return true;
}

bool decode_udp(const L4& l4, UdpDatagram& out) {
    ByteView d = l4.data;
    if (l4.proto != kProtoUdp || d.size() < 8) return false;
    std::size_t len = be16(d.data() + 4);
    if (len < 8) return false;
    put_endpoint(out.src, l4.src, l4.v6, be16(d.data()));
    put_endpoint(out.dst, l4.dst, l4.v6, be16(d.data() + 2));
    out.payload = d.subspan(8, std::min(d.size(), len) - 8);
    return true;
}

// Decodes a packet's TCP segment or UDP datagram into a fresh object (see put_endpoint), numbers and times
// it, and hands it to `sink`; false when the transport header is not one.
template <class Unit, class Sink>
bool hand_over(const L4& l4, bool (*decode)(const L4&, Unit&), std::uint64_t frame, FileTime t, const Sink& sink) {
    Unit unit;
    if (!decode(l4, unit)) return false;
    unit.frame = frame;
    unit.time = t;
    sink(unit);
    return true;
}

}  // namespace

namespace {
// Eight address bytes as one word (host order: only compared and hashed, never shown).
std::uint64_t word(const std::uint8_t* p) {
    std::uint64_t w;
    std::memcpy(&w, p, sizeof w);
    return w;
}
}  // namespace

std::optional<Endpoint> endpoint_from_text(std::string_view address, std::uint16_t port) {
    const std::string s(address);
    Endpoint e;
    e.port = port;
    if (inet_pton(AF_INET, s.c_str(), e.addr.data()) == 1) return e;
    e.v6 = true;
    if (inet_pton(AF_INET6, s.c_str(), e.addr.data()) == 1) return e;
    return std::nullopt;
}

bool Endpoint::precedes(const Endpoint& o) const {
    const std::uint64_t lo = word(addr.data()), olo = word(o.addr.data());
    if (lo != olo) return lo < olo;
    const std::uint64_t hi = word(addr.data() + 8), ohi = word(o.addr.data() + 8);
    if (hi != ohi) return hi < ohi;
    return (std::uint32_t{port} << 1 | v6) < (std::uint32_t{o.port} << 1 | o.v6);
}

std::size_t FlowKeyHash::operator()(const FlowKey& k) const {
    // Every word multiplied by its own odd constant (and rotated) before they are combined and finalised
    // once: no field goes in unmixed, so flows that differ in an address and a port in the same bits do
    // not cancel out (they did when the second address and the ports were XORed in directly).
    auto mix = [](std::uint64_t w, std::uint64_t c, int r) { return std::rotl(w * c, r); };
    const std::uint64_t ports = std::uint64_t{k.a.port} << 17 | std::uint64_t{k.b.port} << 1 | k.a.v6;
    std::uint64_t h = mix(word(k.a.addr.data()), 0x9E3779B97F4A7C15ull, 0) ^
                      mix(word(k.b.addr.data()), 0xC2B2AE3D27D4EB4Full, 17) ^
                      mix(word(k.a.addr.data() + 8), 0x165667B19E3779F9ull, 31) ^
                      mix(word(k.b.addr.data() + 8), 0xD6E8FEB86659FD93ull, 43) ^ mix(ports, 0x9FB21C651E98DF25ull, 53);
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 33;
    return static_cast<std::size_t>(h);
}

bool Endpoint::operator==(const Endpoint& o) const {
    return port == o.port && v6 == o.v6 && word(addr.data()) == word(o.addr.data()) &&
           word(addr.data() + 8) == word(o.addr.data() + 8);
}

namespace {
// Decimal digits of v at out; returns the end.
char* put_decimal(char* out, unsigned v) {
    char digits[5];
    int n = 0;
    do digits[n++] = static_cast<char>('0' + v % 10);
    while ((v /= 10) != 0 && n < 5);
    while (n > 0) *out++ = digits[--n];
    return out;
}
}  // namespace

// By hand rather than snprintf and without an intermediate string: six per connection on a busy capture.
std::size_t Endpoint::format_address(char* out) const {
    char* p = out;
    if (!v6) {
        for (std::size_t i = 0; i < 4; ++i) {
            if (i) *p++ = '.';
            p = put_decimal(p, addr[i]);
        }
        return static_cast<std::size_t>(p - out);
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
    static constexpr char kHex[] = "0123456789abcdef";
    for (int i = 0; i < 8; ++i) {
        if (i == best) {
            *p++ = ':';
            *p++ = ':';
            i += best_len - 1;
            continue;
        }
        if (p != out && p[-1] != ':') *p++ = ':';
        bool started = false;
        for (int shift = 12; shift >= 0; shift -= 4) {
            const unsigned nibble = (g[i] >> shift) & 0xF;
            if (nibble || started || shift == 0) *p++ = kHex[nibble], started = true;
        }
    }
    return static_cast<std::size_t>(p - out);
}

std::string Endpoint::address_string() const {
    char buf[kMaxAddressText];
    return std::string(buf, format_address(buf));
}

std::string Endpoint::to_string() const {
    char buf[kMaxAddressText + 8];
    char* p = buf;
    if (v6) *p++ = '[';
    p += format_address(p);
    if (v6) *p++ = ']';
    *p++ = ':';
    p = put_decimal(p, port);
    return std::string(buf, static_cast<std::size_t>(p - buf));
}

bool supported_link_type(int link_type) {
    switch (link_type) {
        case DLT_EN10MB:
        case DLT_LINUX_SLL:
        case kLinkSll2:
        case DLT_NULL:
        case DLT_LOOP:
        case DLT_RAW:
        case 101:
        case kLinkIpv4:
        case kLinkIpv6:
            return true;
        default:
            return false;
    }
}

std::optional<TcpSegment> decode_packet(int link_type, ByteView p) {
    L4 l4;
    std::optional<TcpSegment> seg(std::in_place);
    if (!decode_link(link_type, p, l4) || !decode_tcp(l4, *seg)) seg.reset();
    return seg;
}

std::optional<UdpDatagram> decode_udp_packet(int link_type, ByteView p) {
    L4 l4;
    std::optional<UdpDatagram> dg(std::in_place);
    if (!decode_link(link_type, p, l4) || !decode_udp(l4, *dg)) dg.reset();
    return dg;
}

PacketSource::PacketSource(const std::string& path) : in_(std::make_unique<Input>()), path_(path) {
    const std::string name = display_name();
    int fd = path == "-" ? dup(STDIN_FILENO) : open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error(name + ": " + std::strerror(errno));
    struct stat st {};
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) in_->size = static_cast<std::uint64_t>(st.st_size);
    in_->input = std::make_unique<FileInput>(fd);
    const std::string magic = in_->input->peek(4);
    if (input_failed()) throw std::runtime_error(error_);
    in_->window = std::make_unique<InputWindow>(*in_->input);
    if (magic == std::string("\x0a\x0d\x0d\x0a", 4)) {
        in_->pcapng = std::make_unique<PcapngReader>(*in_->window);
        return;
    }
    in_->pcap = std::make_unique<PcapReader>(*in_->window);
    if (!in_->pcap->open()) {
        if (input_failed()) throw std::runtime_error(error_);
        throw std::runtime_error(name + ": " + in_->pcap->error());
    }
}

PacketSource::~PacketSource() {
    if (pcap_) pcap_close(pcap_);  // live
}

std::uint64_t PacketSource::offset() const {
    return in_ && in_->window ? in_->window->offset() : 0;
}

double PacketSource::progress() const {
    if (!in_ || in_->size == 0) return -1;
    return std::min(1.0, static_cast<double>(in_->input->file_position()) / static_cast<double>(in_->size));
}

std::string PacketSource::where() const {
    return " (after packet " + std::to_string(packets_) + ")";
}

// A read error or damaged gzip below the format readers: that is the error to report, whatever the
// reader made of the short read (a truncated record or block).
bool PacketSource::input_failed() {
    if (!in_) return false;  // live: libpcap reports its own errors
    const auto& f = in_->input->failure();
    if (!f) return false;
    const std::string name = display_name();
    const std::string after = ", after packet " + std::to_string(packets_) + ")";
    if (in_->input->gzip())
        error_ = name + ": at byte " + std::to_string(f->file_offset) + " of the compressed file (uncompressed byte " +
                 std::to_string(f->offset) + after + ": " + f->reason;
    else
        error_ = name + ": at byte " + std::to_string(f->offset) + " (after packet " + std::to_string(packets_) +
                 "): " + f->reason;
    return true;
}

void PacketSource::deliver(int link, FileTime t, ByteView packet,
                           const std::function<void(const TcpSegment&)>& on_segment) {
    ++packets_;
    L4 l4;
    if (decode_link(link, packet, l4)) {
        if (l4.proto == kProtoTcp) {
            if (hand_over<TcpSegment>(l4, decode_tcp, packets_, t, on_segment)) return;
        } else if (l4.proto == kProtoUdp && on_udp_) {
            if (hand_over<UdpDatagram>(l4, decode_udp, packets_, t, on_udp_)) return;
        }
    }
    ++skipped_;
}

bool PacketSource::read_pcapng(const std::function<void(const TcpSegment&)>& on_segment) {
    PcapngReader::Packet pkt;
    for (;;) {
        const auto status = in_->pcapng->next(pkt);
        if (status == PcapngReader::Status::End) return !input_failed();
        if (status == PcapngReader::Status::Error) {
            if (!input_failed())
                error_ = display_name() + ": at byte " + std::to_string(in_->pcapng->error_offset()) + where() +
                         ": pcapng: " + in_->pcapng->error();
            return false;
        }
        if (!supported_link_type(pkt.link_type)) {
            // Another interface may carry what can be read; a file with none is refused, as a pcap is.
            if (!in_->pcapng->any_interface(supported_link_type)) {
                return refuse_link_type(pkt.link_type, in_->pcapng->error_offset());
            }
            ++packets_;
            ++skipped_;
            continue;
        }
        deliver(pkt.link_type, pkt.time, pkt.data, on_segment);
    }
}

std::string PacketSource::display_name() const {
    return path_ == "-" ? std::string("<stdin>") : path_;
}

bool PacketSource::refuse_link_type(int link, std::uint64_t at) {
    const char* lname = pcap_datalink_val_to_name(link);
    error_ = display_name() + ": at byte " + std::to_string(at) + ": unsupported link type " + std::to_string(link) +
             (lname ? std::string(" (") + lname + ")" : std::string());
    return false;
}

bool PacketSource::read_pcap(const std::function<void(const TcpSegment&)>& on_segment) {
    PcapReader& reader = *in_->pcap;
    const int link = reader.link_type();
    if (!supported_link_type(link)) return refuse_link_type(link, offset());
    PcapReader::Packet pkt;
    for (;;) {
        if (stop_ && stop_->load(std::memory_order_relaxed)) return true;
        const auto status = reader.next(pkt);
        if (status == PcapReader::Status::End) return !input_failed();
        if (status == PcapReader::Status::Error) {
            if (!input_failed())
                error_ = display_name() + ": at byte " + std::to_string(reader.error_offset()) + where() + ": " +
                         reader.error();
            return false;
        }
        deliver(link, pkt.time, pkt.data, on_segment);
    }
}

bool PacketSource::for_each_segment(const std::function<void(const TcpSegment&)>& on_segment) {
    if (in_ && in_->pcapng) return read_pcapng(on_segment);
    if (in_ && in_->pcap) return read_pcap(on_segment);
    const int link = pcap_datalink(pcap_);
    if (!supported_link_type(link)) return refuse_link_type(link, offset());
    pcap_pkthdr* hdr = nullptr;
    const u_char* data = nullptr;
    for (;;) {
        if (stop_ && stop_->load(std::memory_order_relaxed)) return true;
        int rc = pcap_next_ex(pcap_, &hdr, &data);
        if (rc == PCAP_ERROR_BREAK) return !input_failed();  // end of file (or of what could be inflated)
        if (rc == 0) {                                       // live: nothing to read now
            wait_for_packets();
            if (on_tick_) on_tick_();
            continue;
        }
        if (rc != 1) {
            if (!input_failed())
                error_ = display_name() + ": at byte " + std::to_string(offset()) + where() + ": " + pcap_geterr(pcap_);
            return false;
        }
        const auto frac = static_cast<std::uint64_t>(hdr->ts.tv_usec);  // nanoseconds when nanoseconds_
        const FileTime t{static_cast<std::uint64_t>(FileTime::from_unix(hdr->ts.tv_sec).ticks) +
                         (nanoseconds_ ? frac / 100 : frac * 10)};
        deliver(link, t, ByteView(data, hdr->caplen), on_segment);
    }
}

}  // namespace kmscope::capture
