// The genuine host's count: distinct CMIDs per KMS ID within 30 days, capped at 2 x N policy.
#include <gtest/gtest.h>

#include <cstring>

#include "kmscope/counting.hpp"
#include "test_util.hpp"

namespace kmscope {
namespace {

Guid cmid(int i) {
    Guid g;
    g.wire[0] = static_cast<std::uint8_t>(i);
    g.wire[1] = static_cast<std::uint8_t>(i >> 8);
    return g;
}

TEST(GenuineCount, DistinctCmidsCappedAtTwiceNPolicy) {
    MemoryCmidStore store;
    GenuineCountPolicy policy(store);
    kms::BaseRequest q;
    q.kms_id = test::guid("58e2134f-8e11-4d17-9cb2-91069c151148");
    q.n_policy = 25;
    FileTime t = FileTime::from_unix(1795305327);
    for (int i = 1; i <= 60; ++i) {
        q.cmid = cmid(i);
        EXPECT_EQ(policy.count_for(q, t), static_cast<std::uint32_t>(std::min(i, 50)));
    }
    q.cmid = cmid(1);  // a known CMID does not count twice
    EXPECT_EQ(genuine_count(store, q.kms_id, 100, t), 60u);
    // Another KMS ID has its own table.
    q.kms_id = test::guid("7fde5219-fbfa-484a-82c9-34d1ad53e856");
    EXPECT_EQ(policy.count_for(q, t), 1u);
}

// A bounded store keeps the most recent CMIDs only, and still counts exactly what a genuine host's
// count needs (2 x N <= what it keeps): the forgotten CMIDs are older than every kept one.
TEST(GenuineCount, BoundedStoreCountsExactlyUpToWhatItKeeps) {
    const Guid kms = *Guid::parse("8449b1fb-f0ea-497a-99ab-66ca96e9a0f5");
    auto cmid = [](std::uint32_t i) {
        Guid g;
        std::memcpy(g.wire.data(), &i, sizeof i);
        return g;
    };
    MemoryCmidStore bounded(100), full;
    for (std::uint32_t i = 1; i <= 5000; ++i)
        for (CmidStore* s : {static_cast<CmidStore*>(&bounded), static_cast<CmidStore*>(&full)})
            s->touch(kms, cmid(i), FileTime{i});
    for (std::uint64_t since : {4990u, 4950u, 4901u})
        EXPECT_EQ(bounded.count_since(kms, FileTime{since}), full.count_since(kms, FileTime{since})) << since;
    EXPECT_GE(bounded.count_since(kms, FileTime{0}), 100u);
    EXPECT_LT(bounded.count_since(kms, FileTime{0}), 200u);  // the rest was forgotten
    for (std::uint32_t n : {5u, 25u, 50u}) EXPECT_EQ(genuine_count(bounded, kms, n, FileTime{5000}), 2 * n);
    // A CMID seen again long after it was forgotten counts again.
    bounded.touch(kms, cmid(1), FileTime{6000});
    EXPECT_EQ(bounded.count_since(kms, FileTime{5500}), 1u);
}

TEST(GenuineCount, EntriesExpireAfterThirtyDays) {
    MemoryCmidStore store;
    Guid kms = test::guid("58e2134f-8e11-4d17-9cb2-91069c151148");
    FileTime t0 = FileTime::from_unix(1795305327);
    store.touch(kms, cmid(1), t0);
    store.touch(kms, cmid(2), FileTime{t0.ticks + 10ull * 24 * 3600 * 10000000});
    FileTime day31{t0.ticks + 31ull * 24 * 3600 * 10000000};
    EXPECT_EQ(genuine_count(store, kms, 25, day31), 1u);
    store.touch(kms, cmid(1), day31);  // seen again: counts again
    EXPECT_EQ(genuine_count(store, kms, 25, day31), 2u);
    store.expire(FileTime{day31.ticks - kCmidLifetimeTicks});
    EXPECT_EQ(store.count_since(kms, FileTime{0}), 2u);
    store.expire(FileTime{day31.ticks + 1});
    EXPECT_EQ(store.count_since(kms, FileTime{0}), 0u);
    EXPECT_TRUE(store.kms_ids().empty());
}

}  // namespace
}  // namespace kmscope
