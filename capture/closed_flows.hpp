// Connections closed by FIN or RST, remembered so that their last ACKs and retransmissions start no new
// connection: the most recent `capacity` of them.
//
// They are kept in a ring in the order they closed, and found through a flat open-addressing index
// (linear probing, deletion by backward shift) of 8-byte slots: 32 bits of the flow's hash and its place in
// the ring. A map with a list cost a node allocation, a free and a cache miss on a cold node per
// connection; slots holding whole keys (64 bytes) made a 2 MiB table at the default capacity, and a miss
// to memory on every close. The index is an eighth of that, so probes stay in cache, and the ring entry a
// lookup compares is the one just written when the last ACK follows its FIN.
// Lookups compare the whole flow key, not just the hash: two flows whose hashes collide must never be taken
// for each other, or a crafted capture could hide one connection behind another's close.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "kmscope/bytes.hpp"
#include "packet_source.hpp"

namespace kmscope::capture {

class ClosedFlows {
public:
    /// At most 2^30 flows are kept, whatever the capacity asked (that many would take 60 GB).
    explicit ClosedFlows(std::size_t capacity);
    /// Remembers (or refreshes the time of) a closed flow; the oldest goes when `capacity` are kept.
    /// `hash` is FlowKeyHash of `key` (the caller has it already).
    void remember(const FlowKey& key, std::uint64_t hash, FileTime closed_at);
    /// When the flow was closed, if it is remembered.
    std::optional<FileTime> find(const FlowKey& key, std::uint64_t hash) const;
    std::size_t size() const { return ring_.size(); }
    /// Slots in the index: it grows with what it holds, up to twice the capacity.
    std::size_t slots() const { return slots_.size(); }
    void clear();

private:
    struct Slot {
        std::uint32_t tag = 0;    // the low 32 bits of the flow's hash: its home slot, and a cheap first test
        std::uint32_t place = 0;  // 1 + its index in ring_; 0 for a free slot
    };
    struct Closed {
        FlowKey key;
        std::uint32_t tag;
        FileTime time;
    };
    static std::size_t home(const Slot& s) { return s.tag; }
    static bool used(const Slot& s) { return s.place != 0; }
    // Where the flow is in the index, or the free slot that ends its probe.
    std::size_t slot_of(const FlowKey& key, std::uint32_t tag) const;
    std::size_t slot_of_place(std::uint32_t tag, std::uint32_t place) const;
    void erase_slot(std::size_t hole);
    void grow();
    std::size_t capacity_;
    std::vector<Slot> slots_;   // a power of two, at most half full
    std::vector<Closed> ring_;  // grows to capacity_, then the oldest (at oldest_) is overwritten
    std::size_t oldest_ = 0;
};

}  // namespace kmscope::capture
