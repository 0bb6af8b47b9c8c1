// The loopback sessions of docs/protocol.md §12.5 (vlmcs against vlmcsd and py-kms): every PDU
// parses and rebuilds byte for byte, and our server policy, given vlmcsd's identity and random
// choices, answers with vlmcsd's exact bytes.
#include <gtest/gtest.h>

#include "kmscope/dcerpc.hpp"
#include "kmscope/ndr.hpp"
#include "kmscope/server.hpp"
#include "kmscope/status.hpp"
#include "scripted_random.hpp"
#include "sheet_vectors.hpp"
#include "test_util.hpp"

namespace kmscope {
namespace {

using test::hex;
namespace sheet = test::sheet;

struct NamedSession {
    const char* name;
    const std::vector<sheet::SheetPdu>* pdus;
};

const NamedSession kSessions[] = {{"A", &sheet::kSessionA}, {"B", &sheet::kSessionB}, {"C", &sheet::kSessionC},
                                  {"D", &sheet::kSessionD}, {"E", &sheet::kSessionE}, {"F", &sheet::kSessionF},
                                  {"G", &sheet::kSessionG}};

// Rebuilds a parsed PDU from its fields with our builders.
Bytes rebuild(const rpc::Pdu& pdu, std::uint8_t pad_fill) {
    const auto& h = pdu.header;
    auto ptype = static_cast<rpc::PduType>(h.ptype);
    if (auto* b = std::get_if<rpc::BindBody>(&pdu.body)) return rpc::build_bind(ptype, h.flags, h.call_id, *b);
    if (auto* a = std::get_if<rpc::BindAckBody>(&pdu.body))
        return rpc::build_bind_ack(ptype, h.flags, h.call_id, *a, pad_fill);
    if (auto* r = std::get_if<rpc::RequestBody>(&pdu.body))
        return rpc::build_request(h.flags, h.call_id, r->context_id, r->opnum, r->stub);
    if (auto* r = std::get_if<rpc::ResponseBody>(&pdu.body))
        return rpc::build_response(h.flags, h.call_id, r->context_id, r->stub);
    if (auto* f = std::get_if<rpc::FaultBody>(&pdu.body)) return rpc::build_fault(h.call_id, f->context_id, f->status);
    return {};
}

TEST(RpcSessions, EveryPduParsesAndRebuildsByteForByte) {
    for (const auto& s : kSessions) {
        for (const auto& p : *s.pdus) {
            SCOPED_TRACE(std::string(s.name) + " " + std::string(p.kind));
            auto bytes = hex(p.hex);
            auto pdu = rpc::parse_pdu(bytes);
            ASSERT_TRUE(pdu) << pdu.error().to_string();
            EXPECT_EQ(rpc::pdu_type_name(pdu->header.ptype), p.kind);
            EXPECT_EQ(pdu->header.frag_length, bytes.size());
            if (p.kind == "fault") {
                // vlmcsd leaves stale bytes in cancel_count/reserved; the rest must match.
                auto& f = std::get<rpc::FaultBody>(pdu->body);
                EXPECT_EQ(f.status, kNcaUnknownInterface);
                EXPECT_EQ(pdu->header.call_id, 2u);  // vlmcsd's bug: not the request's 3
                continue;
            }
            // alter_context_resp padding holds stale bytes too: rebuild with the recorded pad byte.
            std::uint8_t pad = p.kind == "alter_context_resp" ? bytes[26] : 0;
            Bytes again = rebuild(*pdu, pad);
            if (p.kind == "alter_context_resp") again[27] = bytes[27];
            EXPECT_EQ(to_hex(again), to_hex(bytes));
        }
    }
}

TEST(RpcSessions, BindContextsOfSessionA) {
    auto bind = rpc::parse_pdu(hex(sheet::kSessionA[0].hex));
    ASSERT_TRUE(bind);
    const auto& b = std::get<rpc::BindBody>(bind->body);
    EXPECT_EQ(bind->header.flags, 0x13);
    EXPECT_EQ(b.max_xmit_frag, 5840);
    ASSERT_EQ(b.contexts.size(), 3u);
    EXPECT_EQ(b.contexts[0].abstract, rpc::kms_interface());
    EXPECT_EQ(rpc::classify_transfer(b.contexts[0].transfer.at(0)), rpc::TransferKind::Ndr32);
    EXPECT_EQ(rpc::classify_transfer(b.contexts[1].transfer.at(0)), rpc::TransferKind::Ndr64);
    EXPECT_EQ(rpc::classify_transfer(b.contexts[2].transfer.at(0)), rpc::TransferKind::Btfn);
    EXPECT_EQ(rpc::btfn_bitmask(b.contexts[2].transfer.at(0)), 3);
    auto ack = rpc::parse_pdu(hex(sheet::kSessionA[1].hex));
    ASSERT_TRUE(ack);
    const auto& a = std::get<rpc::BindAckBody>(ack->body);
    EXPECT_EQ(a.secondary_address, "31688");
    EXPECT_EQ(a.assoc_group, 0x2a1df845u);
    ASSERT_EQ(a.results.size(), 3u);
    EXPECT_EQ(a.results[0].result, 2);
    EXPECT_EQ(a.results[0].reason, 2);
    EXPECT_EQ(a.results[1].result, 0);
    EXPECT_EQ(a.results[1].transfer, rpc::ndr64_syntax());
    EXPECT_EQ(a.results[2].result, 3);
    EXPECT_EQ(a.results[2].reason, 3);
}

TEST(RpcSessions, NdrStubsOfSessionA) {
    // Parsed PDUs view their input: keep the bytes alive.
    auto bytes32 = hex(sheet::kSessionA[4].hex), bytes64 = hex(sheet::kSessionA[6].hex);
    auto req32 = rpc::parse_pdu(bytes32);
    auto req64 = rpc::parse_pdu(bytes64);
    ASSERT_TRUE(req32 && req64);
    auto s32 = rpc::parse_request_stub(std::get<rpc::RequestBody>(req32->body).stub, rpc::Ndr::Ndr32);
    auto s64 = rpc::parse_request_stub(std::get<rpc::RequestBody>(req64->body).stub, rpc::Ndr::Ndr64);
    ASSERT_TRUE(s32 && s64);
    EXPECT_EQ(s32->message.size(), 252u);
    EXPECT_EQ(to_hex(s32->message), to_hex(s64->message));  // same request, two framings
    EXPECT_EQ(s32->trailing, 0u);
    auto resp_bytes = hex(sheet::kSessionA[7].hex);
    auto resp64 = rpc::parse_pdu(resp_bytes);
    ASSERT_TRUE(resp64);
    const auto& body = std::get<rpc::ResponseBody>(resp64->body);
    EXPECT_EQ(body.alloc_hint, rpc::response_stub_size(158, rpc::Ndr::Ndr64));
    auto r = rpc::parse_response_stub(body.stub, rpc::Ndr::Ndr64);
    ASSERT_TRUE(r);
    ASSERT_TRUE(r->message);
    EXPECT_EQ(r->message->size(), 158u);
    EXPECT_EQ(r->return_value, 0u);
    EXPECT_TRUE(r->anomalies.empty());
    EXPECT_EQ(to_hex(rpc::build_response_stub(*r->message, rpc::Ndr::Ndr64)), to_hex(body.stub));
}

TEST(RpcSessions, ErrorStubOfSessionF) {
    auto bytes = hex(sheet::kSessionF[3].hex);
    auto resp = rpc::parse_pdu(bytes);
    ASSERT_TRUE(resp);
    auto r = rpc::parse_response_stub(std::get<rpc::ResponseBody>(resp->body).stub, rpc::Ndr::Ndr32);
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->message);
    EXPECT_EQ(r->return_value, kHrInvalidData);
    EXPECT_EQ(hresult_name(r->return_value), "ERROR_INVALID_DATA");
    EXPECT_EQ(to_hex(rpc::build_error_stub(kHrInvalidData, rpc::Ndr::Ndr32)), "00000000000000000d000780");
}

// ---- our server against vlmcsd's recorded answers ---------------------------------------------

// Configures a server with the identity vlmcsd showed in the session and the random values it used,
// derived from its recorded responses.
struct Replay {
    server::ServerContext ctx;
    Bytes script;
    std::uint32_t assoc_group = 0;
};

Replay replay_setup(const std::vector<sheet::SheetPdu>& pdus, bool ndr64) {
    Replay r;
    r.ctx.config.ndr64 = ndr64;
    std::optional<rpc::Ndr> ndr;
    std::map<std::uint16_t, rpc::Ndr> ctx_ndr = {{0, rpc::Ndr::Ndr32}, {1, rpc::Ndr::Ndr64}};
    std::optional<kms::DecodedRequest> last_request;
    for (const auto& p : pdus) {
        auto bytes = hex(p.hex);
        auto pdu = *rpc::parse_pdu(bytes);
        if (auto* a = std::get_if<rpc::BindAckBody>(&pdu.body)) r.assoc_group = a->assoc_group;
        if (auto* q = std::get_if<rpc::RequestBody>(&pdu.body)) {
            ndr = ctx_ndr[q->context_id];
            auto stub = rpc::parse_request_stub(q->stub, *ndr);
            last_request.reset();
            if (stub) {
                auto d = kms::decode_request(stub->message);
                if (d) last_request = *d;
            }
        }
        if (auto* s = std::get_if<rpc::ResponseBody>(&pdu.body)) {
            auto stub = rpc::parse_response_stub(s->stub, *ndr);
            if (!stub || !stub->message || !last_request) continue;
            auto resp = *kms::decode_response(*stub->message);
            server::FamilyIdentity id{resp.base.epid, resp.hwid.value_or(kVlmcsdDefaultHwId)};
            r.ctx.identity.set("Windows", id);
            auto rnd = kms::recorded_random(*last_request, resp);
            if (resp.version.major >= 5) r.script.insert(r.script.end(), rnd.s.begin(), rnd.s.end());
            if (resp.version.major == 6) r.script.insert(r.script.end(), rnd.iv.begin(), rnd.iv.end());
        }
    }
    return r;
}

void expect_server_reproduces(const std::vector<sheet::SheetPdu>& pdus, bool ndr64) {
    Replay r = replay_setup(pdus, ndr64);
    test::ScriptedRandom rng(r.script);
    FixedClock clock(FileTime::from_unix(1795305327));
    server::ServerConnection conn(r.ctx, r.assoc_group, 31688);
    std::size_t i = 0;
    while (i < pdus.size()) {
        ASSERT_EQ(pdus[i].from, 'C');
        auto out = conn.on_bytes(hex(pdus[i].hex), clock, rng);
        ++i;
        Bytes expected;
        while (i < pdus.size() && pdus[i].from == 'S') {
            auto b = hex(pdus[i].hex);
            if (pdus[i].kind == "alter_context_resp") b[26] = b[27] = 0;  // vlmcsd's stale padding
            expected.insert(expected.end(), b.begin(), b.end());
            ++i;
        }
        EXPECT_EQ(to_hex(out.bytes), to_hex(expected)) << "after client PDU " << i;
        EXPECT_FALSE(out.close);
    }
    EXPECT_EQ(rng.left(), 0u);
}

TEST(ServerAgainstVlmcsd, SessionA_V4_Ndr32ThenNdr64) {
    expect_server_reproduces(sheet::kSessionA, true);
}
TEST(ServerAgainstVlmcsd, SessionB_V5) {
    expect_server_reproduces(sheet::kSessionB, true);
}
TEST(ServerAgainstVlmcsd, SessionC_V6) {
    expect_server_reproduces(sheet::kSessionC, true);
}
TEST(ServerAgainstVlmcsd, SessionD_V6_Ndr32OnlyBind) {
    expect_server_reproduces(sheet::kSessionD, true);
}
TEST(ServerAgainstVlmcsd, SessionF_UnsupportedVersion) {
    expect_server_reproduces(sheet::kSessionF, true);
}

TEST(ServerAgainstVlmcsd, SessionG_UnboundContextFaultsWithTheRightCallId) {
    server::ServerContext ctx;
    FixedClock clock(FileTime::from_unix(1795305327));
    SeededRandom rng(1);
    server::ServerConnection conn(ctx, 0x2a1df84b, 31688);
    auto ack = conn.on_bytes(hex(sheet::kSessionG[0].hex), clock, rng);
    EXPECT_EQ(to_hex(ack.bytes), sheet::kSessionG[1].hex);
    auto out = conn.on_bytes(hex(sheet::kSessionG[2].hex), clock, rng);
    auto fault = rpc::parse_pdu(out.bytes);
    ASSERT_TRUE(fault);
    EXPECT_EQ(fault->header.ptype, 3);
    EXPECT_EQ(fault->header.flags, 0x23);
    EXPECT_EQ(fault->header.call_id, 3u);  // echoed, unlike vlmcsd
    const auto& f = std::get<rpc::FaultBody>(fault->body);
    EXPECT_EQ(f.status, kNcaUnknownInterface);
    EXPECT_EQ(f.cancel_count, 0);
    EXPECT_EQ(f.reserved, 0);
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(out.events[0].kind, server::EventKind::Fault);
    EXPECT_EQ(out.events[0].code, kNcaUnknownInterface);
    EXPECT_EQ(out.events[0].call_id, 3u);
    EXPECT_TRUE(server::answers_request(out.events[0].kind));
    EXPECT_EQ(server::describe(out.events[0]), "request call 3: fault 0x1C010003: context id 5 is not bound");
    ASSERT_EQ(out.activations.size(), 1u);
    EXPECT_EQ(out.activations[0].fault, kNcaUnknownInterface);
}

TEST(ServerAgainstPykms, SessionE_KmsMessageMatchesPykms) {
    // py-kms answers with the same KMS algorithm; its RPC layer differs (it rejects NDR64).
    Replay r = replay_setup(sheet::kSessionE, false);
    r.ctx.config.host_build = 7601;
    test::ScriptedRandom rng(r.script);
    FixedClock clock(FileTime::from_unix(1795305327));
    server::ServerConnection conn(r.ctx, 0x1063bf3f, 31690);
    auto ack = conn.on_bytes(hex(sheet::kSessionE[0].hex), clock, rng);
    auto pyack = hex(sheet::kSessionE[1].hex);
    EXPECT_EQ(to_hex(ack.bytes), to_hex(pyack));
    auto out = conn.on_bytes(hex(sheet::kSessionE[2].hex), clock, rng);
    EXPECT_EQ(to_hex(out.bytes), sheet::kSessionE[3].hex);
}

}  // namespace
}  // namespace kmscope
