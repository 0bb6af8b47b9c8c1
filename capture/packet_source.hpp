// Reads pcap files (PcapReader) and pcapng files (PcapngReader, a link type per interface), plain
// or gzip-compressed (FileInput), from files, named pipes or standard input ("-"), and cuts each packet
// down to its TCP segment or UDP datagram, without copying it (link layers: Ethernet with 802.1Q/QinQ,
// Linux SLL and SLL2, raw IPv4/IPv6, BSD loopback/NULL; IPv6 extension headers are walked).
#pragma once

#include <pcap/pcap.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "kmscope/bytes.hpp"

namespace kmscope::capture {

/// An IPv4 or IPv6 address with a port.
struct Endpoint {
    std::array<std::uint8_t, 16> addr{};  // IPv4 in the first 4 bytes
    bool v6 = false;
    std::uint16_t port = 0;
    /// "1.2.3.4:1688" or "[::1]:1688".
    std::string to_string() const;
    /// The address alone: "1.2.3.4" or "::1".
    std::string address_string() const;
    /// The address within to_string()'s text, as address_string() gives it, without formatting it again.
    static std::string_view address_in(std::string_view text, bool v6) {
        const std::size_t colon = text.rfind(':');
        return v6 ? text.substr(1, colon - 2) : text.substr(0, colon);
    }
    /// The address alone, written at `out` (room for kMaxAddressText); returns its length.
    static constexpr std::size_t kMaxAddressText = 40;  // "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    std::size_t format_address(char* out) const;
    auto operator<=>(const Endpoint&) const = default;
    /// Equality without a memcmp call: it runs for every packet in the connection table.
    bool operator==(const Endpoint& o) const;
    /// A strict total order on the address words and the port, without memcmp (not the text order).
    bool precedes(const Endpoint& o) const;
};

/// An endpoint from an address's text ("10.0.0.5", "::1", no brackets) and a port; nullopt when it is no
/// address.
std::optional<Endpoint> endpoint_from_text(std::string_view address, std::uint16_t port);

/// A connection's two endpoints in a fixed order, so that both directions of it give the same key.
struct FlowKey {
    Endpoint a, b;
    /// Any fixed order serves, so it is the cheap one of Endpoint::precedes (per packet, twice).
    static FlowKey of(const Endpoint& x, const Endpoint& y) { return x.precedes(y) ? FlowKey{x, y} : FlowKey{y, x}; }
    bool operator==(const FlowKey& o) const { return a == o.a && b == o.b; }
};

/// Deliberately not noexcept: libstdc++ then keeps each node's hash in the node, so a lookup compares
/// hashes before keys and never rehashes the nodes of a bucket it walks (it does for a noexcept hash,
/// which cost a hash computation and a cache miss per node visited, per packet).
struct FlowKeyHash {
    std::size_t operator()(const FlowKey& k) const;
};

/// One TCP segment with its payload (a view into the packet buffer, valid until the next packet).
struct TcpSegment {
    FileTime time;
    std::uint64_t frame = 0;  // 1-based frame number in the file
    Endpoint src, dst;
    std::uint32_t seq = 0;
    std::uint32_t ack = 0;
    std::uint8_t flags = 0;  // TCP flags byte
    ByteView payload;
};

/// One UDP datagram (for DNS), a view into the packet buffer.
struct UdpDatagram {
    FileTime time;
    std::uint64_t frame = 0;
    Endpoint src, dst;
    ByteView payload;
};

namespace tcpflag {
inline constexpr std::uint8_t kFin = 0x01;
inline constexpr std::uint8_t kSyn = 0x02;
inline constexpr std::uint8_t kRst = 0x04;
inline constexpr std::uint8_t kAck = 0x10;
}  // namespace tcpflag

/// How to capture live from a network interface.
struct LiveOptions {
    std::string interface;        // "eth0", "lo", "any"
    std::string bpf_filter;       // tcpdump syntax; empty captures everything
    int snaplen = 65535;          // bytes kept per packet (KMS messages fit in far less; TCP needs it all)
    bool promiscuous = false;     // off by default: a monitor sees the traffic addressed to its host
    int poll_milliseconds = 250;  // how often a quiet capture returns to check for stop and ticks
};

/// What libpcap counted on a live capture (pcap_stats).
struct LiveStats {
    std::uint64_t received = 0, dropped = 0, interface_dropped = 0;
};

/// A capture file ("-" reads standard input; gzip is decompressed on the fly), or a live interface.
class PacketSource {
public:
    /// Opens a pcap or pcapng file; throws std::runtime_error naming the file on failure.
    explicit PacketSource(const std::string& path);
    /// Opens a network interface with libpcap (needs CAP_NET_RAW); throws std::runtime_error with
    /// libpcap's reason (no such device, permission, a BPF filter that does not compile).
    explicit PacketSource(const LiveOptions& live);
    ~PacketSource();
    PacketSource(const PacketSource&) = delete;
    PacketSource& operator=(const PacketSource&) = delete;

    /// Live captures: `tick` runs on the reading thread whenever what the interface had is read (at
    /// least every poll interval, with or without traffic; never per packet); reading ends
    /// (for_each_segment returns true) once `stop` is set, within one interval.
    void set_tick_handler(std::function<void()> tick) { on_tick_ = std::move(tick); }
    void set_stop_flag(const std::atomic<bool>* stop) { stop_ = stop; }
    /// Live captures: libpcap's counters (zeros for a file).
    LiveStats live_stats() const;
    bool live() const { return live_; }

    /// Also delivers UDP datagrams to `handler` (none are delivered without one).
    void set_udp_handler(std::function<void(const UdpDatagram&)> handler) { on_udp_ = std::move(handler); }
    /// Calls `on_segment` for every TCP segment; returns false (with error()) when the file is
    /// corrupt or no link type of it is supported, after delivering every packet before the damage.
    /// Packets on a pcapng interface of an unsupported link type beside supported ones are skipped.
    bool for_each_segment(const std::function<void(const TcpSegment&)>& on_segment);
    /// Why reading stopped early, if it did ("FILE: at byte N (after packet K): reason"; for damaged
    /// gzip "FILE: at byte N of the compressed file (uncompressed byte M, after packet K): gzip: reason").
    const std::string& error() const { return error_; }
    /// Packets read, and packets that were not TCP over IP (or could not be decoded).
    std::uint64_t packets() const { return packets_; }
    std::uint64_t skipped() const { return skipped_; }
    /// Bytes of capture data consumed so far (uncompressed).
    std::uint64_t offset() const;
    /// Fraction of the input read, in [0, 1], or a negative value when the size is unknown (stdin).
    double progress() const;

    /// The open input (defined in the .cpp).
    struct Input;

private:
    bool read_pcap(const std::function<void(const TcpSegment&)>& on_segment);
    bool read_pcapng(const std::function<void(const TcpSegment&)>& on_segment);
    void deliver(int link_type, FileTime time, ByteView packet,
                 const std::function<void(const TcpSegment&)>& on_segment);
    bool input_failed();
    std::string display_name() const;                   // the path, or "<stdin>" for "-"
    bool refuse_link_type(int link, std::uint64_t at);  // sets error_ ("unsupported link type"), false
    void wait_for_packets() const;  // live: until a packet may be there, a poll interval or a signal
    std::string where() const;
    std::unique_ptr<Input> in_;
    pcap_t* pcap_ = nullptr;
    std::string path_;
    std::string error_;
    std::uint64_t packets_ = 0;
    std::uint64_t skipped_ = 0;
    std::function<void(const UdpDatagram&)> on_udp_;
    std::function<void()> on_tick_;
    const std::atomic<bool>* stop_ = nullptr;
    bool live_ = false;
    int poll_milliseconds_ = 250;  // live: the longest wait for a packet before a tick
    bool nanoseconds_ = true;      // libpcap's timestamps: nanoseconds, or microseconds where live capture has no finer
};

/// True for the link types decode_packet() understands.
bool supported_link_type(int link_type);
/// Decodes one packet of the given link type down to TCP; nullopt for anything else.
std::optional<TcpSegment> decode_packet(int link_type, ByteView packet);
/// Decodes one packet of the given link type down to UDP; nullopt for anything else.
std::optional<UdpDatagram> decode_udp_packet(int link_type, ByteView packet);

}  // namespace kmscope::capture
