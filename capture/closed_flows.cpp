#include "closed_flows.hpp"

#include <algorithm>
#include <bit>

namespace kmscope::capture {

namespace {
constexpr std::size_t kFirstSlots = 16;
}  // namespace

std::size_t ClosedFlows::slot_of(const FlowKey& key, std::uint64_t hash) const {
    const std::size_t mask = slots_.size() - 1;
    std::size_t i = static_cast<std::size_t>(hash) & mask;
    // Never full (at most half), so a free slot ends every probe.
    while (slots_[i].used && !(slots_[i].hash == hash && slots_[i].key == key)) i = (i + 1) & mask;
    return i;
}

std::optional<FileTime> ClosedFlows::find(const FlowKey& key, std::uint64_t hash) const {
    if (slots_.empty()) return std::nullopt;
    const Slot& s = slots_[slot_of(key, hash)];
    if (!s.used) return std::nullopt;
    return s.time;
}

void ClosedFlows::remember(const FlowKey& key, std::uint64_t hash, FileTime closed_at) {
    if (slots_.empty()) slots_.resize(std::min(kFirstSlots, std::bit_ceil(capacity_ * 2)));
    if (Slot& s = slots_[slot_of(key, hash)]; s.used) {
        s.time = closed_at;  // closed again: a fresh time, the same place in the order
        return;
    }
    if (order_.size() == capacity_) {
        erase(order_.front().key, order_.front().hash);
        order_.pop_front();
    }
    if ((order_.size() + 1) * 2 > slots_.size()) grow();
    slots_[slot_of(key, hash)] = {true, hash, key, closed_at};  // looked up again: erase and grow move slots
    order_.push_back({hash, key});
}

// Linear probing's deletion by backward shift: later members of the probe run move into the hole unless
// their home slot lies cyclically in (hole, j], so lookups need no tombstones.
void ClosedFlows::erase(const FlowKey& key, std::uint64_t hash) {
    const std::size_t mask = slots_.size() - 1;
    std::size_t hole = slot_of(key, hash);
    if (!slots_[hole].used) return;
    for (std::size_t j = (hole + 1) & mask; slots_[j].used; j = (j + 1) & mask) {
        const std::size_t home = static_cast<std::size_t>(slots_[j].hash) & mask;
        const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!stays) {
            slots_[hole] = slots_[j];
            hole = j;
        }
    }
    slots_[hole] = {};
}

void ClosedFlows::grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    for (const Slot& s : old)
        if (s.used) slots_[slot_of(s.key, s.hash)] = s;
}

void ClosedFlows::clear() {
    slots_.clear();
    slots_.shrink_to_fit();
    order_.clear();
    order_.shrink_to_fit();
}

}  // namespace kmscope::capture
