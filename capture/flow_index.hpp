// The open connections of TcpSplit by flow key: a flat open-addressing index (linear probing, at most half
// full) of (hash, owner of the item). Items are allocated once and never move, so TcpSplit links them into
// its recency order in place. A node-based hash map walked a bucket array, then a node, then the
// connection, on every packet; here a probe reads 16-byte slots and compares keys in the item itself,
// which the packet is about to use anyway.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "linear_probe.hpp"
#include "packet_source.hpp"

namespace kmscope::capture {

/// `T` has the members `FlowKey key` and `std::uint64_t hash` (FlowKeyHash of the key), set before insert.
template <class T>
class FlowIndex {
public:
    /// The item with this key, or null.
    T* find(const FlowKey& key, std::uint64_t hash) const {
        if (slots_.empty()) return nullptr;
        return slots_[slot_of(key, hash)].item.get();
    }
    /// Takes an item whose key is not in the index yet.
    T& insert(std::unique_ptr<T> item) {
        if (slots_.empty()) slots_.resize(kFirstSlots);
        if ((size_ + 1) * 2 > slots_.size()) grow();
        Slot& s = slots_[slot_of(item->key, item->hash)];
        s = {item->hash, std::move(item)};
        ++size_;
        return *s.item;
    }
    /// Destroys an item of the index.
    void erase(const T& item) {
        const std::size_t at = slot_of(item.key, item.hash);
        const std::unique_ptr<T> gone = std::move(slots_[at].item);  // destroyed once the slots have moved
        linear_probe::erase(slots_, at, home, used);
        --size_;
    }
    std::size_t size() const { return size_; }
    /// Calls `f(T&)` on every item, in no particular order; `f` must not insert or erase.
    template <class F>
    void for_each(F&& f) const {
        for (const Slot& s : slots_)
            if (s.item) f(*s.item);
    }
    /// Destroys every item and gives the slots' memory back.
    void clear() {
        std::vector<Slot>().swap(slots_);
        size_ = 0;
    }

private:
    static constexpr std::size_t kFirstSlots = 16;
    struct Slot {
        std::uint64_t hash = 0;
        std::unique_ptr<T> item;
    };
    // Where the key is, or the free slot that ends its probe (there is always one: at most half full).
    std::size_t slot_of(const FlowKey& key, std::uint64_t hash) const {
        const std::size_t mask = slots_.size() - 1;
        std::size_t i = static_cast<std::size_t>(hash) & mask;
        while (slots_[i].item && !(slots_[i].hash == hash && slots_[i].item->key == key)) i = (i + 1) & mask;
        return i;
    }
    static std::size_t home(const Slot& s) { return static_cast<std::size_t>(s.hash); }
    static bool used(const Slot& s) { return s.item != nullptr; }
    void grow() { linear_probe::grow(slots_, home, used); }
    std::vector<Slot> slots_;  // a power of two, at most half full
    std::size_t size_ = 0;
};

}  // namespace kmscope::capture
