// The host's table of client machine IDs and request statistics in SQLite (WAL): a CmidStore for the
// genuine count, and the per-KMS-ID counters `status` prints. A server answers in batches (one round of
// its event loop): every write of a batch goes into one transaction (a savepoint per request, so that
// one request's failure undoes only that request), committed by end_batch(); with SyncMode::Full a
// thread then makes the commit durable with one fdatasync of the WAL while the server collects the next
// batch. A batch's answers leave only once its BatchTicket is durable, and become error answers when
// it is lost: a restart or a crash loses no acknowledged entry.
//
// Under load the store stays flat: every statement is reset as soon as it is used (a statement left
// on a returned row holds a read snapshot, so no checkpoint can complete and the WAL grows without
// bound), the count a request needs is an indexed scan bounded by the 2 x N cap, and the WAL is
// checkpointed automatically and truncated to a fixed size.
#pragma once

#include <sqlite3.h>
#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "kmscope/counting.hpp"

namespace kmscope::replay {

/// How hard a commit is made durable: FULL survives power loss, NORMAL survives a process crash.
enum class SyncMode { Full, Normal };

/// The database cannot take the write now (full disk, lock held too long, file deleted...): the
/// request must be refused with an error answer, never acknowledged. The core's server does that for a
/// count policy that throws it (server::CountUnavailable).
class StoreUnavailable : public server::CountUnavailable {
public:
    using server::CountUnavailable::CountUnavailable;
};

/// The store transactions a batch of answers depends on, [first, last]: taken with batch_mark() before
/// the batch and end_batch() after it. Conservative when several threads share the store: it may cover
/// another thread's transactions too, never fewer than this batch's.
struct BatchTicket {
    std::uint64_t first = 0, last = 0;
};

/// Whether a batch's answers may leave.
struct BatchOutcome {
    enum State { Pending, Durable, Lost } state = Pending;
    std::string why;  // for Lost: why the batch's counts are not durable
};

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

    /// In the batch's transaction (begun here when none is open; a savepoint of its own), with the scan
    /// bounded by `limit` (the 2 x N cap of the core's GenuineCountPolicy), not by the table's size.
    /// Throws StoreUnavailable when the write cannot be made; the batch's other writes stay.
    std::uint64_t touch_and_count(const Guid& kms_id, const Guid& cmid, FileTime t, FileTime since,
                                  std::uint64_t limit) override;
    /// Counts one answered or refused request: kept in memory until the next end_batch() (or flush()),
    /// and written in the batch's transaction.
    void record_request(const std::string& kms_id, std::uint32_t license_status, const std::string& result,
                        std::uint32_t count, std::uint32_t n_policy, FileTime t);
    /// Where the writes of a batch about to start will go: the first transaction of its ticket.
    std::uint64_t batch_mark();
    /// Ends a batch that began at `mark`: writes the pending statistics into the open transaction (a
    /// failure there is returned in `stats_error`, not in the ticket: statistics never hold answers
    /// back) and commits it; with SyncMode::Full the sync thread is woken. The ticket says when the
    /// batch's answers may leave (outcome()).
    BatchTicket end_batch(std::uint64_t mark, std::string& stats_error);
    /// Durable once every transaction of the ticket is committed (and with SyncMode::Full covered by a
    /// successful fdatasync); Lost when one was rolled back, failed to commit or to sync, or the file
    /// was lost.
    BatchOutcome outcome(const BatchTicket& ticket);
    /// Blocks until the ticket is Durable or Lost; "" or why it is lost.
    std::string wait(const BatchTicket& ticket);
    /// Called (from the sync thread, with the store's lock held: it must only wake someone up) after
    /// each sync, when tickets may have become Durable or Lost. nullptr to stop.
    void on_synced(std::function<void()> f);
    /// Transactions committed with at least one CMID or statistic in them (tests: one per batch).
    std::uint64_t commits();
    /// Writes the pending statistics; "" or the error.
    std::string flush();
    /// Statistics per KMS ID, license status and result.
    std::vector<RequestStat> request_stats();
    /// Current counts per KMS ID as of `now`.
    std::vector<CountRow> counts(FileTime now);
    /// The first of the tables serve creates that the database lacks, or "" when it has them all.
    std::string missing_tables();
    /// Every (KMS ID, CMID) pair in the table.
    std::vector<std::pair<std::string, std::string>> cmids();
    /// Where errors and recoveries are reported (the server's log); called with the store's lock held.
    void on_event(std::function<void(const std::string&)> f) { event_ = std::move(f); }
    /// Checks that the path still names the open database, and recovers if it does not (see .cpp).
    /// Called by the store itself, when no transaction is open: before a batch's transaction every
    /// kCheckEvery writes or every second, and after a failed write or commit.
    void check_path();
    /// The WAL's size limit after a checkpoint (PRAGMA journal_size_limit).
    static constexpr std::int64_t kWalSizeLimit = 16 << 20;
    /// WAL frames (pages) after which the checkpointer is woken, and after which the committing
    /// connection checkpoints itself (the checkpointer fell behind): the WAL stays under 64 MiB.
    static constexpr int kCheckpointFrames = 4096;
    static constexpr int kForceCheckpointFrames = 12000;
    /// How long a write waits for another process's lock before the request is refused.
    static constexpr int kBusyTimeoutMs = 2000;
    /// Distinct statistics rows kept in memory while they cannot be written.
    static constexpr std::size_t kMaxPendingStats = 4096;
    /// Writes between two checks of the path (besides the check at most every second).
    static constexpr unsigned kCheckEvery = 256;

private:
    void open_db();
    void close_db();
    void start_checkpointer();
    void stop_checkpointer();
    static int on_wal(void* self, sqlite3* db, const char* name, int frames);
    void exec(const char* sql);
    sqlite3_stmt* prepare(const char* sql);
    void begin();
    void commit();
    void rollback() noexcept;
    void step(sqlite3_stmt* s, const char* what);
    /// Opens the batch's transaction if none is open.
    void open_batch();
    /// Commits the open batch transaction; on failure it is rolled back and marked lost.
    bool commit_batch();
    /// After a failed write in the open transaction: undoes that request only, or, when SQLite rolled
    /// the whole transaction back, marks it lost.
    void undo_request(const std::string& why);
    void end_batch_locked(std::string& stats_error);
    void write_stats();
    /// Writes of transactions first..last are not durable: their tickets are Lost.
    void lose(std::uint64_t first, std::uint64_t last, const std::string& why);
    void start_syncer();
    void stop_syncer();
    void sync_loop();
    [[noreturn]] void fail(const std::string& what);
    void maybe_check_path();
    /// `moved_to`: the file's new name when it was renamed rather than deleted.
    bool recover(const std::string& why, const std::string& moved_to);
    void event(const std::string& line);

    std::string path_;
    SyncMode sync_;
    bool read_only_;
    std::mutex mu_;
    sqlite3* db_ = nullptr;
    sqlite3_stmt* touch_ = nullptr;
    sqlite3_stmt* count_ = nullptr;
    sqlite3_stmt* bounded_count_ = nullptr;
    sqlite3_stmt* stat_ = nullptr;
    sqlite3_stmt* last_ = nullptr;
    sqlite3_stmt* begin_ = nullptr;
    sqlite3_stmt* commit_ = nullptr;
    sqlite3_stmt* rollback_ = nullptr;
    sqlite3_stmt* savepoint_ = nullptr;
    sqlite3_stmt* release_ = nullptr;
    sqlite3_stmt* rollback_to_ = nullptr;
    dev_t dev_ = 0;
    ino_t ino_ = 0;
    unsigned writes_ = 0;
    std::int64_t last_check_ns_ = 0;
    std::string lost_;  // why the store refuses every write until a restart ("" when healthy)
    // Transactions are numbered from 1 in the order they begin. open_ is the one open (0: none);
    // every transaction up to committed_ has ended (committed or lost); with SyncMode::Full, every
    // commit up to synced_ was covered by a sync (or its loss recorded).
    std::uint64_t next_ = 1, open_ = 0, committed_ = 0, synced_ = 0, commits_ = 0;
    bool check_after_batch_ = false;  // a write failed inside the open transaction: check the path
    struct Loss {
        std::uint64_t first, last;
        std::string why;
    };
    std::deque<Loss> losses_;  // the latest kMaxLosses
    static constexpr std::size_t kMaxLosses = 256;
    int wal_fd_ = -1;  // the WAL, for the sync thread (fdatasync syncs the file, whichever descriptor)
    std::thread syncer_;
    std::condition_variable sync_cv_;  // with mu_: a commit to sync, a sync done, or stop
    bool sync_stop_ = false;
    std::function<void()> notify_synced_;
    struct Last {
        std::uint32_t count, n_policy;
        std::int64_t time;
    };
    std::map<std::tuple<std::string, std::uint32_t, std::string>, std::uint64_t> pending_stats_;
    std::map<std::string, Last> pending_last_;
    std::string flush_locked();
    BatchOutcome outcome_locked(const BatchTicket& ticket) const;
    std::function<void(const std::string&)> event_;
    // Checkpoints run on a thread with its own connection, so that copying pages into the database
    // file (and its fsync) does not stall the event loop; the committing connection only wakes it.
    std::thread checkpointer_;
    std::mutex ck_mu_;
    std::condition_variable ck_cv_;
    bool ck_wanted_ = false, ck_stop_ = false;
};

}  // namespace kmscope::replay
