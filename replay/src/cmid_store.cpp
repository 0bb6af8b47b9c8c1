#include "cmid_store.hpp"

#include <stdexcept>

namespace kmscope::replay {

namespace {
struct Stmt {
    sqlite3_stmt* s;
    ~Stmt() { sqlite3_finalize(s); }
};
std::int64_t ticks(FileTime t) {
    return static_cast<std::int64_t>(t.ticks);
}
}  // namespace

SqliteCmidStore::SqliteCmidStore(const std::string& path, SyncMode sync, bool read_only) {
    int flags = read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    if (sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
        std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
        sqlite3_close(db_);
        db_ = nullptr;
        throw std::runtime_error(path + ": " + msg);
    }
    sqlite3_busy_timeout(db_, 5000);
    if (read_only) return;
    exec("PRAGMA journal_mode=WAL");
    exec(sync == SyncMode::Full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
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
    stat_ = prepare(
        "INSERT INTO requests(kms_id, license_status, result, n) VALUES(?1, ?2, ?3, 1)"
        " ON CONFLICT(kms_id, license_status, result) DO UPDATE SET n = n + 1");
    last_ = prepare(
        "INSERT INTO last_count(kms_id, count, n_policy, time) VALUES(?1, ?2, ?3, ?4) ON CONFLICT(kms_id)"
        " DO UPDATE SET count = excluded.count, n_policy = excluded.n_policy, time = excluded.time");
}

SqliteCmidStore::~SqliteCmidStore() {
    for (auto* s : {touch_, count_, stat_, last_}) sqlite3_finalize(s);
    sqlite3_close(db_);
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

void SqliteCmidStore::touch(const Guid& kms_id, const Guid& cmid, FileTime t) {
    std::lock_guard lock(mu_);
    auto k = kms_id.to_string(), c = cmid.to_string();
    sqlite3_reset(touch_);
    sqlite3_bind_text(touch_, 1, k.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(touch_, 2, c.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(touch_, 3, ticks(t));
    // Autocommit: the entry is durable when step returns, before the response is sent.
    if (sqlite3_step(touch_) != SQLITE_DONE) fail("touch");
}

std::uint64_t SqliteCmidStore::count_since(const Guid& kms_id, FileTime since) {
    std::lock_guard lock(mu_);
    auto k = kms_id.to_string();
    sqlite3_reset(count_);
    sqlite3_bind_text(count_, 1, k.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(count_, 2, ticks(since));
    if (sqlite3_step(count_) != SQLITE_ROW) fail("count");
    return static_cast<std::uint64_t>(sqlite3_column_int64(count_, 0));
}

void SqliteCmidStore::expire(FileTime before) {
    std::lock_guard lock(mu_);
    Stmt s{prepare("DELETE FROM cmids WHERE last_seen < ?1")};
    sqlite3_bind_int64(s.s, 1, ticks(before));
    if (sqlite3_step(s.s) != SQLITE_DONE) fail("expire");
}

void SqliteCmidStore::record_request(const std::string& kms_id, std::uint32_t license_status, const std::string& result,
                                     std::uint32_t count, std::uint32_t n_policy, FileTime t) {
    std::lock_guard lock(mu_);
    exec("BEGIN");
    sqlite3_reset(stat_);
    sqlite3_bind_text(stat_, 1, kms_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(stat_, 2, license_status);
    sqlite3_bind_text(stat_, 3, result.c_str(), -1, SQLITE_TRANSIENT);
    bool ok = sqlite3_step(stat_) == SQLITE_DONE;
    if (ok && result == "ok") {
        sqlite3_reset(last_);
        sqlite3_bind_text(last_, 1, kms_id.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(last_, 2, count);
        sqlite3_bind_int64(last_, 3, n_policy);
        sqlite3_bind_int64(last_, 4, t.unix_seconds());
        ok = sqlite3_step(last_) == SQLITE_DONE;
    }
    if (!ok) {
        std::string msg = sqlite3_errmsg(db_);
        exec("ROLLBACK");
        throw std::runtime_error("sqlite: record_request: " + msg);
    }
    exec("COMMIT");
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
                " FROM (SELECT kms_id FROM cmids UNION SELECT kms_id FROM last_count) k"
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
