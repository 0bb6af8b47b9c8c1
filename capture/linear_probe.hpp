// Deletion by backward shift, shared by the capture library's open-addressing tables (ClosedFlows,
// FlowIndex): linear probing without tombstones, so a table that sees millions of connections come and go
// never fills with dead slots.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace kmscope::capture::linear_probe {

/// Empties slot `hole` of `slots` (a power of two in size, never full). Later members of its probe run move
/// back into the hole unless their home slot lies cyclically in (hole, j], so every lookup still finds what
/// it looks for before the first free slot. `home(slot)` is a used slot's home index (masked here),
/// `used(slot)` whether a slot holds anything.
template <class Slot, class Home, class Used>
void erase(std::vector<Slot>& slots, std::size_t hole, Home home, Used used) {
    const std::size_t mask = slots.size() - 1;
    for (std::size_t j = (hole + 1) & mask; used(slots[j]); j = (j + 1) & mask) {
        const std::size_t h = home(slots[j]) & mask;
        const bool stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
        if (!stays) {
            slots[hole] = std::move(slots[j]);
            hole = j;
        }
    }
    slots[hole] = Slot{};
}

/// Doubles `slots` (a power of two in size), putting each used slot back in the first free slot from its
/// home.
template <class Slot, class Home, class Used>
void grow(std::vector<Slot>& slots, Home home, Used used) {
    std::vector<Slot> old(slots.size() * 2);
    old.swap(slots);
    const std::size_t mask = slots.size() - 1;
    for (Slot& s : old) {
        if (!used(s)) continue;
        std::size_t i = home(s) & mask;
        while (used(slots[i])) i = (i + 1) & mask;
        slots[i] = std::move(s);
    }
}

}  // namespace kmscope::capture::linear_probe
