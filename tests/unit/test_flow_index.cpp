// FlowIndex, TcpSplit's table of open connections (a flat index with deletion by backward shift), against
// a std::map doing the same by the book: random inserts, erases and lookups with hashes chosen to collide
// (several flows per hash, long probe runs, runs that wrap around the end of the table), through growth.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "colliding_flows.hpp"
#include "flow_index.hpp"

namespace kmscope::capture {
namespace {

struct Item {
    FlowKey key;
    std::uint64_t hash = 0;
    std::uint64_t n = 0;  // which flow: the model's key
};

using test::colliding_hash;
using test::flow;

TEST(FlowIndex, FindsWhatAMapFindsThroughInsertsErasesAndGrowth) {
    for (std::uint64_t distinct : {1u, 5u, 40u, 300u}) {
        FlowIndex<Item> index;
        std::map<std::uint64_t, const Item*> model;
        std::mt19937_64 rng(distinct);
        for (int step = 0; step < 20000; ++step) {
            const std::uint64_t n = rng() % distinct;
            if (auto it = model.find(n); it != model.end()) {
                if (rng() % 3 == 0) {
                    index.erase(*it->second);
                    model.erase(it);
                }
            } else {
                auto item = std::make_unique<Item>();
                item->key = flow(n), item->hash = colliding_hash(n), item->n = n;
                model[n] = &index.insert(std::move(item));
            }
            const std::uint64_t q = rng() % distinct;
            const Item* got = index.find(flow(q), colliding_hash(q));
            const auto want = model.find(q);
            ASSERT_EQ(got != nullptr, want != model.end()) << "flows " << distinct << " step " << step;
            if (got) {
                ASSERT_EQ(got, want->second);  // items never move
                ASSERT_EQ(got->n, q);
            }
            ASSERT_EQ(index.size(), model.size());
        }
        std::set<std::uint64_t> visited;
        index.for_each([&](Item& i) { EXPECT_TRUE(visited.insert(i.n).second); });
        EXPECT_EQ(visited.size(), model.size());
        for (const auto& [n, item] : model) EXPECT_TRUE(visited.count(n)) << n;
        index.clear();
        EXPECT_EQ(index.size(), 0u);
        EXPECT_EQ(index.find(flow(0), colliding_hash(0)), nullptr);
    }
}

// Two flows with one hash are two flows.
TEST(FlowIndex, FlowsSharingAHashAreKeptApart) {
    FlowIndex<Item> index;
    auto a = std::make_unique<Item>(), b = std::make_unique<Item>();
    a->key = flow(1), a->hash = 77, a->n = 1;
    b->key = flow(2), b->hash = 77, b->n = 2;
    Item& first = index.insert(std::move(a));
    EXPECT_EQ(index.find(flow(2), 77), nullptr);
    Item& second = index.insert(std::move(b));
    EXPECT_EQ(index.find(flow(1), 77), &first);
    EXPECT_EQ(index.find(flow(2), 77), &second);
    index.erase(first);
    EXPECT_EQ(index.find(flow(1), 77), nullptr);
    EXPECT_EQ(index.find(flow(2), 77), &second);
}

}  // namespace
}  // namespace kmscope::capture
