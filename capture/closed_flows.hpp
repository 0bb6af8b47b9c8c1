// Connections closed by FIN or RST, remembered so that their last ACKs and retransmissions start no new
// connection: the most recent `capacity` of them, in a flat open-addressing table (linear probing,
// deletion by backward shift) with a queue for their order. A map with a list cost a node allocation, a
// free and a cache miss on a cold node per connection (4 % of kms-analyze's time on a KMS-only capture).
// Slots keep the whole flow key, not just its hash: two flows whose hashes collide must never be taken
// for each other, or a crafted capture could hide one connection behind another's close.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "kmscope/bytes.hpp"
#include "packet_source.hpp"

namespace kmscope::capture {

class ClosedFlows {
public:
    explicit ClosedFlows(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}
    /// Remembers (or refreshes the time of) a closed flow; the oldest goes when `capacity` are kept.
    /// `hash` is FlowKeyHash of `key` (the caller has it already).
    void remember(const FlowKey& key, std::uint64_t hash, FileTime closed_at);
    /// When the flow was closed, if it is remembered.
    std::optional<FileTime> find(const FlowKey& key, std::uint64_t hash) const;
    std::size_t size() const { return order_.size(); }
    /// Slots in the table: it grows with what it holds, up to twice the capacity.
    std::size_t slots() const { return slots_.size(); }
    void clear();

private:
    struct Slot {
        bool used = false;
        std::uint64_t hash = 0;
        FlowKey key;
        FileTime time;
    };
    struct Kept {
        std::uint64_t hash;
        FlowKey key;
    };
    std::size_t slot_of(const FlowKey& key, std::uint64_t hash) const;  // where it is, or the free slot for it
    void erase(const FlowKey& key, std::uint64_t hash);
    void grow();
    std::size_t capacity_;
    std::vector<Slot> slots_;  // a power of two, at most half full
    std::deque<Kept> order_;   // oldest first
};

}  // namespace kmscope::capture
