// The host's table of client machine IDs and request statistics in SQLite (WAL): a CmidStore for the
// core's GenuineCountPolicy whose every touch is committed before the response leaves, so that a
// restart or a crash loses no acknowledged entry; and the per-KMS-ID counters `status` prints.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "kmscope/counting.hpp"

namespace kmscope::replay {

/// How hard SQLite syncs a commit: FULL survives power loss, NORMAL survives a process crash.
enum class SyncMode { Full, Normal };

/// One row of the request statistics.
struct RequestStat {
    std::string kms_id;
    std::uint32_t license_status = 0;
    std::string result;  // "ok", "hresult", "fault"
    std::uint64_t n = 0;
};

/// Last count reported per KMS ID.
struct CountRow {
    std::string kms_id;
    std::uint64_t distinct_cmids = 0;  // distinct CMIDs of the last 30 days
    std::uint32_t last_count = 0;      // count in the last response
    std::uint32_t last_n_policy = 0;
    std::int64_t last_time_unix = 0;
};

/// SQLite-backed CMID table and statistics (thread-safe: one connection behind a mutex).
class SqliteCmidStore final : public CmidStore {
public:
    /// Opens or creates the database; throws std::runtime_error with SQLite's message on failure.
    explicit SqliteCmidStore(const std::string& path, SyncMode sync = SyncMode::Full, bool read_only = false);
    ~SqliteCmidStore() override;
    SqliteCmidStore(const SqliteCmidStore&) = delete;
    SqliteCmidStore& operator=(const SqliteCmidStore&) = delete;

    void touch(const Guid& kms_id, const Guid& cmid, FileTime t) override;
    std::uint64_t count_since(const Guid& kms_id, FileTime since) override;
    void expire(FileTime before) override;

    /// Counts one answered or refused request.
    void record_request(const std::string& kms_id, std::uint32_t license_status, const std::string& result,
                        std::uint32_t count, std::uint32_t n_policy, FileTime t);
    /// Statistics per KMS ID, license status and result.
    std::vector<RequestStat> request_stats();
    /// Current counts per KMS ID as of `now`.
    std::vector<CountRow> counts(FileTime now);
    /// The first of the tables serve creates that the database lacks, or "" when it has them all.
    std::string missing_tables();
    /// Every (KMS ID, CMID) pair in the table.
    std::vector<std::pair<std::string, std::string>> cmids();

private:
    void exec(const char* sql);
    sqlite3_stmt* prepare(const char* sql);
    [[noreturn]] void fail(const std::string& what);
    std::mutex mu_;
    sqlite3* db_ = nullptr;
    sqlite3_stmt* touch_ = nullptr;
    sqlite3_stmt* count_ = nullptr;
    sqlite3_stmt* stat_ = nullptr;
    sqlite3_stmt* last_ = nullptr;
};

}  // namespace kmscope::replay
