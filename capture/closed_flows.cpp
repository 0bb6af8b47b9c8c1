#include "closed_flows.hpp"

#include <algorithm>
#include <bit>

#include "linear_probe.hpp"

namespace kmscope::capture {

namespace {
constexpr std::size_t kFirstSlots = 16;
constexpr std::size_t kMostKept = std::size_t{1} << 30;  // slot indices and places fit 32 bits
}  // namespace

ClosedFlows::ClosedFlows(std::size_t capacity) : capacity_(std::clamp<std::size_t>(capacity, 1, kMostKept)) {}

std::size_t ClosedFlows::slot_of(const FlowKey& key, std::uint32_t tag) const {
    const std::size_t mask = slots_.size() - 1;
    std::size_t i = tag & mask;
    // Never full (at most half), so a free slot ends every probe.
    for (; slots_[i].place != 0; i = (i + 1) & mask)
        if (slots_[i].tag == tag && ring_[slots_[i].place - 1].key == key) break;
    return i;
}

std::size_t ClosedFlows::slot_of_place(std::uint32_t tag, std::uint32_t place) const {
    const std::size_t mask = slots_.size() - 1;
    std::size_t i = tag & mask;
    while (slots_[i].place != place) i = (i + 1) & mask;  // it is there: the ring holds nothing else
    return i;
}

std::optional<FileTime> ClosedFlows::find(const FlowKey& key, std::uint64_t hash) const {
    if (slots_.empty()) return std::nullopt;
    const Slot& s = slots_[slot_of(key, static_cast<std::uint32_t>(hash))];
    if (s.place == 0) return std::nullopt;
    return ring_[s.place - 1].time;
}

void ClosedFlows::remember(const FlowKey& key, std::uint64_t hash, FileTime closed_at) {
    const auto tag = static_cast<std::uint32_t>(hash);
    if (slots_.empty()) slots_.resize(std::min(kFirstSlots, std::bit_ceil(capacity_ * 2)));
    if (const Slot& s = slots_[slot_of(key, tag)]; s.place != 0) {
        ring_[s.place - 1].time = closed_at;  // closed again: a fresh time, the same place in the order
        return;
    }
    std::size_t at;
    if (ring_.size() < capacity_) {
        if ((ring_.size() + 1) * 2 > slots_.size()) grow();
        at = ring_.size();
        ring_.push_back({key, tag, closed_at});
    } else {
        at = oldest_;  // the oldest makes room
        erase_slot(slot_of_place(ring_[at].tag, static_cast<std::uint32_t>(at + 1)));
        ring_[at] = {key, tag, closed_at};
        oldest_ = (oldest_ + 1) % capacity_;
    }
    // Looked up again: erasing and growing move slots.
    slots_[slot_of(key, tag)] = {tag, static_cast<std::uint32_t>(at + 1)};
}

void ClosedFlows::erase_slot(std::size_t hole) {
    linear_probe::erase(slots_, hole, home, used);
}

void ClosedFlows::grow() {
    linear_probe::grow(slots_, home, used);
}

void ClosedFlows::clear() {
    slots_.clear();
    slots_.shrink_to_fit();
    ring_.clear();
    ring_.shrink_to_fit();
    oldest_ = 0;
}

}  // namespace kmscope::capture
