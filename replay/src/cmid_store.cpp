#include "cmid_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

namespace kmscope::replay {

namespace {
/// A statement prepared for one use.
struct Stmt {
    sqlite3_stmt* s;
    ~Stmt() { sqlite3_finalize(s); }
};
/// A persistent statement in use: reset (and unbound) when the scope ends, whatever happened. A
/// statement left on a returned row keeps its read transaction open: checkpoints cannot complete.
struct Use {
    sqlite3_stmt* s;
    ~Use() {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    }
};
std::int64_t ticks(FileTime t) {
    return static_cast<std::int64_t>(t.ticks);
}
std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}
void fsync_dir_of(const std::string& path) {
    auto slash = path.rfind('/');
    std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        ::close(fd);
    }
}
/// Where the file with this device and inode is now, as this process sees it through SQLite's own open
/// descriptor: "" when it has no name left (deleted, or no descriptor found). The descriptor is only
/// looked at through /proc, never opened: closing any descriptor of the database file would drop
/// SQLite's POSIX locks on it.
std::string open_file_name(dev_t dev, ino_t ino) {
    DIR* d = ::opendir("/proc/self/fd");
    if (!d) return "";
    std::string name;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        std::string link = std::string("/proc/self/fd/") + e->d_name;
        struct stat st {};
        if (::stat(link.c_str(), &st) != 0 || st.st_dev != dev || st.st_ino != ino) continue;
        if (st.st_nlink == 0) break;  // deleted: no name left
        char buf[4096];
        ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
        if (n > 0) name.assign(buf, static_cast<std::size_t>(n));
        break;
    }
    ::closedir(d);
    return name;
}

/// Asks a thread that waits on `cv` for `stop` to end, and joins it.
void stop_thread(std::thread& t, std::mutex& mu, std::condition_variable& cv, bool& stop) {
    if (!t.joinable()) return;
    {
        std::lock_guard lock(mu);
        stop = true;
        cv.notify_all();
    }
    t.join();
}

}  // namespace

SqliteCmidStore::SqliteCmidStore(const std::string& path, SyncMode sync, bool read_only)
    : path_(path), sync_(sync), read_only_(read_only) {
    open_db();
}

void SqliteCmidStore::open_db() {
    int flags = read_only_ ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    if (sqlite3_open_v2(path_.c_str(), &db_, flags | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
        std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
        sqlite3_close(db_);
        db_ = nullptr;
        throw std::runtime_error(path_ + ": " + msg);
    }
    // Transient locks (a backup, an operator's sqlite3 shell) are waited for; a lock held longer
    // refuses the request with an error answer rather than stalling the event loop for long.
    sqlite3_busy_timeout(db_, kBusyTimeoutMs);
    if (read_only_) return;
    exec("PRAGMA journal_mode=WAL");
    // NORMAL: a commit is a write() to the WAL, durable against a crash of the process. With
    // SyncMode::Full the server calls sync() (one fdatasync of the WAL) before it sends the answers of
    // a batch: the durability of synchronous=FULL at one fsync per batch instead of one per commit.
    exec("PRAGMA synchronous=NORMAL");
    // Checkpoints every 16 MiB of WAL (fewer, larger ones: each syncs the database file), and the WAL
    // is cut back to kWalSizeLimit after each. The page cache holds the table's hot pages: CMIDs are
    // random keys, so a table larger than the cache makes every insert a read.
    exec("PRAGMA wal_autocheckpoint=0");  // on_wal decides
    exec("PRAGMA cache_size=-65536");
    exec(("PRAGMA journal_size_limit=" + std::to_string(kWalSizeLimit)).c_str());
    exec(
        "CREATE TABLE IF NOT EXISTS cmids(kms_id TEXT NOT NULL, cmid TEXT NOT NULL, last_seen INTEGER NOT NULL,"
        " PRIMARY KEY(kms_id, cmid)) WITHOUT ROWID");
    exec("CREATE INDEX IF NOT EXISTS cmids_by_time ON cmids(kms_id, last_seen)");
    exec(
        "CREATE TABLE IF NOT EXISTS requests(kms_id TEXT NOT NULL, license_status INTEGER NOT NULL,"
        " result TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY(kms_id, license_status, result)) WITHOUT ROWID");
    exec(
        "CREATE TABLE IF NOT EXISTS last_count(kms_id TEXT PRIMARY KEY, count INTEGER NOT NULL,"
        " n_policy INTEGER NOT NULL, time INTEGER NOT NULL)");
    touch_ = prepare(
        "INSERT INTO cmids(kms_id, cmid, last_seen) VALUES(?1, ?2, ?3) ON CONFLICT(kms_id, cmid)"
        " DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)");
    count_ = prepare("SELECT count(*) FROM cmids WHERE kms_id = ?1 AND last_seen >= ?2");
    // The cmids_by_time index range, stopped after `limit` rows: the cost is the cap, not the table.
    bounded_count_ = prepare(
        "SELECT count(*) FROM (SELECT 1 FROM cmids INDEXED BY cmids_by_time WHERE kms_id = ?1 AND last_seen >= ?2"
        " LIMIT ?3)");
    stat_ = prepare(
        "INSERT INTO requests(kms_id, license_status, result, n) VALUES(?1, ?2, ?3, ?4)"
        " ON CONFLICT(kms_id, license_status, result) DO UPDATE SET n = n + excluded.n");
    last_ = prepare(
        "INSERT INTO last_count(kms_id, count, n_policy, time) VALUES(?1, ?2, ?3, ?4) ON CONFLICT(kms_id)"
        " DO UPDATE SET count = excluded.count, n_policy = excluded.n_policy, time = excluded.time");
    begin_ = prepare("BEGIN IMMEDIATE");
    commit_ = prepare("COMMIT");
    rollback_ = prepare("ROLLBACK");
    savepoint_ = prepare("SAVEPOINT request");
    release_ = prepare("RELEASE request");
    rollback_to_ = prepare("ROLLBACK TO request");
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0)
        throw std::runtime_error(path_ + ": " + std::strerror(errno) + " right after opening it");
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    last_check_ns_ = now_ns();
    sqlite3_wal_hook(db_, &SqliteCmidStore::on_wal, this);
    start_checkpointer();
    if (sync_ == SyncMode::Full) start_syncer();
}

int SqliteCmidStore::on_wal(void* self, sqlite3* db, const char*, int frames) {
    auto* store = static_cast<SqliteCmidStore*>(self);
    if (frames >= kForceCheckpointFrames) {
        sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    } else if (frames >= kCheckpointFrames) {
        std::lock_guard lock(store->ck_mu_);
        store->ck_wanted_ = true;
        store->ck_cv_.notify_one();
    }
    return SQLITE_OK;
}

void SqliteCmidStore::start_checkpointer() {
    sqlite3* ck = nullptr;
    if (sqlite3_open_v2(path_.c_str(), &ck, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
        sqlite3_close(ck);
        return;  // the committing connection checkpoints at kForceCheckpointFrames
    }
    sqlite3_busy_timeout(ck, 100);
    ck_stop_ = ck_wanted_ = false;
    checkpointer_ = std::thread([this, ck] {
        std::unique_lock lock(ck_mu_);
        while (!ck_stop_) {
            ck_cv_.wait(lock, [this] { return ck_wanted_ || ck_stop_; });
            if (ck_stop_) break;
            ck_wanted_ = false;
            lock.unlock();
            // PASSIVE: copies what no reader still needs, never waits for the writers.
            sqlite3_wal_checkpoint_v2(ck, "main", SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
            lock.lock();
        }
        lock.unlock();
        sqlite3_close(ck);
    });
}

void SqliteCmidStore::stop_checkpointer() {
    stop_thread(checkpointer_, ck_mu_, ck_cv_, ck_stop_);
}

void SqliteCmidStore::start_syncer() {
    if (syncer_.joinable()) return;  // open_db() again after a recovery: the thread carries on
    sync_stop_ = false;
    syncer_ = std::thread([this] { sync_loop(); });
}

void SqliteCmidStore::stop_syncer() {
    stop_thread(syncer_, mu_, sync_cv_, sync_stop_);
}

// One fdatasync of the WAL covers every commit written before it began (group commit); it runs here,
// without the store's lock, so that the event loop collects and commits the next batch meanwhile. The
// descriptor is a dup of ours: close_db() may close the original while a sync runs.
void SqliteCmidStore::sync_loop() {
    std::unique_lock lock(mu_);
    while (true) {
        sync_cv_.wait(lock, [this] { return sync_stop_ || committed_ > synced_; });
        if (sync_stop_) return;
        const std::uint64_t target = committed_;
        int fd = wal_fd_ >= 0 ? ::fcntl(wal_fd_, F_DUPFD_CLOEXEC, 0) : -1;
        lock.unlock();
        std::string err;
        if (fd < 0) {
            err = "no WAL file to sync";
        } else {
            int rc;
            do rc = ::fdatasync(fd);
            while (rc != 0 && errno == EINTR);
            if (rc != 0) err = std::strerror(errno);
            ::close(fd);
        }
        lock.lock();
        // fsyncgate: after a failed fdatasync the kernel may have dropped the dirty pages, so a later
        // successful sync proves nothing about these commits. They are lost for good.
        if (!err.empty() && target > synced_) lose(synced_ + 1, target, "sqlite: sync of the WAL failed: " + err);
        synced_ = std::max(synced_, target);
        sync_cv_.notify_all();  // wait()
        if (notify_synced_) notify_synced_();
    }
}

void SqliteCmidStore::close_db() {
    stop_checkpointer();  // first: the last connection to close checkpoints and removes the WAL
    if (wal_fd_ >= 0) ::close(wal_fd_);
    wal_fd_ = -1;
    for (auto** s : {&touch_, &count_, &bounded_count_, &stat_, &last_, &begin_, &commit_, &rollback_, &savepoint_,
                     &release_, &rollback_to_}) {
        sqlite3_finalize(*s);
        *s = nullptr;
    }
    sqlite3_close(db_);
    db_ = nullptr;
}

SqliteCmidStore::~SqliteCmidStore() {
    stop_syncer();
    if (db_ && !read_only_) {
        std::lock_guard lock(mu_);
        std::string ignored;
        end_batch_locked(ignored);  // a batch nobody ended (tests): its writes are kept
    }
    close_db();
}

void SqliteCmidStore::event(const std::string& line) {
    if (event_) event_(line);
}

void SqliteCmidStore::fail(const std::string& what) {
    throw std::runtime_error("sqlite: " + what + ": " + sqlite3_errmsg(db_));
}

void SqliteCmidStore::exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
        std::string msg = err ? err : "error";
        sqlite3_free(err);
        throw std::runtime_error(std::string("sqlite: ") + sql + ": " + msg);
    }
}

sqlite3_stmt* SqliteCmidStore::prepare(const char* sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK) fail(sql);
    return s;
}

void SqliteCmidStore::begin() {
    Use u{begin_};
    if (sqlite3_step(begin_) != SQLITE_DONE) fail("begin");
}

void SqliteCmidStore::commit() {
    Use u{commit_};
    if (sqlite3_step(commit_) != SQLITE_DONE) fail("commit");
}

void SqliteCmidStore::rollback() noexcept {
    if (sqlite3_get_autocommit(db_)) return;  // no transaction open (or SQLite rolled it back)
    Use u{rollback_};
    sqlite3_step(rollback_);
}

void SqliteCmidStore::step(sqlite3_stmt* s, const char* what) {
    Use u{s};
    if (sqlite3_step(s) != SQLITE_DONE) fail(what);
}

void SqliteCmidStore::open_batch() {
    if (open_) return;
    if (lost_.empty()) maybe_check_path();
    if (!lost_.empty()) throw StoreUnavailable(lost_);
    try {
        begin();
    } catch (const std::exception& e) {
        rollback();
        check_path();
        throw StoreUnavailable(e.what());
    }
    open_ = next_++;
}

bool SqliteCmidStore::commit_batch() {
    const std::uint64_t seq = open_;
    open_ = 0;
    bool ok = true;
    try {
        commit();
        ++commits_;
    } catch (const std::exception& e) {
        rollback();
        lose(seq, seq, e.what());
        check_after_batch_ = true;
        ok = false;
    }
    committed_ = seq;
    if (wal_fd_ < 0 && sync_ == SyncMode::Full && db_) {
        // The WAL exists once something was committed. Its directory entry is synced once, as SQLite
        // does at the first sync of a new journal.
        wal_fd_ = ::open((path_ + "-wal").c_str(), O_RDONLY | O_CLOEXEC);
        if (wal_fd_ >= 0) fsync_dir_of(path_);
    }
    if (check_after_batch_) {
        check_after_batch_ = false;
        check_path();
    }
    sync_cv_.notify_all();
    return ok;
}

void SqliteCmidStore::undo_request(const std::string& why) {
    if (!sqlite3_get_autocommit(db_)) {
        // Only this request is undone; the batch's earlier writes stay in the transaction.
        Use u{rollback_to_};
        Use r{release_};
        if (sqlite3_step(rollback_to_) != SQLITE_DONE || sqlite3_step(release_) != SQLITE_DONE) rollback();
    }
    if (sqlite3_get_autocommit(db_)) {
        // SQLite rolled the whole transaction back (a full disk, an I/O error): every answer that
        // counted on it is lost.
        lose(open_, open_, why);
        committed_ = open_;
        open_ = 0;
        check_path();
        sync_cv_.notify_all();
    } else {
        check_after_batch_ = true;
    }
}

void SqliteCmidStore::lose(std::uint64_t first, std::uint64_t last, const std::string& why) {
    losses_.push_back({first, last, why});
    if (losses_.size() > kMaxLosses) losses_.pop_front();
}

void SqliteCmidStore::maybe_check_path() {
    if (writes_ >= kCheckEvery || now_ns() - last_check_ns_ > 1'000'000'000) check_path();
}

void SqliteCmidStore::check_path() {
    if (read_only_ || !lost_.empty() || !db_) return;
    last_check_ns_ = now_ns();
    writes_ = 0;
    struct stat st {};
    int rc = ::stat(path_.c_str(), &st);
    if (rc == 0 && st.st_dev == dev_ && st.st_ino == ino_) return;
    bool gone = rc != 0 && errno == ENOENT;
    // Gone from the path: deleted, or renamed (moved) to another name, where the open file still is.
    std::string moved_to = gone ? open_file_name(dev_, ino_) : "";
    std::string why = !gone              ? "was replaced by another file while serving"
                      : moved_to.empty() ? "was deleted while serving"
                                         : "was renamed to " + moved_to + " while serving";
    event("error: database " + path_ + " " + why + "; no request is acknowledged until it is recovered");
    if (!gone) {
        lost_ = "database " + path_ + " " + why + "; restart the server after checking the file";
        event("error: " + lost_ + " (the file there is left alone; the open database keeps every row)");
        return;
    }
    // Every commit so far is in the recovered copy (the backup API copies what the open connection
    // sees, and the copy is synced), or, when recovery failed, may be nowhere safe.
    if (recover(why, moved_to)) {
        synced_ = std::max(synced_, committed_);
    } else if (committed_ > synced_) {
        lose(synced_ + 1, committed_, lost_);
        synced_ = committed_;
    }
    sync_cv_.notify_all();
}

// The open connection still reads the unlinked file (and its WAL): every acknowledged row is there.
// It is copied with the backup API into a new file, which is renamed to the path only if nothing has
// taken the name meanwhile; then the server continues on the new file. On any failure the store
// refuses every write (an error answer to the client) until an operator restarts it.
bool SqliteCmidStore::recover(const std::string& why, const std::string& moved_to) {
    std::string tmp = path_ + ".recovered-" + std::to_string(getpid());
    std::remove(tmp.c_str());
    sqlite3* dst = nullptr;
    std::string err;
    if (sqlite3_open_v2(tmp.c_str(), &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
        err = dst ? sqlite3_errmsg(dst) : "out of memory";
    } else if (sqlite3_backup* b = sqlite3_backup_init(dst, "main", db_, "main"); !b) {
        err = sqlite3_errmsg(dst);
    } else {
        int rc = sqlite3_backup_step(b, -1);
        sqlite3_backup_finish(b);
        if (rc != SQLITE_DONE) err = sqlite3_errstr(rc);
    }
    if (sqlite3_close(dst) != SQLITE_OK && err.empty()) err = "close failed";
    if (!err.empty()) {
        std::remove(tmp.c_str());
        lost_ = "database " + path_ + " " + why + " and could not be copied (" + err + ")";
        event("error: " + lost_ + "; refusing requests; the open database keeps every row until the server stops");
        return false;
    }
    fsync_dir_of(tmp);
    // The copy holds every row: the old connection can go (it checkpoints into the unlinked file and
    // removes the WAL at PATH-wal, which belongs to it).
    close_db();
    std::string wal = path_ + "-wal";
    if (!moved_to.empty() && ::access(wal.c_str(), F_OK) == 0 && ::access((moved_to + "-wal").c_str(), F_OK) != 0) {
        // SQLite does not checkpoint into a moved file (SQLITE_READONLY_DBMOVED): its latest rows are
        // still in PATH-wal. The WAL goes along with the file, so the renamed file stays whole.
        if (std::rename(wal.c_str(), (moved_to + "-wal").c_str()) == 0) {
            std::remove((path_ + "-shm").c_str());
            event("warning: moved the renamed database's WAL along to " + moved_to + "-wal");
        }
    }
    if (::access(wal.c_str(), F_OK) == 0) {
        // Another process still holds the old WAL open: never let the new file read it.
        std::string aside = wal + ".stale-" + std::to_string(getpid());
        std::rename(wal.c_str(), aside.c_str());
        event("warning: moved the old database's WAL aside to " + aside);
    }
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path_.c_str(), RENAME_NOREPLACE) != 0) {
        lost_ = "database " + path_ + " " + why + "; its rows were copied to " + tmp +
                " but it could not be put back (" + std::strerror(errno) + ")";
        event("error: " + lost_ + "; refusing requests until an operator restores it and restarts the server");
        return false;
    }
    fsync_dir_of(path_);
    try {
        open_db();
    } catch (const std::exception& e) {
        lost_ = "database " + path_ + " recreated but not reopened: " + e.what();
        event("error: " + lost_ + "; refusing requests until the server is restarted");
        if (db_) close_db();
        return false;
    }
    event("error: database " + path_ + " " + why + "; recreated it at the same path from the open copy (" +
          "every row kept); serving again");
    return true;
}

std::uint64_t SqliteCmidStore::touch_and_count(const Guid& kms_id, const Guid& cmid, FileTime t, FileTime since,
                                               std::uint64_t limit) {
    std::lock_guard lock(mu_);
    open_batch();
    auto k = kms_id.to_string(), c = cmid.to_string();
    std::uint64_t n = 0;
    try {
        step(savepoint_, "savepoint");
        {
            Use u{touch_};
            sqlite3_bind_text(touch_, 1, k.c_str(), -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(touch_, 2, c.c_str(), -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(touch_, 3, ticks(t));
            if (sqlite3_step(touch_) != SQLITE_DONE) fail("record the CMID");
        }
        {
            Use u{bounded_count_};
            sqlite3_bind_text(bounded_count_, 1, k.c_str(), -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(bounded_count_, 2, ticks(since));
            sqlite3_bind_int64(bounded_count_, 3, static_cast<std::int64_t>(std::min<std::uint64_t>(limit, INT64_MAX)));
            if (sqlite3_step(bounded_count_) != SQLITE_ROW) fail("count");
            n = static_cast<std::uint64_t>(sqlite3_column_int64(bounded_count_, 0));
        }
        step(release_, "release");
    } catch (const std::exception& e) {
        undo_request(e.what());
        throw StoreUnavailable(e.what());
    }
    ++writes_;
    return n;
}

std::uint64_t SqliteCmidStore::batch_mark() {
    std::lock_guard lock(mu_);
    return open_ ? open_ : next_;
}

BatchTicket SqliteCmidStore::end_batch(std::uint64_t mark, std::string& stats_error) {
    std::lock_guard lock(mu_);
    end_batch_locked(stats_error);
    return BatchTicket{mark, next_ - 1};
}

void SqliteCmidStore::end_batch_locked(std::string& stats_error) {
    stats_error.clear();
    if (!open_) {
        stats_error = flush_locked();  // statistics alone (fixed counts): their own transaction
        return;
    }
    bool stats_in = false;
    if (!pending_stats_.empty() || !pending_last_.empty()) {
        try {
            step(savepoint_, "savepoint");
            write_stats();
            step(release_, "release");
            stats_in = true;
        } catch (const std::exception& e) {
            stats_error = e.what();  // kept for the next batch
            undo_request(e.what());
            if (!open_) return;
        }
    }
    if (commit_batch() && stats_in) {
        pending_stats_.clear();
        pending_last_.clear();
    }
}

BatchOutcome SqliteCmidStore::outcome(const BatchTicket& ticket) {
    std::lock_guard lock(mu_);
    return outcome_locked(ticket);
}

BatchOutcome SqliteCmidStore::outcome_locked(const BatchTicket& ticket) const {
    for (const auto& loss : losses_)
        if (loss.first <= ticket.last && ticket.first <= loss.last) return {BatchOutcome::Lost, loss.why};
    if (ticket.last < ticket.first) return {BatchOutcome::Durable, ""};  // nothing written
    if (!losses_.empty() && ticket.first < losses_.front().first && losses_.size() == kMaxLosses)
        return {BatchOutcome::Lost, "too many failures to tell whether this batch was saved"};
    if (committed_ < ticket.last || (open_ && open_ <= ticket.last)) return {BatchOutcome::Pending, ""};
    if (sync_ == SyncMode::Full && synced_ < ticket.last) return {BatchOutcome::Pending, ""};
    return {BatchOutcome::Durable, ""};
}

std::string SqliteCmidStore::wait(const BatchTicket& ticket) {
    std::unique_lock lock(mu_);
    BatchOutcome o;
    sync_cv_.wait(lock, [&] { return (o = outcome_locked(ticket)).state != BatchOutcome::Pending; });
    return o.state == BatchOutcome::Lost ? o.why : "";
}

void SqliteCmidStore::on_synced(std::function<void()> f) {
    std::lock_guard lock(mu_);
    notify_synced_ = std::move(f);
}

std::uint64_t SqliteCmidStore::commits() {
    std::lock_guard lock(mu_);
    return commits_;
}

void SqliteCmidStore::touch(const Guid& kms_id, const Guid& cmid, FileTime t) {
    std::lock_guard lock(mu_);
    if (!db_) throw StoreUnavailable(lost_);
    open_batch();  // committed with the batch, as touch_and_count
    auto k = kms_id.to_string(), c = cmid.to_string();
    Use u{touch_};
    sqlite3_bind_text(touch_, 1, k.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(touch_, 2, c.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(touch_, 3, ticks(t));
    if (sqlite3_step(touch_) != SQLITE_DONE) fail("touch");
}

std::string SqliteCmidStore::flush() {
    std::lock_guard lock(mu_);
    return flush_locked();
}

std::uint64_t SqliteCmidStore::count_since(const Guid& kms_id, FileTime since) {
    std::lock_guard lock(mu_);
    if (!db_) throw StoreUnavailable(lost_);
    auto k = kms_id.to_string();
    Use u{count_};
    sqlite3_bind_text(count_, 1, k.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(count_, 2, ticks(since));
    if (sqlite3_step(count_) != SQLITE_ROW) fail("count");
    return static_cast<std::uint64_t>(sqlite3_column_int64(count_, 0));
}

void SqliteCmidStore::expire(FileTime before) {
    std::lock_guard lock(mu_);
    if (!db_) throw StoreUnavailable(lost_);
    Stmt s{prepare("DELETE FROM cmids WHERE last_seen < ?1")};
    sqlite3_bind_int64(s.s, 1, ticks(before));
    if (sqlite3_step(s.s) != SQLITE_DONE) fail("expire");
}

void SqliteCmidStore::record_request(const std::string& kms_id, std::uint32_t license_status, const std::string& result,
                                     std::uint32_t count, std::uint32_t n_policy, FileTime t) {
    std::lock_guard lock(mu_);
    // Bounded while the database refuses writes: clients choose the KMS IDs.
    auto key = std::make_tuple(kms_id, license_status, result);
    if (pending_stats_.size() >= kMaxPendingStats && !pending_stats_.count(key)) return;
    ++pending_stats_[key];
    if (result == "ok") pending_last_[kms_id] = Last{count, n_policy, t.unix_seconds()};
}

std::string SqliteCmidStore::flush_locked() {
    if (pending_stats_.empty() && pending_last_.empty()) return "";
    if (!lost_.empty()) return lost_;
    if (open_) return "a batch is open";  // written when it ends
    // Statistics do not wait for a lock (the answers wait for this flush): retried at the next batch.
    sqlite3_busy_timeout(db_, 0);
    struct Restore {
        sqlite3* db;
        ~Restore() { sqlite3_busy_timeout(db, kBusyTimeoutMs); }
    } restore{db_};
    try {
        begin();
        write_stats();
        commit();
    } catch (const std::exception& e) {
        rollback();
        // Kept for the next batch: a transient lock or a full disk loses no statistics.
        return e.what();
    }
    pending_stats_.clear();
    pending_last_.clear();
    return "";
}

void SqliteCmidStore::write_stats() {
    for (const auto& [key, n] : pending_stats_) {
        const auto& [kms_id, license_status, result] = key;
        Use u{stat_};
        sqlite3_bind_text(stat_, 1, kms_id.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(stat_, 2, license_status);
        sqlite3_bind_text(stat_, 3, result.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(stat_, 4, static_cast<std::int64_t>(n));
        if (sqlite3_step(stat_) != SQLITE_DONE) fail("record the request statistics");
    }
    for (const auto& [kms_id, l] : pending_last_) {
        Use u{last_};
        sqlite3_bind_text(last_, 1, kms_id.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(last_, 2, l.count);
        sqlite3_bind_int64(last_, 3, l.n_policy);
        sqlite3_bind_int64(last_, 4, l.time);
        if (sqlite3_step(last_) != SQLITE_DONE) fail("record the last count");
    }
}

std::vector<RequestStat> SqliteCmidStore::request_stats() {
    std::lock_guard lock(mu_);
    std::vector<RequestStat> out;
    Stmt s{prepare("SELECT kms_id, license_status, result, n FROM requests ORDER BY kms_id, license_status, result")};
    while (sqlite3_step(s.s) == SQLITE_ROW) {
        out.push_back({reinterpret_cast<const char*>(sqlite3_column_text(s.s, 0)),
                       static_cast<std::uint32_t>(sqlite3_column_int64(s.s, 1)),
                       reinterpret_cast<const char*>(sqlite3_column_text(s.s, 2)),
                       static_cast<std::uint64_t>(sqlite3_column_int64(s.s, 3))});
    }
    return out;
}

std::vector<CountRow> SqliteCmidStore::counts(FileTime now) {
    std::lock_guard lock(mu_);
    std::vector<CountRow> out;
    FileTime since{now.ticks > kCmidLifetimeTicks ? now.ticks - kCmidLifetimeTicks : 0};
    Stmt s{
        prepare("SELECT k.kms_id, (SELECT count(*) FROM cmids c WHERE c.kms_id = k.kms_id AND c.last_seen >= ?1),"
                " coalesce(l.count, 0), coalesce(l.n_policy, 0), coalesce(l.time, 0)"
                " FROM (SELECT DISTINCT kms_id FROM cmids UNION SELECT kms_id FROM last_count) k"
                " LEFT JOIN last_count l ON l.kms_id = k.kms_id ORDER BY k.kms_id")};
    sqlite3_bind_int64(s.s, 1, ticks(since));
    while (sqlite3_step(s.s) == SQLITE_ROW) {
        out.push_back({reinterpret_cast<const char*>(sqlite3_column_text(s.s, 0)),
                       static_cast<std::uint64_t>(sqlite3_column_int64(s.s, 1)),
                       static_cast<std::uint32_t>(sqlite3_column_int64(s.s, 2)),
                       static_cast<std::uint32_t>(sqlite3_column_int64(s.s, 3)), sqlite3_column_int64(s.s, 4)});
    }
    return out;
}

std::string SqliteCmidStore::missing_tables() {
    std::lock_guard lock(mu_);
    for (const char* table : {"cmids", "requests", "last_count"}) {
        Stmt s{prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")};
        sqlite3_bind_text(s.s, 1, table, -1, SQLITE_STATIC);
        int rc = sqlite3_step(s.s);
        if (rc == SQLITE_DONE) return table;
        if (rc != SQLITE_ROW) fail("schema");
    }
    return "";
}

std::vector<std::pair<std::string, std::string>> SqliteCmidStore::cmids() {
    std::lock_guard lock(mu_);
    std::vector<std::pair<std::string, std::string>> out;
    Stmt s{prepare("SELECT kms_id, cmid FROM cmids ORDER BY kms_id, cmid")};
    while (sqlite3_step(s.s) == SQLITE_ROW)
        out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(s.s, 0)),
                         reinterpret_cast<const char*>(sqlite3_column_text(s.s, 1)));
    return out;
}

}  // namespace kmscope::replay
