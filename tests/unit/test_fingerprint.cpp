// Server fingerprints on the captures, whose producers are known.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "kmscope/fingerprint.hpp"
#include "test_util.hpp"

namespace kmscope {
namespace {

ServerFingerprint fingerprint_of(const std::string& file) {
    ServerFingerprint fp;
    for (const auto& c : test::analyse_capture(test::capture_path(file)))
        if (c.is_kms)
            for (const auto& e : c.events) fp.observe(e);
    return fp;
}

// vlmcsd sessions without an alter_context (so no stale padding) and without a v6 HwId show nothing
// that tells vlmcsd from a genuine host.
const std::set<std::string> kVlmcsdWithoutTells = {
    "pykms-vlmcsd-v4-office2010.pcapng", "vlmcs-vlmcsd-H7601-v4-noNDR64-2req.pcapng",
    "vlmcs-vlmcsd-v4-win7pro-fixedid-1req.pcapng", "vlmcs-vlmcsd-v5-office2013-N0-1req.pcapng"};

TEST(Fingerprint, EveryCaptureNamesItsServer) {
    for (const auto& e : test::manifest()) {
        const std::string file = e.at("file");
        const std::string producer = e.at("producer_server");
        auto fp = fingerprint_of(file);
        ServerImpl want = producer.rfind("py-kms", 0) == 0  ? ServerImpl::PyKms
                          : kVlmcsdWithoutTells.count(file) ? ServerImpl::GenuineLike
                                                            : ServerImpl::Vlmcsd;
        std::string tells;
        for (const auto& t : fp.tells()) tells += t + "; ";
        EXPECT_EQ(server_impl_name(fp.verdict()), std::string(server_impl_name(want))) << file << ": " << tells;
    }
}

TEST(Fingerprint, PykmsSignatureAndPerRequestEpids) {
    auto fp = fingerprint_of("vlmcs-pykms-v5-office2013-2req-reconnect.pcapng");
    const auto& t = fp.tells();
    EXPECT_NE(std::find(t.begin(), t.end(), "bind_ack assoc_group 0x1063bf3f (py-kms constant)"), t.end());
    EXPECT_NE(std::find(t.begin(), t.end(), "NDR64 rejected although the ePID claims host build 17763"), t.end());
    EXPECT_NE(std::find(t.begin(), t.end(),
                        "different ePIDs from the same server (per-request random ePIDs: py-kms default, vlmcsd -r2)"),
              t.end());
}

// A server that answers with a new ePID every time (py-kms default) is told once, and the fingerprint's
// state does not grow with the number of responses (the analyzer keeps one per server for a whole file).
TEST(Fingerprint, ManyEpidsAreOneTell) {
    auto exchanges = test::analyse_capture(test::capture_path("vlmcs-pykms-v5-office2013-2req-reconnect.pcapng"));
    ServerFingerprint fp;
    std::size_t responses = 0;
    for (int round = 0; round < 200; ++round)
        for (const auto& c : exchanges)
            for (auto e : c.events)
                if (auto* x = std::get_if<Exchange>(&e); x && x->response) {
                    x->response->base.epid =
                        "03612-00206-" + std::to_string(100 + round % 900) + "-538405-03-1033-17763.0000-0132026";
                    fp.observe(e);
                    ++responses;
                }
    EXPECT_GE(responses, 400u);
    const auto& t = fp.tells();
    EXPECT_EQ(std::count(t.begin(), t.end(),
                         "different ePIDs from the same server (per-request random ePIDs: py-kms default, vlmcsd -r2)"),
              1);
    EXPECT_LE(t.size(), 4u);
}

TEST(Fingerprint, VlmcsdAssocGroupPerConnection) {
    auto fp = fingerprint_of("vlmcs-vlmcsd-v6-office2016-T-3conn.pcapng");
    const auto& t = fp.tells();
    EXPECT_NE(std::find(t.begin(), t.end(), "assoc_group grows by 1 per connection (vlmcsd)"), t.end());
}

// kms-analyze keeps one fingerprint per server and file, and adds each file's to the whole run's in file
// order (absorb), so that files analysed in parallel give the same summary as one after the other.
TEST(Fingerprint, AbsorbAddsALaterFilesEvidence) {
    const std::string several =
        "different ePIDs from the same server (per-request random ePIDs: py-kms default, vlmcsd -r2)";
    auto a = fingerprint_of("vlmcs-vlmcsd-v4-win7pro-fixedid-1req.pcapng");
    const auto b = fingerprint_of("vlmcs-vlmcsd-v5-office2013-N0-1req.pcapng");
    ASSERT_EQ(a.verdict(), ServerImpl::GenuineLike);
    ASSERT_EQ(b.verdict(), ServerImpl::GenuineLike);
    a.absorb(b);  // one ePID in each file, but not the same one
    EXPECT_EQ(std::count(a.tells().begin(), a.tells().end(), several), 1);
    EXPECT_EQ(a.verdict(), ServerImpl::Unknown);

    const auto pykms = fingerprint_of("vlmcs-pykms-v5-office2013-2req-reconnect.pcapng");
    ServerFingerprint whole;
    whole.absorb(pykms);  // into nothing: the same evidence
    EXPECT_EQ(whole.tells(), pykms.tells());
    EXPECT_EQ(whole.verdict(), ServerImpl::PyKms);
    whole.absorb(pykms);  // the same file twice: nothing new to tell
    EXPECT_EQ(whole.tells(), pykms.tells());
    whole.absorb(fingerprint_of("vlmcs-vlmcsd-d-v6-2req-reconnect.pcapng"));
    EXPECT_GT(whole.tells().size(), pykms.tells().size());  // vlmcsd's tells join py-kms's
}

// One file cut in two between connections, observed as two fingerprints and absorbed, gives the whole file's
// verdict and tells, except vlmcsd's "assoc_group grows by 1 per connection", which absorb does not look for
// across the cut (connections of two files are not consecutive).
TEST(Fingerprint, AbsorbOfTwoHalvesIsTheWhole) {
    const std::string assoc = "assoc_group grows by 1 per connection (vlmcsd)";
    std::size_t compared = 0;
    for (const auto& e : test::manifest()) {
        const std::string file = e.at("file");
        std::vector<std::vector<Event>> conns;
        for (const auto& c : test::analyse_capture(test::capture_path(file)))
            if (c.is_kms) conns.push_back(c.events);
        if (conns.size() < 2) continue;
        ServerFingerprint whole, first, second;
        for (std::size_t i = 0; i < conns.size(); ++i)
            for (const auto& ev : conns[i]) {
                whole.observe(ev);
                (i < conns.size() / 2 ? first : second).observe(ev);
            }
        first.absorb(second);
        EXPECT_EQ(server_impl_name(first.verdict()), std::string(server_impl_name(whole.verdict()))) << file;
        std::set<std::string> got(first.tells().begin(), first.tells().end());
        std::set<std::string> want(whole.tells().begin(), whole.tells().end());
        got.erase(assoc);
        want.erase(assoc);
        EXPECT_EQ(got, want) << file;
        ++compared;
    }
    EXPECT_GE(compared, 3u);
}

TEST(Fingerprint, NothingAnsweredIsUnknown) {
    ServerFingerprint fp;
    EXPECT_EQ(fp.verdict(), ServerImpl::Unknown);
    Exchange x;
    x.outcome = Outcome::NoResponse;
    fp.observe(x);
    EXPECT_EQ(fp.verdict(), ServerImpl::Unknown);
}

}  // namespace
}  // namespace kmscope
