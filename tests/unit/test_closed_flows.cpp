// ClosedFlows, TcpSplit's memory of closed connections (a flat table with deletion by backward shift),
// against a map and a queue doing the same by the book: random remembers and lookups with hashes chosen
// to collide (several flows per hash, long probe runs, runs that wrap around the end of the table), at
// small and odd capacities, through the table's growth.
#include <gtest/gtest.h>

#include <bit>
#include <deque>
#include <map>
#include <random>

#include "closed_flows.hpp"
#include "colliding_flows.hpp"

namespace kmscope::capture {
namespace {

using test::colliding_hash;
using test::flow;

TEST(ClosedFlows, KeepsTheMostRecentCapacityFlowsLikeAMapAndAQueue) {
    for (std::size_t capacity : {1u, 2u, 3u, 7u, 16u, 100u}) {
        ClosedFlows flows(capacity);
        std::map<std::uint64_t, FileTime> model;  // by flow number
        std::deque<std::uint64_t> order;
        std::mt19937_64 rng(capacity);
        const std::uint64_t distinct = capacity * 3 + 2;
        for (int step = 0; step < 20000; ++step) {
            const std::uint64_t n = rng() % distinct;
            if (rng() % 2) {
                const FileTime t{static_cast<std::uint64_t>(step)};
                if (!model.count(n)) {
                    order.push_back(n);
                    if (order.size() > capacity) {
                        model.erase(order.front());
                        order.pop_front();
                    }
                }
                model[n] = t;
                flows.remember(flow(n), colliding_hash(n), t);
            }
            const std::uint64_t q = rng() % distinct;
            const auto got = flows.find(flow(q), colliding_hash(q));
            const auto want = model.find(q);
            ASSERT_EQ(got.has_value(), want != model.end()) << "capacity " << capacity << " step " << step;
            if (got) {
                ASSERT_EQ(got->ticks, want->second.ticks);
            }
            ASSERT_EQ(flows.size(), model.size());
        }
        for (std::uint64_t n = 0; n < distinct; ++n)
            EXPECT_EQ(flows.find(flow(n), colliding_hash(n)).has_value(), model.count(n) == 1) << n;
        EXPECT_LE(flows.slots(), std::bit_ceil(capacity * 2));
        flows.clear();
        EXPECT_EQ(flows.size(), 0u);
        EXPECT_FALSE(flows.find(flow(order.back()), colliding_hash(order.back())));
    }
}

// Two flows with one hash are two flows: closing one says nothing of the other.
TEST(ClosedFlows, FlowsSharingAHashAreKeptApart) {
    ClosedFlows flows(4);
    flows.remember(flow(1), 77, FileTime{10});
    EXPECT_TRUE(flows.find(flow(1), 77));
    EXPECT_FALSE(flows.find(flow(2), 77));
    flows.remember(flow(2), 77, FileTime{20});
    EXPECT_EQ(flows.find(flow(1), 77)->ticks, 10u);
    EXPECT_EQ(flows.find(flow(2), 77)->ticks, 20u);
}

// The table grows with what it holds, not with the capacity it was given.
TEST(ClosedFlows, MemoryFollowsWhatIsHeld) {
    ClosedFlows flows(10'000'000);
    EXPECT_EQ(flows.slots(), 0u);
    for (std::uint64_t n = 0; n < 100; ++n) flows.remember(flow(n), n * 0x9E3779B97F4A7C15ull, FileTime{n});
    EXPECT_EQ(flows.size(), 100u);
    EXPECT_LE(flows.slots(), 256u);
}

}  // namespace
}  // namespace kmscope::capture
