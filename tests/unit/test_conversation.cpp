// The conversation model on the sessions of docs/protocol.md §12.5: the same events whatever the chunking,
// pairing by call id, verdicts, HRESULTs, faults and diagnostics.
#include <gtest/gtest.h>

#include <set>

#include "kmscope/conversation.hpp"
#include "kmscope/status.hpp"
#include "sheet_vectors.hpp"
#include "test_util.hpp"

namespace kmscope {
namespace {

using test::hex;
namespace sheet = test::sheet;

enum class Chunking { WholePdus, OneByte, Random, Coalesced };

// Feeds a session's PDUs; each PDU 1 ms after the previous one.
std::vector<Event> run(const std::vector<sheet::SheetPdu>& pdus, Chunking how, std::uint64_t seed = 1) {
    Conversation conv;
    SeededRandom rng(seed);
    FileTime t = FileTime::from_unix(1795305327);
    Bytes pending;
    Direction pending_dir = Direction::ToServer;
    auto flush = [&] {
        if (!pending.empty()) conv.feed(pending_dir, t, pending);
        pending.clear();
    };
    for (const auto& p : pdus) {
        Direction d = p.from == 'C' ? Direction::ToServer : Direction::ToClient;
        Bytes b = hex(p.hex);
        t.ticks += 10000;
        switch (how) {
            case Chunking::WholePdus:
                conv.feed(d, t, b);
                break;
            case Chunking::OneByte:
                for (auto byte : b) conv.feed(d, t, ByteView(&byte, 1));
                break;
            case Chunking::Random: {
                std::size_t i = 0;
                while (i < b.size()) {
                    std::size_t n = 1 + rng.uniform(0, 40);
                    n = std::min(n, b.size() - i);
                    conv.feed(d, t, ByteView(b).subspan(i, n));
                    i += n;
                }
                break;
            }
            case Chunking::Coalesced:
                // Consecutive PDUs of one direction arrive in one chunk.
                if (d != pending_dir) flush();
                pending_dir = d;
                pending.insert(pending.end(), b.begin(), b.end());
                break;
        }
    }
    flush();
    conv.finish(t, EndReason::Closed);
    return conv.take_events();
}

std::vector<Exchange> exchanges(const std::vector<Event>& events) {
    std::vector<Exchange> out;
    for (const auto& e : events)
        if (auto* x = std::get_if<Exchange>(&e)) out.push_back(*x);
    return out;
}

std::vector<ContextNegotiation> negotiations(const std::vector<Event>& events) {
    std::vector<ContextNegotiation> out;
    for (const auto& e : events)
        if (auto* n = std::get_if<ContextNegotiation>(&e)) out.push_back(*n);
    return out;
}

// A compact fingerprint of an exchange, to compare chunkings.
std::string summary(const Exchange& e) {
    std::string s = std::to_string(e.call_id) + "/" + std::to_string(e.context_id) + "/" +
                    (e.ndr ? rpc::ndr_name(*e.ndr) : "-") + "/" + outcome_name(e.outcome);
    if (e.request) s.append("/").append(e.request->base.cmid.to_string());
    if (e.response)
        s.append("/").append(e.response->base.epid).append("/").append(std::to_string(e.response->base.count));
    if (e.hresult) s.append("/").append(hex32(*e.hresult));
    for (auto c : e.verdict.failed) s.append("/!").append(kms::check_name(c));
    return s;
}

class ConversationChunking : public ::testing::TestWithParam<std::tuple<char, Chunking>> {};

const std::vector<sheet::SheetPdu>& session(char s) {
    switch (s) {
        case 'A':
            return sheet::kSessionA;
        case 'B':
            return sheet::kSessionB;
        case 'C':
            return sheet::kSessionC;
        case 'D':
            return sheet::kSessionD;
        case 'E':
            return sheet::kSessionE;
        case 'F':
            return sheet::kSessionF;
        default:
            return sheet::kSessionG;
    }
}

TEST_P(ConversationChunking, SameExchangesAsWholePdus) {
    auto [s, how] = GetParam();
    auto reference = exchanges(run(session(s), Chunking::WholePdus));
    auto got = exchanges(run(session(s), how, 7));
    ASSERT_EQ(got.size(), reference.size());
    for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(summary(got[i]), summary(reference[i]));
}

INSTANTIATE_TEST_SUITE_P(AllSessions, ConversationChunking,
                         ::testing::Combine(::testing::Values('A', 'B', 'C', 'D', 'E', 'F', 'G'),
                                            ::testing::Values(Chunking::OneByte, Chunking::Random,
                                                              Chunking::Coalesced)));

TEST(Conversation, SessionA_TwoV4ExchangesOnNdr32ThenNdr64) {
    auto events = run(sheet::kSessionA, Chunking::WholePdus);
    auto n = negotiations(events);
    ASSERT_EQ(n.size(), 2u);
    EXPECT_FALSE(n[0].alter_context);
    ASSERT_EQ(n[0].accepted.size(), 1u);
    EXPECT_EQ(n[0].accepted[0].context_id, 1);
    EXPECT_EQ(n[0].accepted[0].ndr(), rpc::Ndr::Ndr64);
    EXPECT_EQ(n[0].assoc_group, 0x2a1df845u);
    EXPECT_EQ(n[0].secondary_address, "31688");
    EXPECT_TRUE(n[1].alter_context);
    ASSERT_EQ(n[1].accepted.size(), 1u);
    EXPECT_EQ(n[1].accepted[0].ndr(), rpc::Ndr::Ndr32);
    auto x = exchanges(events);
    ASSERT_EQ(x.size(), 2u);
    EXPECT_EQ(x[0].call_id, 2u);
    EXPECT_EQ(x[0].ndr, rpc::Ndr::Ndr32);
    EXPECT_EQ(x[1].call_id, 3u);
    EXPECT_EQ(x[1].ndr, rpc::Ndr::Ndr64);
    for (const auto& e : x) {
        EXPECT_TRUE(e.ok()) << summary(e);
        EXPECT_TRUE(e.diagnostics.empty());
        ASSERT_TRUE(e.response);
        EXPECT_EQ(e.response->base.epid, "06401-00206-559-935108-03-1076-9600.0000-2222022");
        EXPECT_EQ(e.response->base.count, 10u);
        EXPECT_EQ(to_hex(e.request->mac), "476abd90700eb6c0a55ef2f1dfb2f177");
        EXPECT_EQ(to_hex(e.response->mac), "106365a070377a6ab124d1bf9e1ec6e8");
        EXPECT_EQ(e.response->base.client_time.ticks, 0x01DD7A10FCC7C980ull);
        ASSERT_TRUE(e.latency_ms());
        EXPECT_DOUBLE_EQ(*e.latency_ms(), 1.0);
    }
}

TEST(Conversation, SessionB_V5DerivedValues) {
    auto x = exchanges(run(sheet::kSessionB, Chunking::WholePdus));
    ASSERT_EQ(x.size(), 2u);
    ASSERT_TRUE(x[0].ok() && x[1].ok());
    EXPECT_EQ(to_hex(x[0].request->iv), "ec5eee1f801e756dd9df9875103334a0");
    EXPECT_EQ(to_hex(x[0].request->x), "e68f544393c805edc1dd0c84bd5beac9");
    EXPECT_EQ(to_hex(x[0].response->random_xored_ivs), "fce5e4e4a6f5b1d981a535c0f23e95a0");
    EXPECT_EQ(to_hex(x[0].response->hash), "052a7cfe8eae6c2a71cf22f524b319c0e1a9fe85818fdcf47526fa8049ff674e");
    EXPECT_EQ(x[0].response->iv, x[0].request->iv);
    EXPECT_EQ(to_hex(x[1].request->x), "d6a1921fa522114627c206ab15bc33aa");
    EXPECT_EQ(to_hex(kms::recorded_random(*x[1].request, *x[1].response).s), "f9c4d1afee59a266b0e60667db546408");
}

// take_events(out), which TcpSplit uses per packet with one reused vector, gives what take_events() gives:
// the events since the last call, whatever `out` held, each once.
TEST(Conversation, TakingEventsIntoAReusedVectorGivesEachEventOnce) {
    Conversation whole, piecewise;
    std::vector<Event> out{PduEvent{}, PduEvent{}, PduEvent{}};  // stale content, to be dropped
    std::vector<Event> taken;
    FileTime t = FileTime::from_unix(1795305327);
    for (const auto& p : sheet::kSessionB) {
        const Direction d = p.from == 'C' ? Direction::ToServer : Direction::ToClient;
        const Bytes b = hex(p.hex);
        whole.feed(d, t, b);
        piecewise.feed(d, t, b);
        piecewise.take_events(out);
        for (auto& e : out) taken.push_back(std::move(e));
    }
    piecewise.take_events(out);
    EXPECT_TRUE(out.empty());
    const auto all = whole.take_events();
    ASSERT_EQ(taken.size(), all.size());
    const auto a = exchanges(all), b = exchanges(taken);
    ASSERT_EQ(b.size(), 2u);
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(b[i].request->x, a[i].request->x);
        EXPECT_EQ(b[i].response->hash, a[i].response->hash);
        EXPECT_TRUE(b[i].ok());
    }
    for (std::size_t i = 0; i < all.size(); ++i) EXPECT_EQ(taken[i].index(), all[i].index()) << i;
}

TEST(Conversation, SessionC_V6DerivedValues) {
    auto x = exchanges(run(sheet::kSessionC, Chunking::WholePdus));
    ASSERT_EQ(x.size(), 2u);
    ASSERT_TRUE(x[0].ok() && x[1].ok());
    EXPECT_EQ(to_hex(x[0].request->x), "0b8366f77a3366681e08194ce99f0e38");
    EXPECT_EQ(to_hex(x[0].response->iv), "c2f4762f09ea6f9a454c9e9de64be5f5");
    EXPECT_EQ(x[0].response->hwid->to_string(), "3A1C049600B60076");
    EXPECT_EQ(to_hex(x[0].response->hmac), "0c43e3256f9f7d4f219f4744cc360421");
    EXPECT_EQ(to_hex(x[1].response->hmac), "9151006223c4948ee18834a1b15b6eeb");
    EXPECT_EQ(x[1].ndr, rpc::Ndr::Ndr64);
}

TEST(Conversation, SessionE_PykmsV6) {
    auto x = exchanges(run(sheet::kSessionE, Chunking::WholePdus));
    ASSERT_EQ(x.size(), 1u);
    EXPECT_TRUE(x[0].ok()) << summary(x[0]);
    EXPECT_EQ(x[0].response->base.epid, "03612-00206-559-944211-03-1033-17763.0000-3562019");
    EXPECT_EQ(x[0].response->base.pid_size, 100u);
    EXPECT_EQ(x[0].response->body_size, 232u);
    EXPECT_EQ(x[0].response->hwid->to_string(), "9C189F5752414EE9");
    EXPECT_EQ(to_hex(x[0].response->hmac), "2f0c98857110e06ef96bb5a000c6461f");
}

TEST(Conversation, SessionF_HresultForUnsupportedVersion) {
    auto x = exchanges(run(sheet::kSessionF, Chunking::WholePdus));
    ASSERT_EQ(x.size(), 1u);
    EXPECT_EQ(x[0].outcome, Outcome::Hresult);
    EXPECT_EQ(x[0].hresult, kHrInvalidData);
    ASSERT_TRUE(x[0].request_version);
    EXPECT_EQ(x[0].request_version->to_string(), "7.0");
    ASSERT_TRUE(x[0].request);  // vlmcs encrypts 7.0 with the v6 envelope
    EXPECT_TRUE(x[0].request->padding_ok);
    EXPECT_TRUE(x[0].verdict.has(kms::Check::Version));
    ASSERT_FALSE(x[0].diagnostics.empty());
    EXPECT_EQ(x[0].diagnostics[0].kind, DiagnosisKind::UnsupportedVersion);
    EXPECT_NE(x[0].diagnostics[0].text.find("unsupported KMS protocol version 7.0"), std::string::npos);
    EXPECT_FALSE(x[0].ok());
}

TEST(Conversation, SessionG_FaultPairedDespiteVlmcsdCallIdBug) {
    auto x = exchanges(run(sheet::kSessionG, Chunking::WholePdus));
    ASSERT_EQ(x.size(), 1u);
    EXPECT_EQ(x[0].outcome, Outcome::Fault);
    EXPECT_EQ(x[0].call_id, 3u);
    EXPECT_EQ(x[0].fault_status, kNcaUnknownInterface);
    EXPECT_EQ(x[0].context_id, 5);
    std::string all;
    std::set<std::string> kinds;
    for (const auto& d : x[0].diagnostics) {
        all += d.text + "\n";
        kinds.insert(diagnosis_name(d.kind));
    }
    EXPECT_EQ(kinds, (std::set<std::string>{"unbound_context", "fault_call_id", "fault"})) << all;
    EXPECT_NE(all.find("context id 5 that was never bound"), std::string::npos) << all;
    EXPECT_NE(all.find("fault call id 2 does not match the request's call id 3"), std::string::npos) << all;
    EXPECT_NE(all.find("nca_s_unk_if"), std::string::npos) << all;
    // The request itself still decodes (NDR inferred from its stub).
    ASSERT_TRUE(x[0].request);
    EXPECT_EQ(x[0].request->version.major, 6);
}

TEST(Conversation, UnansweredRequestBecomesNoResponse) {
    std::vector<sheet::SheetPdu> cut(sheet::kSessionC.begin(), sheet::kSessionC.begin() + 5);  // up to request 1
    auto events = run(cut, Chunking::WholePdus);
    auto x = exchanges(events);
    ASSERT_EQ(x.size(), 1u);
    EXPECT_EQ(x[0].outcome, Outcome::NoResponse);
    ASSERT_TRUE(x[0].request);
    EXPECT_FALSE(x[0].ok());
    ASSERT_FALSE(x[0].diagnostics.empty());
    EXPECT_EQ(x[0].diagnostics.back().kind, DiagnosisKind::NoResponse);
    EXPECT_NE(x[0].diagnostics.back().text.find("the connection was closed before the request was answered"),
              std::string::npos);
}

TEST(Conversation, MidStreamCaptureWithoutBindStillDecodes) {
    std::vector<sheet::SheetPdu> tail(sheet::kSessionC.begin() + 4, sheet::kSessionC.end());
    auto x = exchanges(run(tail, Chunking::WholePdus));
    ASSERT_EQ(x.size(), 2u);
    EXPECT_EQ(x[0].ndr, rpc::Ndr::Ndr32);
    EXPECT_EQ(x[1].ndr, rpc::Ndr::Ndr64);
    EXPECT_TRUE(x[0].verdict.ok());
    EXPECT_TRUE(x[1].verdict.ok());
    EXPECT_EQ(x[0].diagnostics.at(0).kind, DiagnosisKind::NoBind);
    EXPECT_NE(x[0].diagnostics.at(0).text.find("without a bind in the capture"), std::string::npos);
}

TEST(Conversation, GapResynchronisesAtTheNextPdu) {
    // Session C: the first request loses its tail to a gap; the second request starts a new segment.
    Conversation conv;
    FileTime t = FileTime::from_unix(1);
    const auto& c = sheet::kSessionC;
    for (std::size_t i = 0; i < 4; ++i) conv.feed(i % 2 ? Direction::ToClient : Direction::ToServer, t, hex(c[i].hex));
    auto req1 = hex(c[4].hex);
    conv.feed(Direction::ToServer, t, ByteView(req1).first(100));
    conv.gap(Direction::ToServer, t, 150);
    conv.feed(Direction::ToServer, t, ByteView(req1).subspan(250));  // mid-PDU tail: dropped
    conv.feed(Direction::ToClient, t, hex(c[5].hex));
    conv.feed(Direction::ToServer, t, hex(c[6].hex));
    conv.feed(Direction::ToClient, t, hex(c[7].hex));
    conv.finish(t);
    auto events = conv.take_events();
    auto x = exchanges(events);
    ASSERT_EQ(x.size(), 2u);
    EXPECT_EQ(x[0].outcome, Outcome::Orphan);  // the answer to the request the gap destroyed
    EXPECT_EQ(x[0].call_id, 2u);
    EXPECT_EQ(x[1].call_id, 3u);
    EXPECT_TRUE(x[1].ok()) << summary(x[1]);
    std::string all;
    for (const auto& e : events)
        if (auto* d = std::get_if<Diagnostic>(&e)) all += d->message + " @" + std::to_string(d->stream_offset) + "\n";
    EXPECT_NE(all.find("150 bytes missing from the client->server stream (and the 100 bytes of the PDU it cut)"),
              std::string::npos)
        << all;
    // Offsets continue across the gap: bind 160 + alter 72 + request 292 = 524.
    EXPECT_NE(all.find("resynchronised the client->server stream at a PDU boundary @524"), std::string::npos) << all;
}

TEST(Conversation, TruncatedStreamGivesDiagnostic) {
    Conversation conv;
    auto bind = hex(sheet::kSessionC[0].hex);
    FileTime t = FileTime::from_unix(1);
    conv.feed(Direction::ToServer, t, ByteView(bind).first(100));
    conv.finish(t);
    auto events = conv.take_events();
    std::string all;
    for (const auto& e : events)
        if (auto* d = std::get_if<Diagnostic>(&e)) all += d->message + "\n";
    EXPECT_NE(all.find("100 bytes of an incomplete PDU at the end of the client->server stream"), std::string::npos)
        << all;
}

TEST(Conversation, NonRpcStreamIsRejectedOnce) {
    Conversation conv;
    std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    FileTime t{};
    conv.feed(Direction::ToServer, t, ByteView(reinterpret_cast<const std::uint8_t*>(http.data()), http.size()));
    conv.feed(Direction::ToServer, t, ByteView(reinterpret_cast<const std::uint8_t*>(http.data()), http.size()));
    conv.finish(t);
    EXPECT_TRUE(conv.not_dcerpc());
    EXPECT_FALSE(conv.is_kms());
    auto events = conv.take_events();
    ASSERT_EQ(events.size(), 1u);
    EXPECT_NE(std::get<Diagnostic>(events[0]).message.find("not a DCE/RPC stream"), std::string::npos);
}

TEST(Conversation, FragmentedRequestIsReassembled) {
    // Split request 1 of session C into three fragments with FIRST / none / LAST.
    auto bytes = hex(sheet::kSessionC[4].hex);
    auto pdu = *rpc::parse_pdu(bytes);
    const auto& body = std::get<rpc::RequestBody>(pdu.body);
    ByteView stub = body.stub;
    Conversation conv;
    FileTime t = FileTime::from_unix(1);
    for (std::size_t i = 0; i < 4; ++i)
        conv.feed(i % 2 ? Direction::ToClient : Direction::ToServer, t, hex(sheet::kSessionC[i].hex));
    std::uint8_t flags[3] = {rpc::flag::kFirstFrag, 0, rpc::flag::kLastFrag};
    std::size_t cut[4] = {0, 100, 200, stub.size()};
    for (int i = 0; i < 3; ++i)
        conv.feed(Direction::ToServer, t,
                  rpc::build_request(flags[i], pdu.header.call_id, body.context_id, 0,
                                     stub.subspan(cut[i], cut[i + 1] - cut[i])));
    conv.feed(Direction::ToClient, t, hex(sheet::kSessionC[5].hex));
    conv.finish(t);
    auto x = exchanges(conv.take_events());
    ASSERT_EQ(x.size(), 1u);
    EXPECT_TRUE(x[0].ok()) << summary(x[0]);
}

}  // namespace
}  // namespace kmscope
