// Packets copied out of libpcap's buffer so that reading the file and reassembling TCP can run on
// different threads: a batch holds a few thousand TCP segments and UDP datagrams, in file order, with
// their payloads in one buffer.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "packet_source.hpp"

namespace kmscope::analyzer {

class PacketBatch {
public:
    static constexpr std::size_t kMaxPackets = 4096, kMaxBytes = 1 << 20;

    void add(const capture::TcpSegment& s) { add(s, nullptr, s.payload); }
    /// Adds a segment whose payload bytes will not be read: only their count travels (replayed as zeros).
    void add_without_payload(const capture::TcpSegment& s) {
        if (s.payload.size() > kZeros.size()) return add(s);
        capture::TcpSegment seg = s;
        seg.payload = {};
        packets_.push_back({seg, 0, s.payload.size(), false, true});
    }
    void add(const capture::UdpDatagram& d) { add({d.time, d.frame, d.src, d.dst, 0, 0, 0, {}}, &d, d.payload); }
    bool full() const { return packets_.size() >= kMaxPackets || payloads_.size() >= kMaxBytes; }
    bool empty() const { return packets_.empty(); }

    /// Hands every packet, in order, to `on_tcp` or `on_udp`.
    template <class Tcp, class Udp>
    void replay(Tcp&& on_tcp, Udp&& on_udp) const {
        for (const auto& p : packets_) {
            const ByteView payload(p.elided ? kZeros.data() : payloads_.data() + p.offset, p.size);
            if (p.udp) {
                on_udp(capture::UdpDatagram{p.seg.time, p.seg.frame, p.seg.src, p.seg.dst, payload});
            } else {
                capture::TcpSegment s = p.seg;
                s.payload = payload;
                on_tcp(s);
            }
        }
    }

private:
    struct Packet {
        capture::TcpSegment seg;  // payload left empty: the bytes are at `offset` in payloads_
        std::size_t offset = 0, size = 0;
        bool udp = false;
        bool elided = false;  // the payload was not copied
    };
    static constexpr std::array<std::uint8_t, 65536> kZeros{};
    void add(capture::TcpSegment seg, const capture::UdpDatagram* udp, ByteView payload) {
        seg.payload = {};
        packets_.push_back({seg, payloads_.size(), payload.size(), udp != nullptr, false});
        payloads_.insert(payloads_.end(), payload.begin(), payload.end());
    }
    std::vector<Packet> packets_;
    std::vector<std::uint8_t> payloads_;
};

}  // namespace kmscope::analyzer
