// ClosedFlows, TcpSplit's memory of closed connections (a flat table with deletion by backward shift),
// against a map and a queue doing the same by the book: random remembers and lookups on hashes that
// share their low bits (long probe runs that wrap around the table), at small and odd capacities.
#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <random>

#include "closed_flows.hpp"

namespace kmscope::capture {
namespace {

TEST(ClosedFlows, KeepsTheMostRecentCapacityFlowsLikeAMapAndAQueue) {
    for (std::size_t capacity : {1u, 2u, 3u, 7u, 16u, 100u}) {
        ClosedFlows flows(capacity);
        std::map<std::uint64_t, FileTime> model;
        std::deque<std::uint64_t> order;
        std::mt19937_64 rng(capacity);
        // Few distinct hashes, most with the same low bits: collisions, refreshes and evictions all happen.
        auto pick = [&] {
            const std::uint64_t n = rng() % (capacity * 3 + 2);
            return n % 3 == 0 ? n + 2 : (n << 32) | 5;  // "| 5": one home slot for two thirds of them
        };
        for (int step = 0; step < 20000; ++step) {
            const std::uint64_t h = pick();
            if (rng() % 2) {
                const FileTime t{static_cast<std::uint64_t>(step)};
                if (!model.count(h)) {
                    order.push_back(h);
                    if (order.size() > capacity) {
                        model.erase(order.front());
                        order.pop_front();
                    }
                }
                model[h] = t;
                flows.remember(h, t);
            }
            const std::uint64_t q = pick();
            const auto got = flows.find(q);
            const auto want = model.find(q);
            ASSERT_EQ(got.has_value(), want != model.end()) << "capacity " << capacity << " step " << step;
            if (got) {
                ASSERT_EQ(got->ticks, want->second.ticks);
            }
            ASSERT_EQ(flows.size(), model.size());
        }
        // Every kept flow is found, every forgotten one is not.
        for (std::uint64_t n = 0; n < capacity * 3 + 2; ++n)
            for (std::uint64_t h : {n + 2, (n << 32) | 5})
                EXPECT_EQ(flows.find(h).has_value(), model.count(h) == 1) << h;
        flows.clear();
        EXPECT_EQ(flows.size(), 0u);
        EXPECT_FALSE(flows.find(order.back()));
    }
}

// 0 marks an empty slot, so a hash of 0 is kept as 1: the two are the same flow to the table.
TEST(ClosedFlows, HashZeroIsKeptAsOne) {
    ClosedFlows flows(4);
    EXPECT_FALSE(flows.find(0));
    flows.remember(0, FileTime{42});
    ASSERT_TRUE(flows.find(0));
    EXPECT_EQ(flows.find(0)->ticks, 42u);
    EXPECT_TRUE(flows.find(1));
}

}  // namespace
}  // namespace kmscope::capture
