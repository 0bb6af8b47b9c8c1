// rpc::response_header_anomalies: the response-header rules shared by the conversation model and the
// Wireshark dissector, and the conversation model applying them to a response whose header was edited.
#include <gtest/gtest.h>

#include <set>

#include "kmscope/conversation.hpp"
#include "kmscope/rpc_checks.hpp"
#include "sheet_vectors.hpp"
#include "test_util.hpp"

namespace kmscope {
namespace {

namespace sheet = test::sheet;

// A header exactly as a Windows KMS host sends it, for a 260-byte NDR32 message.
rpc::ResponseHeaderFacts good_facts() {
    rpc::ResponseHeaderFacts f;
    f.flags = rpc::flag::kFirstLast;
    f.context_id = 1;
    f.cancel_count = 0;
    f.request_context_id = 1;
    f.message_size = 260;
    f.ndr = rpc::Ndr::Ndr32;
    f.alloc_hint = static_cast<std::uint32_t>(rpc::response_stub_size(260, rpc::Ndr::Ndr32));
    return f;
}

TEST(RpcChecks, AcceptsTheHeaderAClientExpects) {
    EXPECT_TRUE(rpc::response_header_anomalies(good_facts()).empty());
    auto f = good_facts();
    f.ndr = rpc::Ndr::Ndr64;
    f.alloc_hint = static_cast<std::uint32_t>(rpc::response_stub_size(260, rpc::Ndr::Ndr64));
    EXPECT_TRUE(rpc::response_header_anomalies(f).empty());
}

using Notes = std::vector<rpc::RpcAnomalyNote>;

TEST(RpcChecks, EachRuleWithItsKindAndWording) {
    auto f = good_facts();
    f.context_id = 2;
    EXPECT_EQ(rpc::response_header_anomalies(f),
              (Notes{{rpc::RpcAnomaly::ContextId, "response context id 2 differs from the request's 1"}}));
    f = good_facts();
    f.cancel_count = 1;
    EXPECT_EQ(rpc::response_header_anomalies(f), (Notes{{rpc::RpcAnomaly::CancelCount, "response cancel_count 1"}}));
    f = good_facts();
    f.flags = rpc::flag::kFirstLast | rpc::flag::kDidNotExecute;
    EXPECT_EQ(rpc::response_header_anomalies(f),
              (Notes{{rpc::RpcAnomaly::Flags, "unexpected response flags 0x00000023"}}));
    f = good_facts();
    f.alloc_hint = 4;
    EXPECT_EQ(rpc::response_header_anomalies(f),
              (Notes{{rpc::RpcAnomaly::AllocHint, "response alloc_hint 4 differs from the padded stub size " +
                                                      std::to_string(rpc::response_stub_size(260, rpc::Ndr::Ndr32))}}));
}

// Every kind has its own stable name and summary (the plugin registers one expert info per kind from them).
TEST(RpcChecks, EveryKindHasADistinctNameAndSummary) {
    std::set<std::string> names, summaries;
    for (auto kind : rpc::kRpcAnomalies) {
        std::string name = rpc::rpc_anomaly_name(kind);
        EXPECT_NE(name, "unknown");
        EXPECT_EQ(name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_"), std::string::npos) << name;
        names.insert(name);
        summaries.insert(rpc::rpc_anomaly_summary(kind));
    }
    EXPECT_EQ(names.size(), rpc::kRpcAnomalyKinds);
    EXPECT_EQ(summaries.size(), rpc::kRpcAnomalyKinds);
    EXPECT_STREQ(rpc::rpc_anomaly_name(rpc::RpcAnomaly::TrailingBytes), "trailing_bytes");
}

TEST(RpcChecks, ConcurrentMultiplexIsNotAnAnomaly) {
    auto f = good_facts();
    f.flags = rpc::flag::kFirstLast | rpc::flag::kConcMpx;
    EXPECT_TRUE(rpc::response_header_anomalies(f).empty());
}

TEST(RpcChecks, AllRulesInOrder) {
    auto f = good_facts();
    f.context_id = 0;
    f.cancel_count = 3;
    f.flags = rpc::flag::kFirstLast | rpc::flag::kMaybe;
    f.alloc_hint = 0;
    auto a = rpc::response_header_anomalies(f);
    ASSERT_EQ(a.size(), 4u);
    EXPECT_EQ(a[0].kind, rpc::RpcAnomaly::ContextId);
    EXPECT_EQ(a[1].kind, rpc::RpcAnomaly::CancelCount);
    EXPECT_EQ(a[2].kind, rpc::RpcAnomaly::Flags);
    EXPECT_EQ(a[3].kind, rpc::RpcAnomaly::AllocHint);
    EXPECT_EQ(a[0].text.rfind("response context id", 0), 0u);
    EXPECT_EQ(a[3].text.rfind("response alloc_hint", 0), 0u);
}

TEST(RpcChecks, NothingToCompareWithoutRequestOrMessage) {
    auto f = good_facts();
    f.request_context_id.reset();  // request not seen: the context id cannot be compared
    f.context_id = 7;
    f.message_size.reset();  // HRESULT-only stub: no alloc_hint rule
    f.alloc_hint = 12345;
    EXPECT_TRUE(rpc::response_header_anomalies(f).empty());
}

// The conversation model reports exactly the function's anomalies for an edited response header.
Exchange first_exchange_with_response_edit(std::vector<std::pair<std::size_t, std::uint8_t>> edits) {
    Conversation conv;
    FileTime t = FileTime::from_unix(1795305327);
    for (const auto& p : sheet::kSessionA) {
        Bytes b = test::hex(p.hex);
        if (p.kind == "response")
            for (auto [at, value] : edits) b.at(at) = value;
        t.ticks += 10000;
        conv.feed(p.from == 'C' ? Direction::ToServer : Direction::ToClient, t, b);
    }
    conv.finish(t, EndReason::Closed);
    std::vector<Exchange> out;
    for (auto& e : conv.take_events())
        if (auto* x = std::get_if<Exchange>(&e)) out.push_back(*x);
    EXPECT_FALSE(out.empty());
    return out.empty() ? Exchange{} : out.front();
}

// The RPC anomaly `text` among the exchange's diagnoses, of the kind rpc_anomaly.
bool has_diagnostic(const Exchange& x, const std::string& text) {
    for (const auto& d : x.diagnostics)
        if (d.text == text) return d.kind == DiagnosisKind::RpcAnomaly;
    return false;
}

TEST(RpcChecks, ConversationFailsRpcOnHeaderAnomalies) {
    Exchange clean = first_exchange_with_response_edit({});
    EXPECT_TRUE(clean.verdict.ok());
    Exchange cancel = first_exchange_with_response_edit({{22, 1}});  // byte 22: cancel_count
    EXPECT_TRUE(cancel.verdict.has(kms::Check::Rpc));
    EXPECT_TRUE(has_diagnostic(cancel, "response cancel_count 1"));
    Exchange hint = first_exchange_with_response_edit({{16, 1}, {17, 0}, {18, 0}, {19, 0}});  // alloc_hint 1
    EXPECT_TRUE(hint.verdict.has(kms::Check::Rpc));
    bool found = false;
    for (const auto& d : hint.diagnostics) found = found || d.text.rfind("response alloc_hint 1 differs", 0) == 0;
    EXPECT_TRUE(found);
}

}  // namespace
}  // namespace kmscope
