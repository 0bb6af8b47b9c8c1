// Connections closed by FIN or RST, remembered so that their last ACKs and retransmissions start no new
// connection: the most recent `capacity` of them, as 64-bit flow hashes in a flat open-addressing table
// with a ring for their order. A map of flow keys with a list of them cost a node allocation, a free and
// a cache miss on a cold node per connection (4 % of kms-analyze's time on a KMS-only capture). Two flows
// sharing a 64-bit hash could at worst make the first non-SYN segment of one look like the tail of the
// other: a chance of about 2^-50 per lookup with the table full.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "kmscope/bytes.hpp"

namespace kmscope::capture {

class ClosedFlows {
public:
    explicit ClosedFlows(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}
    /// Remembers (or refreshes the time of) a closed flow; the oldest goes when `capacity` are kept.
    void remember(std::uint64_t flow_hash, FileTime closed_at);
    /// When the flow was closed, if it is remembered.
    std::optional<FileTime> find(std::uint64_t flow_hash) const;
    std::size_t size() const { return count_; }
    void clear();

private:
    struct Slot {
        std::uint64_t hash = 0;  // 0: empty (a hash of 0 is stored as 1)
        FileTime time;
    };
    static std::uint64_t stored(std::uint64_t h) { return h == 0 ? 1 : h; }
    std::size_t slot_of(std::uint64_t h) const;  // where h is, or the empty slot where it would go
    void erase(std::uint64_t h);
    std::size_t capacity_;
    std::vector<Slot> slots_;           // a power of two, at least twice the capacity; allocated on first use
    std::vector<std::uint64_t> order_;  // ring of the kept hashes, oldest at head_
    std::size_t head_ = 0, count_ = 0;
};

}  // namespace kmscope::capture
