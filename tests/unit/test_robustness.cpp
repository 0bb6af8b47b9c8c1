// Every truncation and every single-byte change of every PDU in the captures: the conversation model
// and the server answer with verdicts, diagnostics, faults or HRESULTs, never a crash (this suite also
// runs under AddressSanitizer and UBSan). Where the protocol protects a message with a MAC or HMAC,
// the change must be caught.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_set>

#include "kmscope/conversation.hpp"
#include "kmscope/ndr.hpp"
#include "kmscope/server.hpp"
#include "test_util.hpp"

namespace kmscope {
namespace {

std::vector<Exchange> replay(const test::ConnectionPdus& conn, std::size_t k, const Bytes& replacement) {
    Conversation conv;
    FileTime t = FileTime::from_unix(1795305327);
    for (std::size_t i = 0; i < conn.pdus.size(); ++i) {
        t.ticks += 10000;
        conv.feed(conn.pdus[i].first, t, i == k ? replacement : conn.pdus[i].second);
    }
    conv.finish(t);
    std::vector<Exchange> out;
    for (auto& e : conv.take_events())
        if (auto* x = std::get_if<Exchange>(&e)) out.push_back(std::move(*x));
    return out;
}

// Where the KMS message of a request/response PDU lies, and its version (0 when none).
struct MessageSpan {
    std::size_t begin = 0, end = 0;
    int major = 0;
    std::uint32_t call_id = 0;
};

MessageSpan message_span(const Bytes& pdu, const std::vector<Exchange>& base) {
    MessageSpan span;
    auto p = rpc::parse_pdu(pdu);
    if (!p) return span;
    span.call_id = p->header.call_id;
    for (const auto& x : base) {
        if (x.call_id != span.call_id || !x.ndr || !x.ok()) continue;
        if (auto* q = std::get_if<rpc::RequestBody>(&p->body)) {
            auto s = rpc::parse_request_stub(q->stub, *x.ndr);
            if (!s) continue;
            span.begin = q->stub_offset + s->message_offset;
            span.end = span.begin + s->message.size();
        } else if (auto* r = std::get_if<rpc::ResponseBody>(&p->body)) {
            auto s = rpc::parse_response_stub(r->stub, *x.ndr);
            if (!s || !s->message) continue;
            span.begin = r->stub_offset + s->message_offset;
            span.end = span.begin + s->message->size();
        }
        span.major = x.request->version.major;
    }
    return span;
}

class CaptureMutations : public ::testing::TestWithParam<std::string> {};

TEST_P(CaptureMutations, NeverCrashAndProtectedBytesAreCaught) {
    // The same PDU in another connection adds nothing. Keyed by a string copy: GCC 12 reports a false
    // -Wstringop-overread at -O3 inside std::set<std::vector<uint8_t>>'s ordering.
    std::unordered_set<std::string> seen;
    std::size_t runs = 0, caught = 0;
    for (const auto& conn : test::capture_pdus(test::capture_path(GetParam()))) {
        auto base = replay(conn, SIZE_MAX, {});
        for (std::size_t k = 0; k < conn.pdus.size(); ++k) {
            const Bytes& pdu = conn.pdus[k].second;
            if (!seen.emplace(pdu.begin(), pdu.end()).second) continue;
            MessageSpan span = message_span(pdu, base);
            for (std::size_t len = 0; len < pdu.size(); ++len) {
                replay(conn, k, Bytes(pdu.begin(), pdu.begin() + static_cast<std::ptrdiff_t>(len)));
                ++runs;
            }
            for (std::size_t pos = 0; pos < pdu.size(); ++pos) {
                for (std::uint8_t flip : {0xFF, 0x01}) {
                    Bytes m = pdu;
                    m[pos] ^= flip;
                    auto got = replay(conn, k, m);
                    ++runs;
                    // v4 messages carry a MAC over everything, v6 responses an HMAC over the whole body
                    // and IV; v4/v6 requests are verified through their response.
                    bool protected_byte = pos >= span.begin && pos < span.end && (span.major == 4 || span.major == 6);
                    if (!protected_byte) continue;
                    bool still_ok = false;
                    for (const auto& x : got)
                        if (x.call_id == span.call_id && x.ok()) still_ok = true;
                    // A changed v6 request IV breaks the hash and XoredIVs, a changed last block the
                    // padding, and a garbled CMID or time the echoes; but a garbled block that holds only
                    // request fields nothing echoes (the workstation name) cannot be noticed.
                    if (still_ok && span.major == 6 && conn.pdus[k].first == Direction::ToServer) continue;
                    EXPECT_FALSE(still_ok) << GetParam() << " PDU " << k << " byte " << pos << " ^" << int(flip);
                    ++caught;
                }
            }
        }
    }
    EXPECT_GT(runs, 100u);
    RecordProperty("runs", std::to_string(runs));
    RecordProperty("caught", std::to_string(caught));
}

TEST_P(CaptureMutations, ServerAnswersMutatedClientPdusWithWellFormedPdus) {
    FixedClock clock(FileTime::from_unix(1795305327));
    SeededRandom rng(9);
    server::ServerContext ctx;
    ctx.identity = server::HostIdentity::create(ctx.config, clock.now(), rng);
    for (const auto& conn : test::capture_pdus(test::capture_path(GetParam()))) {
        std::vector<Bytes> client;
        for (const auto& [d, b] : conn.pdus)
            if (d == Direction::ToServer) client.push_back(b);
        for (std::size_t k = 0; k < client.size(); ++k) {
            for (std::size_t pos = 0; pos < client[k].size(); pos += 3) {
                server::ServerConnection s(ctx, 7, 1688);
                for (std::size_t i = 0; i < client.size(); ++i) {
                    Bytes b = client[i];
                    if (i == k) b[pos] ^= 0xA5;
                    auto out = s.on_bytes(b, clock, rng);
                    rpc::StreamFramer check;
                    check.feed(out.bytes);
                    std::size_t total = 0;
                    while (auto f = check.next()) {
                        EXPECT_TRUE(rpc::parse_pdu(f->bytes)) << "server sent a malformed PDU";
                        total += f->bytes.size();
                    }
                    EXPECT_EQ(total, out.bytes.size());
                    // Anything not answered is logged or closes the connection with a reason.
                    if (out.bytes.empty() && !s.partial()) {
                        EXPECT_TRUE(!out.events.empty() || out.close);
                    }
                    if (out.close) break;
                }
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Captures, CaptureMutations, ::testing::ValuesIn(test::capture_names()),
                         [](const auto& info) { return test::param_name(info.param); });

}  // namespace
}  // namespace kmscope
