// The count a genuine KMS host reports (docs/protocol.md §10.4): distinct client machine IDs seen per
// KMS ID within the last 30 days, never more than twice the requesting client's N policy. The store
// is an interface so that the server can keep it in a database and the analyzer in memory.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>

#include "kmscope/bytes.hpp"
#include "kmscope/server.hpp"

namespace kmscope {

/// Where a host keeps the CMIDs it has seen.
class CmidStore {
public:
    virtual ~CmidStore() = default;
    /// Records that `cmid` asked for `kms_id` at time `t` (keeps the latest time per pair).
    virtual void touch(const Guid& kms_id, const Guid& cmid, FileTime t) = 0;
    /// Number of distinct CMIDs for `kms_id` seen at or after `since`.
    virtual std::uint64_t count_since(const Guid& kms_id, FileTime since) = 0;
    /// Forgets entries last seen before `before`.
    virtual void expire(FileTime before) = 0;
    /// Records `cmid` for `kms_id` at `t`, then returns min(distinct CMIDs seen at or after `since`,
    /// `limit`). A store that can do both in one transaction, reading at most `limit` entries, overrides
    /// it (the server's SQLite store); this one is touch() then count_since().
    virtual std::uint64_t touch_and_count(const Guid& kms_id, const Guid& cmid, FileTime t, FileTime since,
                                          std::uint64_t limit);
};

/// A CmidStore in memory (thread-safe).
class MemoryCmidStore final : public CmidStore {
public:
    /// `keep_per_kms_id` > 0 bounds memory: only the most recently seen that many CMIDs of each KMS ID are
    /// kept (trimmed in batches). count_since() stays exact up to that many, which is all a genuine host's
    /// count needs while 2 x N policy <= keep_per_kms_id: the forgotten CMIDs are older than every kept one.
    explicit MemoryCmidStore(std::size_t keep_per_kms_id = 0) : keep_(keep_per_kms_id) {}
    void touch(const Guid& kms_id, const Guid& cmid, FileTime t) override;
    std::uint64_t count_since(const Guid& kms_id, FileTime since) override;
    void expire(FileTime before) override;
    /// KMS IDs with at least one entry.
    std::vector<Guid> kms_ids() const;

private:
    mutable std::mutex mu_;
    std::size_t keep_ = 0;
    std::map<Guid, std::unordered_map<Guid, FileTime, GuidHash>> by_kms_;
};

/// 30 days in FILETIME ticks.
inline constexpr std::uint64_t kCmidLifetimeTicks = 30ull * 24 * 3600 * 10000000;

/// The genuine host's rule: count distinct CMIDs of the last 30 days, capped at 2 x N policy.
class GenuineCountPolicy final : public server::CountPolicy {
public:
    explicit GenuineCountPolicy(CmidStore& store) : store_(store) {}
    /// Records the request's CMID, then returns the count a genuine host would report.
    std::uint32_t count_for(const kms::BaseRequest& request, FileTime now) override;

private:
    CmidStore& store_;
};

/// The count a genuine host would report for `kms_id` to a client with `n_policy`, without recording.
std::uint32_t genuine_count(CmidStore& store, const Guid& kms_id, std::uint32_t n_policy, FileTime now);

}  // namespace kmscope
