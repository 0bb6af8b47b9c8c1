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
#include "kmscope/counting.hpp"
#include "options.hpp"
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

}  // namespace
}  // namespace kmscope::replay
