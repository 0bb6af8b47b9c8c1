// Packets copied out of the reader's buffer so that reading the file and reassembling TCP can run on
// different threads: a batch holds a few thousand TCP segments and UDP datagrams, in file order, with
// their payloads in one buffer.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
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
    /// Empties the batch and keeps its buffers, so that a recycled batch fills without allocating (a fresh
    /// megabyte per batch costs page faults and reallocation copies on every batch).
    void clear() {
        packets_.clear();
        payloads_.clear();
    }
    /// Sizes the buffers for a full batch once (a payload may overrun kMaxBytes by one packet).
    void reserve() {
        packets_.reserve(kMaxPackets);
        payloads_.reserve(kMaxBytes + 65536);
    }

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

/// Batches on their way between the reading and the reassembly thread, at most this many at once.
inline constexpr std::size_t kBatchesInFlight = 4;

/// Emptied batches handed back by the reassembly thread for the reading thread to fill again: the
/// buffers of a few batches are allocated once per file instead of once per batch.
class SparePackets {
public:
    PacketBatch take() {
        {
            std::lock_guard lock(mu_);
            if (!spare_.empty()) {
                PacketBatch b = std::move(spare_.back());
                spare_.pop_back();
                return b;
            }
        }
        PacketBatch b;
        b.reserve();
        return b;
    }
    void put(PacketBatch&& b) {
        b.clear();
        std::lock_guard lock(mu_);
        // In flight, being filled, being replayed: no more can be in use at once.
        if (spare_.size() < kBatchesInFlight + 2) spare_.push_back(std::move(b));
    }

private:
    std::mutex mu_;
    std::vector<PacketBatch> spare_;
};

}  // namespace kmscope::analyzer
