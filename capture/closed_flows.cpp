#include "closed_flows.hpp"

#include <bit>

namespace kmscope::capture {

std::size_t ClosedFlows::slot_of(std::uint64_t h) const {
    const std::size_t mask = slots_.size() - 1;
    std::size_t i = static_cast<std::size_t>(h) & mask;
    while (slots_[i].hash != 0 && slots_[i].hash != h) i = (i + 1) & mask;  // never full: load at most 1/2
    return i;
}

std::optional<FileTime> ClosedFlows::find(std::uint64_t flow_hash) const {
    if (slots_.empty()) return std::nullopt;
    const Slot& s = slots_[slot_of(stored(flow_hash))];
    if (s.hash == 0) return std::nullopt;
    return s.time;
}

void ClosedFlows::remember(std::uint64_t flow_hash, FileTime closed_at) {
    if (slots_.empty()) {
        slots_.resize(std::bit_ceil(capacity_ * 2));
        order_.resize(capacity_);
    }
    const std::uint64_t h = stored(flow_hash);
    Slot& s = slots_[slot_of(h)];
    if (s.hash == h) {
        s.time = closed_at;  // closed again: a fresh time, the same place in the order
        return;
    }
    if (count_ == capacity_) {
        erase(order_[head_]);
        head_ = (head_ + 1) % capacity_;
        --count_;
    }
    slots_[slot_of(h)] = {h, closed_at};  // looked up again: the erase may have moved slots
    order_[(head_ + count_) % capacity_] = h;
    ++count_;
}

// Linear probing's deletion by backward shift: later members of the probe run move into the hole when
// their home slot does not lie strictly between the hole and them, so lookups need no tombstones.
void ClosedFlows::erase(std::uint64_t h) {
    const std::size_t mask = slots_.size() - 1;
    std::size_t hole = slot_of(h);
    if (slots_[hole].hash == 0) return;
    for (std::size_t j = (hole + 1) & mask; slots_[j].hash != 0; j = (j + 1) & mask) {
        const std::size_t home = static_cast<std::size_t>(slots_[j].hash) & mask;
        const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!stays) {
            slots_[hole] = slots_[j];
            hole = j;
        }
    }
    slots_[hole] = {};
}

void ClosedFlows::clear() {
    slots_.clear();
    slots_.shrink_to_fit();
    order_.clear();
    order_.shrink_to_fit();
    head_ = count_ = 0;
}

}  // namespace kmscope::capture
