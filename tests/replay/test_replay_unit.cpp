// Unit tests of kms-replay's own code (no sockets): addresses and CIDR allow-lists, the INI loader and
// option validation, the SQLite CMID store behind the core's GenuineCountPolicy, and the activation
// log's line formats.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "activation_log.hpp"
#include "cmid_store.hpp"
#include "identity.hpp"
#include "kmscope/conversation.hpp"
#include "kmscope/counting.hpp"
#include "kmscope/fingerprint.hpp"
#include "kmscope/server.hpp"
#include "options.hpp"
#include "recorded.hpp"
#include "util.hpp"

namespace kmscope::replay {
namespace {

std::string temp_path(const std::string& name) {
    auto dir = std::filesystem::temp_directory_path() / ("kms-replay-unit-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    return (dir / name).string();
}

TEST(ReplayAddress, ParsesListenForms) {
    std::string err;
    EXPECT_EQ(parse_listen("127.0.0.1:1688", 1, err)->to_string(), "127.0.0.1:1688");
    EXPECT_EQ(parse_listen("[::1]:31688", 1, err)->to_string(), "[::1]:31688");
    EXPECT_EQ(parse_listen("[::]", 1688, err)->to_string(), "[::]:1688");
    EXPECT_EQ(parse_listen("10.1.2.3", 1688, err)->to_string(), "10.1.2.3:1688");
    EXPECT_EQ(parse_listen("::1", 1688, err)->to_string(), "[::1]:1688");
    EXPECT_EQ(parse_listen("0", 1688, err)->to_string(), "[::]:0");
    EXPECT_FALSE(parse_listen("localhost:1688", 1, err));
    EXPECT_FALSE(parse_listen("1.2.3.4:70000", 1, err));
    EXPECT_FALSE(parse_listen("[::1:1688", 1, err));
    EXPECT_FALSE(parse_listen("1.2.3.4:x", 1, err));
}

TEST(ReplayAddress, CidrContains) {
    std::string err;
    auto v4 = *parse_listen("10.20.30.40:1", 1, err);
    auto v6 = *parse_listen("[fd00::5]:1", 1, err);
    auto mapped = *parse_listen("[::ffff:10.20.30.40]:1", 1, err);
    EXPECT_TRUE(Cidr::parse("10.0.0.0/8")->contains(v4));
    EXPECT_TRUE(Cidr::parse("10.20.30.40")->contains(v4));
    EXPECT_TRUE(Cidr::parse("10.20.30.32/27")->contains(v4));
    EXPECT_FALSE(Cidr::parse("10.20.30.0/28")->contains(v4));
    EXPECT_TRUE(Cidr::parse("10.0.0.0/8")->contains(mapped));  // dual-stack sockets see IPv4 as mapped
    EXPECT_FALSE(Cidr::parse("10.0.0.0/8")->contains(v6));
    EXPECT_TRUE(Cidr::parse("fd00::/8")->contains(v6));
    EXPECT_TRUE(Cidr::parse("0.0.0.0/0")->contains(v4));
    EXPECT_FALSE(Cidr::parse("::/0")->contains(v4));
    EXPECT_FALSE(Cidr::parse("10.0.0.0/33"));
    EXPECT_FALSE(Cidr::parse("::/129"));
    EXPECT_FALSE(Cidr::parse("10.0.0.0/"));
    EXPECT_FALSE(Cidr::parse("host.example/8"));
}

TEST(ReplayOptions, IniOverridesDefaults) {
    auto path = temp_path("t.ini");
    std::ofstream(path) << "[server]\nlisten=127.0.0.1:1;[::1]:2\nndr64=false\nhost-build=7601\nidle-timeout=2.5\n"
                           "allow=10.0.0.0/8\ncount-policy=genuine\ndb=/tmp/x.db\n"
                           "[epid]\nWindows=03612-00206-556-123456-03-1033-17763.0000-2772022\n"
                           "[hwid]\nOffice2016=0011223344556677\n";
    ServeOptions o;
    EXPECT_EQ(load_ini(path, o), "");
    EXPECT_EQ(o.listen, (std::vector<std::string>{"127.0.0.1:1", "[::1]:2"}));
    EXPECT_FALSE(o.ndr64);
    EXPECT_EQ(o.host_build, 7601u);
    EXPECT_DOUBLE_EQ(o.idle_timeout, 2.5);
    EXPECT_EQ(o.epid.at("Windows"), "03612-00206-556-123456-03-1033-17763.0000-2772022");
    EXPECT_EQ(o.family_hwid.at("Office2016"), "0011223344556677");
    EXPECT_TRUE(validate(o).empty());
}

TEST(ReplayOptions, RefusesBadInis) {
    auto path = temp_path("bad.ini");
    for (const char* text : {"[server]\nlcid=70000\n", "[server]\nthreads=0\n", "[server]\nbogus=1\n", "[other]\nx=1\n",
                             "[server]\nndr64=perhaps\n", "not an ini"}) {
        std::ofstream(path) << text;
        ServeOptions o;
        EXPECT_NE(load_ini(path, o), "") << text;
    }
    ServeOptions o;
    EXPECT_NE(load_ini(temp_path("missing.ini"), o), "");
    o.count_policy = "genuine";
    o.log_format = "xml";
    o.hwid = "12";
    o.allow = {"300.0.0.0/8"};
    EXPECT_EQ(validate(o).size(), 4u);  // genuine without db, log format, HwId, CIDR
}

Guid guid(std::uint8_t b) {
    Guid g;
    g.wire.fill(b);
    return g;
}

TEST(ReplayCmidStore, GenuineCountSurvivesReopen) {
    auto path = temp_path("store.db");
    std::filesystem::remove(path);
    const auto t0 = FileTime::from_unix(1800000000);
    kms::BaseRequest req;
    req.kms_id = guid(0xAA);
    req.n_policy = 2;
    {
        SqliteCmidStore store(path);
        GenuineCountPolicy policy(store);
        for (std::uint8_t i = 1; i <= 3; ++i) {
            req.cmid = guid(i);
            EXPECT_EQ(policy.count_for(req, t0), std::min<std::uint32_t>(i, 4));
        }
        req.cmid = guid(1);  // the same machine again counts once
        EXPECT_EQ(policy.count_for(req, t0), 3u);
        store.record_request(req.kms_id.to_string(), 2, "ok", 3, 2, t0);
        store.record_request(req.kms_id.to_string(), 2, "hresult", 0, 2, t0);
    }
    SqliteCmidStore store(path);
    EXPECT_EQ(store.count_since(guid(0xAA), t0), 3u);
    EXPECT_EQ(store.cmids().size(), 3u);
    // Two more machines: capped at 2 x N = 4.
    GenuineCountPolicy policy(store);
    req.cmid = guid(4);
    EXPECT_EQ(policy.count_for(req, t0), 4u);
    req.cmid = guid(5);
    EXPECT_EQ(policy.count_for(req, t0), 4u);
    // 31 days later only the machine seen then counts; expiry removes the old rows.
    const FileTime later{t0.ticks + 31ull * 24 * 3600 * 10000000};
    req.cmid = guid(6);
    EXPECT_EQ(policy.count_for(req, later), 1u);
    store.expire(FileTime{later.ticks - kCmidLifetimeTicks});
    EXPECT_EQ(store.cmids().size(), 1u);
    auto stats = store.request_stats();
    ASSERT_EQ(stats.size(), 2u);
    EXPECT_EQ(stats[0].result, "hresult");
    EXPECT_EQ(stats[1].n, 1u);
    auto counts = store.counts(later);
    ASSERT_EQ(counts.size(), 1u);
    EXPECT_EQ(counts[0].distinct_cmids, 1u);
    EXPECT_EQ(counts[0].last_count, 3u);
    std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

// Issue 11: a statement left on its result row (count_since used to be) holds a read snapshot, so no
// checkpoint can complete and the WAL grows without bound. After every store call, another connection
// can checkpoint the whole WAL and truncate it.
TEST(ReplayCmidStore, NoStatementHoldsASnapshot) {
    auto path = temp_path("snapshot.db");
    std::filesystem::remove(path);
    const auto t0 = FileTime::from_unix(1800000000);
    SqliteCmidStore store(path);
    kms::BaseRequest req;
    req.kms_id = guid(0xAA);
    req.n_policy = 25;
    GenuineCountPolicy policy(store);
    const auto mark = store.batch_mark();
    for (std::uint8_t i = 1; i <= 20; ++i) {
        req.cmid = guid(i);
        EXPECT_EQ(policy.count_for(req, t0), 2u * i - 1);
        store.touch(req.kms_id, guid(static_cast<std::uint8_t>(100 + i)), t0);
        EXPECT_EQ(store.count_since(req.kms_id, t0), 2u * i);
    }
    store.record_request(req.kms_id.to_string(), 2, "ok", 20, 25, t0);
    std::string stats_error;
    EXPECT_EQ(store.wait(store.end_batch(mark, stats_error)), "");
    EXPECT_EQ(stats_error, "");
    sqlite3* other = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &other), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(other, "SELECT count(*) FROM cmids", nullptr, nullptr, nullptr), SQLITE_OK);  // WAL open
    int log = -1, done = -1;
    EXPECT_EQ(sqlite3_wal_checkpoint_v2(other, "main", SQLITE_CHECKPOINT_TRUNCATE, &log, &done), SQLITE_OK)
        << sqlite3_errmsg(other);
    EXPECT_EQ(log, done);  // every frame checkpointed: no reader holds an older snapshot
    sqlite3_close(other);
    EXPECT_EQ(std::filesystem::file_size(path + "-wal"), 0u);
    std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

// Issue 11: genuine mode paid one BEGIN IMMEDIATE ... COMMIT per request. A batch of requests (one round
// of serve's event loop) is one transaction: N requests and their statistics, one commit, and the
// batch's answers may leave once that commit (and with SyncMode::Full its sync) is done.
TEST(ReplayCmidStore, OneCommitPerBatch) {
    for (SyncMode mode : {SyncMode::Normal, SyncMode::Full}) {
        auto path = temp_path("batch.db");
        std::filesystem::remove(path);
        const auto t0 = FileTime::from_unix(1800000000);
        SqliteCmidStore store(path, mode);
        GenuineCountPolicy policy(store);
        kms::BaseRequest req;
        req.kms_id = guid(0xAC);
        req.n_policy = 25;
        for (int batch = 1; batch <= 3; ++batch) {
            const auto commits = store.commits();
            const auto mark = store.batch_mark();
            for (std::uint8_t i = 1; i <= 16; ++i) {
                req.cmid = guid(static_cast<std::uint8_t>(batch * 16 + i));
                // Each request sees the batch's earlier, not yet committed, rows.
                EXPECT_EQ(policy.count_for(req, t0), std::min<std::uint32_t>((batch - 1) * 16 + i, 50));
                store.record_request(req.kms_id.to_string(), 2, "ok", 1, 25, t0);
            }
            EXPECT_EQ(store.commits(), commits) << "nothing committed before the batch ends";
            std::string stats_error;
            auto ticket = store.end_batch(mark, stats_error);
            EXPECT_EQ(stats_error, "");
            EXPECT_EQ(store.commits(), commits + 1) << "one commit for 16 requests and their statistics";
            EXPECT_EQ(store.wait(ticket), "");
            EXPECT_EQ(store.outcome(ticket).state, BatchOutcome::Durable);
        }
        // Committed: another connection sees the rows and the statistics.
        sqlite3* other = nullptr;
        ASSERT_EQ(sqlite3_open(path.c_str(), &other), SQLITE_OK);
        sqlite3_stmt* s = nullptr;
        ASSERT_EQ(sqlite3_prepare_v2(other, "SELECT (SELECT count(*) FROM cmids), (SELECT sum(n) FROM requests)", -1,
                                     &s, nullptr),
                  SQLITE_OK);
        ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
        EXPECT_EQ(sqlite3_column_int(s, 0), 48);
        EXPECT_EQ(sqlite3_column_int(s, 1), 48);
        sqlite3_finalize(s);
        sqlite3_close(other);
        std::filesystem::remove_all(std::filesystem::path(path).parent_path());
    }
}

// A batch that writes nothing waits for nothing; one whose transaction another batch (another worker
// thread) committed is durable with that commit.
TEST(ReplayCmidStore, TicketsOfInterleavedBatches) {
    auto path = temp_path("tickets.db");
    std::filesystem::remove(path);
    const auto t0 = FileTime::from_unix(1800000000);
    SqliteCmidStore store(path, SyncMode::Normal);
    std::string stats_error;
    const auto empty = store.end_batch(store.batch_mark(), stats_error);
    EXPECT_EQ(store.outcome(empty).state, BatchOutcome::Durable);
    const auto a = store.batch_mark();
    store.touch(guid(1), guid(2), t0);
    const auto b = store.batch_mark();
    EXPECT_EQ(a, b) << "both write into the open transaction";
    store.touch(guid(1), guid(3), t0);
    const auto tb = store.end_batch(b, stats_error);  // commits a's write too
    store.touch(guid(1), guid(4), t0);                // a's next write: a new transaction
    EXPECT_EQ(store.outcome(tb).state, BatchOutcome::Durable);
    const auto ta = store.end_batch(a, stats_error);
    EXPECT_EQ(store.outcome(ta).state, BatchOutcome::Durable);
    EXPECT_EQ(store.commits(), 2u);
    EXPECT_EQ(store.count_since(guid(1), t0), 3u);
    std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

// The count of one request reads at most 2 x N index entries, and equals the core's genuine count.
TEST(ReplayCmidStore, BoundedCountEqualsGenuineCount) {
    auto path = temp_path("bounded.db");
    std::filesystem::remove(path);
    const auto t0 = FileTime::from_unix(1800000000);
    SqliteCmidStore store(path);
    MemoryCmidStore memory;
    GenuineCountPolicy sqlite_policy(store);
    GenuineCountPolicy memory_policy(memory);
    kms::BaseRequest req;
    req.kms_id = guid(0xAB);
    for (std::uint32_t i = 0; i < 60; ++i) {
        req.cmid = guid(static_cast<std::uint8_t>(i % 40));  // 40 machines, some seen twice
        req.n_policy = i % 3 == 0 ? 0 : (i % 3 == 1 ? 5 : 25);
        const FileTime t{t0.ticks + i * 10000000ull * 3600 * 24};  // one day apart: the window slides
        EXPECT_EQ(sqlite_policy.count_for(req, t), memory_policy.count_for(req, t)) << "request " << i;
    }
    std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

TEST(ReplayLog, TextAndJsonLines) {
    server::ActivationRecord rec;
    rec.time = FileTime::from_unix(1800000000);
    rec.call_id = 2;
    rec.version = kms::Version{6, 0};
    kms::BaseRequest r;
    r.cmid = guid(0x11);
    r.license_status = 2;
    r.set_workstation("PC-1");
    rec.request = r;
    rec.count = 50;
    rec.epid = "03612-00206-556-123456-03-1033-17763.0000-2772022";
    const auto& products = ProductTable::builtin();
    auto text = ActivationLog::text_line("127.0.0.1:5", rec, products);
    EXPECT_NE(text.find("127.0.0.1:5  call 2  v6.0"), std::string::npos) << text;
    EXPECT_NE(text.find("[PC-1, OOB grace]"), std::string::npos) << text;
    EXPECT_NE(text.find("count 50"), std::string::npos);
    EXPECT_EQ(text.substr(text.size() - 2), "ok");
    auto j = nlohmann::json::parse(ActivationLog::json_line("[::1]:7", rec, products));
    EXPECT_EQ(j["client"], "[::1]:7");
    EXPECT_EQ(j["workstation"], "PC-1");
    EXPECT_EQ(j["result"], "ok");
    EXPECT_EQ(j["count"], 50);
    rec.hresult = 0x8007000D;
    rec.reason = "unsupported KMS protocol version 7.0";
    text = ActivationLog::text_line("127.0.0.1:5", rec, products);
    EXPECT_NE(text.find("HRESULT 0x8007000D ERROR_INVALID_DATA: unsupported"), std::string::npos) << text;
    EXPECT_EQ(nlohmann::json::parse(ActivationLog::json_line("x", rec, products))["result"], "hresult");
}

TEST(ReplayAddress, ResolveListenNamesEveryAddress) {
    std::string err;
    // Numeric forms are unchanged.
    auto num = resolve_listen("127.0.0.1:1688", 1, err);
    ASSERT_EQ(num.size(), 1u);
    EXPECT_EQ(num[0].to_string(), "127.0.0.1:1688");
    EXPECT_EQ(resolve_listen("[::1]", 1688, err).at(0).to_string(), "[::1]:1688");
    // A name gives every address getaddrinfo returns, each on the port, all loopback for localhost.
    auto names = resolve_listen("localhost:31688", 1, err);
    ASSERT_FALSE(names.empty()) << err;
    for (const auto& a : names) {
        EXPECT_EQ(a.port(), 31688);
        EXPECT_TRUE(a.to_string() == "127.0.0.1:31688" || a.to_string() == "[::1]:31688") << a.to_string();
    }
    for (std::size_t i = 1; i < names.size(); ++i) EXPECT_NE(names[i].to_string(), names[0].to_string());
    err.clear();
    EXPECT_TRUE(resolve_listen("no-such-host.invalid:1688", 1, err).empty());
    EXPECT_NE(err.find("no-such-host.invalid"), std::string::npos);
    EXPECT_TRUE(resolve_listen("localhost:99999", 1, err).empty());
}

// ---- The generated identity -------------------------------------------------------------------

/// Runs a capture's client PDUs through a ServerConnection with `identity` and fingerprints the answers
/// as kms-analyze does (every connection of the capture, one fingerprint).
ServerImpl fingerprint_with(const StoredIdentity& identity, const std::string& capture_name) {
    server::ServerContext ctx;
    ctx.config.hwid = identity.hwid;
    for (const auto& [fam, epid] : identity.epids)
        ctx.config.identities[fam] = server::FamilyIdentity{epid, identity.hwid};
    SeededRandom rng(7);
    ctx.identity = server::HostIdentity::create(ctx.config, FileTime::from_unix(1790000000), rng);
    ServerFingerprint fp;
    auto conns = capture::read_connections(std::string(KMSCOPE_CAPTURES_DIR) + "/" + capture_name);
    EXPECT_FALSE(conns.empty());
    for (const auto& conn : conns) {
        server::ServerConnection sc(ctx, rng.u32() | 1, 1688);
        Conversation conv;
        FixedClock clock(conn.pdus.front().time);
        for (const auto& p : conn.pdus) {
            if (p.direction != Direction::ToServer) continue;
            clock.set(p.time);
            conv.feed(Direction::ToServer, p.time, p.bytes);
            conv.feed(Direction::ToClient, p.time, sc.on_bytes(p.bytes, clock, rng).bytes);
        }
        conv.finish(clock.now());
        int responses = 0;
        for (const auto& e : conv.take_events()) {
            fp.observe(e);
            if (const auto* x = std::get_if<Exchange>(&e); x && x->response) ++responses;
        }
        EXPECT_GT(responses, 0) << capture_name;
    }
    return fp.verdict();
}

TEST(ReplayIdentity, GeneratedIdentityIsNotAnEmulator) {
    for (std::uint64_t seed : {1u, 2u, 3u}) {
        SeededRandom rng(seed);
        auto id = generate_identity(17763, 1033, FileTime::from_unix(1790000000), rng);
        EXPECT_NE(id.hwid, kVlmcsdDefaultHwId);
        EXPECT_EQ(id.epids.size(), csvlk_families().size());
        for (const auto& [fam, epid] : id.epids) {
            auto parts = parse_epid(epid);
            ASSERT_TRUE(parts) << epid;
            EXPECT_EQ(parts->build, 17763u);
            EXPECT_EQ(parts->group, csvlk_family(fam)->group) << fam;
            EXPECT_TRUE(epid_anomalies(*parts).empty()) << epid;
        }
        for (const char* cap :
             {"vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng", "vlmcs-vlmcsd-v6-office2016-T-3conn.pcapng",
              "vlmcs-vlmcsd-v5-win8pro-ndr64-2req.pcapng"}) {
            auto verdict = fingerprint_with(id, cap);
            EXPECT_NE(verdict, ServerImpl::Vlmcsd) << cap;
            EXPECT_NE(verdict, ServerImpl::PyKms) << cap;
            EXPECT_EQ(verdict, ServerImpl::GenuineLike) << cap;
        }
    }
    // The control: the same server with vlmcsd's HwId is fingerprinted as vlmcsd (the old default).
    SeededRandom rng(1);
    auto id = generate_identity(17763, 1033, FileTime::from_unix(1790000000), rng);
    id.hwid = kVlmcsdDefaultHwId;
    EXPECT_EQ(fingerprint_with(id, "vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng"), ServerImpl::Vlmcsd);
}

TEST(ReplayIdentity, StoredOnceAndReused) {
    auto a = temp_path("state-a"), b = temp_path("state-b");
    std::filesystem::remove_all(a);
    std::filesystem::remove_all(b);
    const FileTime now = FileTime::from_unix(1790000000);
    SystemRandom rng;
    std::string note, err;
    auto first = load_or_create_identity(a, 17763, 1033, now, rng, note, err);
    ASSERT_TRUE(first) << err;
    EXPECT_NE(note.find("generated a new host identity"), std::string::npos);
    std::ifstream f(identity_path(a));
    std::string bytes((std::istreambuf_iterator<char>(f)), {});
    auto again = load_or_create_identity(a, 17763, 1033, now, rng, note, err);
    ASSERT_TRUE(again) << err;
    EXPECT_TRUE(note.empty());
    EXPECT_EQ(again->hwid, first->hwid);
    EXPECT_EQ(again->epids, first->epids);
    std::ifstream f2(identity_path(a));
    EXPECT_EQ(std::string((std::istreambuf_iterator<char>(f2)), {}), bytes);  // not rewritten
    // Only the identity file: the temporary file was renamed over it.
    std::size_t files = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(a)) ++files;
    EXPECT_EQ(files, 1u);
    // Another installation, another identity.
    auto other = load_or_create_identity(b, 17763, 1033, now, rng, note, err);
    ASSERT_TRUE(other) << err;
    EXPECT_NE(other->hwid, first->hwid);
    EXPECT_NE(other->epids.at("Windows"), first->epids.at("Windows"));
    // Another host build: new ePIDs with that build, same HwId, stored.
    auto rebuilt = load_or_create_identity(a, 9600, 1031, now, rng, note, err);
    ASSERT_TRUE(rebuilt) << err;
    EXPECT_NE(note.find("generated again for host build 9600"), std::string::npos) << note;
    EXPECT_EQ(rebuilt->hwid, first->hwid);
    EXPECT_EQ(parse_epid(rebuilt->epids.at("Windows"))->build, 9600u);
    EXPECT_EQ(parse_epid(rebuilt->epids.at("Windows"))->lcid, 1031u);
    auto reread = read_identity(identity_path(a), err);
    ASSERT_TRUE(reread) << err;
    EXPECT_EQ(reread->epids, rebuilt->epids);
    EXPECT_EQ(reread->host_build, 9600u);
    // A damaged file is an error and is left for the operator.
    { std::ofstream(identity_path(b)) << "[identity]\nhwid=xyz\n"; }
    EXPECT_FALSE(load_or_create_identity(b, 17763, 1033, now, rng, note, err));
    EXPECT_NE(err.find("malformed"), std::string::npos) << err;
    std::ifstream f3(identity_path(b));
    EXPECT_EQ(std::string((std::istreambuf_iterator<char>(f3)), {}), "[identity]\nhwid=xyz\n");
}

TEST(ReplayIdentity, DefaultStateDir) {
    const char* saved = std::getenv("STATE_DIRECTORY");
    std::string keep = saved ? saved : "";
    setenv("STATE_DIRECTORY", "/run/x/kms-replay:/run/x/other", 1);
    EXPECT_EQ(default_state_dir(), "/run/x/kms-replay");  // systemd's, first entry
    unsetenv("STATE_DIRECTORY");
    if (geteuid() == 0) {
        EXPECT_EQ(default_state_dir(), "/var/lib/kms-replay");
    } else {
        setenv("XDG_STATE_HOME", "/tmp/xdg", 1);
        EXPECT_EQ(default_state_dir(), "/tmp/xdg/kms-replay");
    }
    if (saved) setenv("STATE_DIRECTORY", keep.c_str(), 1);
}

TEST(ReplayOptions, EmptyHwIdMeansGenerated) {
    ServeOptions o;
    EXPECT_TRUE(o.hwid.empty());
    EXPECT_TRUE(validate(o).empty());
    o.hwid = "123";
    EXPECT_FALSE(validate(o).empty());
    ServeOptions a, b;
    b.threads = 4;
    b.fixed_count = 9;
    b.listen = {"127.0.0.1:1"};
    EXPECT_EQ(keep_restart_only(a, b), (std::vector<std::string>{"listen", "threads"}));
    EXPECT_EQ(b.threads, a.threads);  // the running values stay
    EXPECT_EQ(b.listen, a.listen);
    EXPECT_EQ(b.fixed_count, 9u);  // a reload applies the rest
}

}  // namespace
}  // namespace kmscope::replay
