// Throughput of the protocol core on one core: what the analyzer pays per captured exchange, what the
// server pays per answered request, and the crypto primitives underneath. Every exchange-level benchmark
// reports items_per_second = exchanges per second. Inputs are the docs/protocol.md vectors (§12.3 messages,
// §12.5 sessions A/B/C), checked once before timing so a benchmark never measures a failure path.
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "kmscope/bytes.hpp"
#include "kmscope/conversation.hpp"
#include "kmscope/crypto.hpp"
#include "kmscope/dcerpc.hpp"
#include "kmscope/environment.hpp"
#include "kmscope/kms.hpp"
#include "kmscope/ndr.hpp"
#include "kmscope/server.hpp"
#include "sheet_vectors.hpp"

namespace kmscope {
namespace {

namespace sheet = test::sheet;

// ClientTime of every sheet request (2021-06-20T02:19:34Z); used as the clock and capture time.
constexpr FileTime kSheetTime{0x01D7657AB62CD55Cull};

Bytes hex(std::string_view text) {
    auto b = from_hex(text);
    if (!b) throw std::invalid_argument("bench: malformed hex vector");
    return *b;
}

// ---------------------------------------------------------------------------------------------------------
// Inputs

struct MessagePair {
    Bytes request;
    Bytes response;
};

MessagePair sheet_messages(int major) {
    switch (major) {
        case 4:
            return {hex(sheet::kV4_Request), hex(sheet::kV4_Response)};
        case 5:
            return {hex(sheet::kV5_Request), hex(sheet::kV5_Response)};
        default:
            return {hex(sheet::kV6_Request), hex(sheet::kV6_Response)};
    }
}

const std::vector<sheet::SheetPdu>& session_for(int major) {
    switch (major) {
        case 4:
            return sheet::kSessionA;
        case 5:
            return sheet::kSessionB;
        default:
            return sheet::kSessionC;
    }
}

struct SessionPdu {
    Direction dir;
    std::string kind;
    Bytes bytes;
};

std::vector<SessionPdu> session_pdus(int major) {
    std::vector<SessionPdu> out;
    for (const auto& p : session_for(major))
        out.push_back({p.from == 'C' ? Direction::ToServer : Direction::ToClient, std::string(p.kind), hex(p.hex)});
    return out;
}

// One exchange of a session at the RPC level: both PDUs and the NDR flavour of the context it used.
struct RpcExchange {
    Bytes request_pdu;
    Bytes response_pdu;
    rpc::Ndr ndr = rpc::Ndr::Ndr32;
};

// Runs the session once through the conversation model to learn each call's NDR flavour, and insists that
// every exchange verifies (otherwise the timed loop would measure an error path).
std::vector<RpcExchange> session_exchanges(int major) {
    auto pdus = session_pdus(major);
    Conversation conv;
    for (const auto& p : pdus) conv.feed(p.dir, kSheetTime, p.bytes);
    conv.finish(kSheetTime);
    std::vector<RpcExchange> out;
    for (auto& ev : conv.take_events()) {
        const auto* e = std::get_if<Exchange>(&ev);
        if (!e) continue;
        if (!e->ok() || !e->ndr) throw std::runtime_error("bench: a sheet session exchange does not verify");
        RpcExchange x;
        x.ndr = *e->ndr;
        for (const auto& p : pdus) {
            if (p.kind != "request" && p.kind != "response") continue;
            auto pdu = rpc::parse_pdu(p.bytes);
            if (!pdu || pdu->header.call_id != e->call_id) continue;
            (p.kind == "request" ? x.request_pdu : x.response_pdu) = p.bytes;
        }
        if (x.request_pdu.empty() || x.response_pdu.empty()) throw std::runtime_error("bench: exchange PDUs missing");
        out.push_back(std::move(x));
    }
    if (out.empty()) throw std::runtime_error("bench: session without exchanges");
    return out;
}

kms::ResponseFields sheet_fields() {
    kms::ResponseFields f;
    f.epid = "06401-00206-271-392041-03-1033-9600.0000-3652013";
    f.count = 50;
    f.activation_interval = 120;
    f.renewal_interval = 10080;
    f.hwid = *HwId::parse("3a1c049600b60076");
    return f;
}

// ---------------------------------------------------------------------------------------------------------
// Client side / analyzer: decode + decrypt + verify one exchange

// Message level: the section 12.3 request and response messages.
void BM_VerifyMessage(benchmark::State& state, int major) {
    const auto m = sheet_messages(major);
    {
        auto q = kms::decode_request(m.request);
        auto p = kms::decode_response(m.response);
        if (!q || !p || !kms::verify_exchange(*q, *p).ok()) {
            state.SkipWithError("section 12.3 exchange does not verify");
            return;
        }
    }
    for (auto _ : state) {
        auto q = kms::decode_request(m.request);
        auto p = kms::decode_response(m.response);
        auto v = kms::verify_exchange(*q, *p);
        benchmark::DoNotOptimize(v);
    }
    state.SetItemsProcessed(state.iterations());
}

// RPC level: per exchange what the conversation does once the PDUs are framed: parse both PDUs, strip the NDR
// stubs, decode both messages, verify. Each iteration handles every exchange of the session (call 2 on the
// NDR32 context, call 3 on the NDR64 context), so items = exchanges.
void BM_VerifyRpc(benchmark::State& state, int major) {
    std::vector<RpcExchange> xs;
    try {
        xs = session_exchanges(major);
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
        return;
    }
    std::size_t failures = 0;
    for (auto _ : state) {
        for (const auto& x : xs) {
            auto req_pdu = rpc::parse_pdu(x.request_pdu);
            auto resp_pdu = rpc::parse_pdu(x.response_pdu);
            if (!req_pdu || !resp_pdu) {
                ++failures;
                continue;
            }
            const auto& req_body = std::get<rpc::RequestBody>(req_pdu->body);
            const auto& resp_body = std::get<rpc::ResponseBody>(resp_pdu->body);
            auto req_stub = rpc::parse_request_stub(req_body.stub, x.ndr, req_body.stub_offset);
            auto resp_stub = rpc::parse_response_stub(resp_body.stub, x.ndr, resp_body.stub_offset);
            if (!req_stub || !resp_stub || !resp_stub->message) {
                ++failures;
                continue;
            }
            auto q = kms::decode_request(req_stub->message, req_body.stub_offset + req_stub->message_offset);
            auto p = kms::decode_response(*resp_stub->message, resp_body.stub_offset + resp_stub->message_offset);
            if (!q || !p) {
                ++failures;
                continue;
            }
            auto v = kms::verify_exchange(*q, *p);
            benchmark::DoNotOptimize(v);
        }
    }
    if (failures) state.SkipWithError("an exchange failed to parse inside the timed loop");
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(xs.size()));
    state.SetLabel(std::to_string(xs.size()) + " exchanges/iter");
}

// The whole conversation model: a fresh Conversation fed the session's PDUs (bind, alter_context, both
// exchanges, in wire order, one feed per PDU), finished, events taken. Includes framing, the bind bookkeeping
// and the event vector, so per exchange it carries half of the session's connection overhead.
void BM_Conversation(benchmark::State& state, int major) {
    const auto pdus = session_pdus(major);
    std::size_t exchanges = 0;
    try {
        exchanges = session_exchanges(major).size();
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
        return;
    }
    for (auto _ : state) {
        Conversation conv;
        for (const auto& p : pdus) conv.feed(p.dir, kSheetTime, p.bytes);
        conv.finish(kSheetTime);
        auto events = conv.take_events();
        benchmark::DoNotOptimize(events);
    }
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(exchanges));
    state.SetLabel(std::to_string(pdus.size()) + " PDUs, " + std::to_string(exchanges) + " exchanges/iter");
}

// Breakdown of BM_VerifyMessage: the three steps on their own.
void BM_DecodeRequest(benchmark::State& state, int major) {
    const auto m = sheet_messages(major);
    for (auto _ : state) {
        auto q = kms::decode_request(m.request);
        benchmark::DoNotOptimize(q);
    }
    state.SetItemsProcessed(state.iterations());
}

void BM_DecodeResponse(benchmark::State& state, int major) {
    const auto m = sheet_messages(major);
    for (auto _ : state) {
        auto p = kms::decode_response(m.response);
        benchmark::DoNotOptimize(p);
    }
    state.SetItemsProcessed(state.iterations());
}

void BM_VerifyExchangeOnly(benchmark::State& state, int major) {
    const auto m = sheet_messages(major);
    auto q = kms::decode_request(m.request);
    auto p = kms::decode_response(m.response);
    if (!q || !p) {
        state.SkipWithError("section 12.3 exchange does not decode");
        return;
    }
    for (auto _ : state) {
        auto v = kms::verify_exchange(*q, *p);
        benchmark::DoNotOptimize(v);
    }
    state.SetItemsProcessed(state.iterations());
}

// ---------------------------------------------------------------------------------------------------------
// Server side: response construction

// Message level: build_response_message for the decoded section 12.3 request, S and IV_r from a SeededRandom.
void BM_BuildMessage(benchmark::State& state, int major) {
    const auto m = sheet_messages(major);
    auto q = kms::decode_request(m.request);
    if (!q) {
        state.SkipWithError("section 12.3 request does not decode");
        return;
    }
    const auto fields = sheet_fields();
    SeededRandom rng(0x6b6d7363);
    {
        auto built = kms::build_response_message(*q, fields, rng);
        auto p = kms::decode_response(built);
        if (!p || !kms::verify_exchange(*q, *p).ok()) {
            state.SkipWithError("built response does not verify");
            return;
        }
    }
    for (auto _ : state) {
        auto msg = kms::build_response_message(*q, fields, rng);
        benchmark::DoNotOptimize(msg);
    }
    state.SetItemsProcessed(state.iterations());
}

// Full server path: ServerConnection::on_pdu for the session's request PDUs after its bind and alter_context
// (which bind context 1 as NDR64 and context 0 as NDR32). Each iteration answers both requests of the session:
// parse PDU, fragment assembler, stub, decode + decrypt, policy, identity lookup, build, frame the response.
void BM_ServerOnPdu(benchmark::State& state, int major) {
    const auto pdus = session_pdus(major);
    SeededRandom rng(0x6b6d7363);
    FixedClock clock(kSheetTime);
    server::ServerContext ctx;
    ctx.identity = server::HostIdentity::create(ctx.config, kSheetTime, rng);
    server::ServerConnection conn(ctx, 0x00001234, 1688);
    std::vector<Bytes> requests;
    for (const auto& p : pdus) {
        if (p.dir != Direction::ToServer) continue;
        if (p.kind == "request") {
            requests.push_back(p.bytes);
            continue;
        }
        auto out = conn.on_pdu(p.bytes, clock, rng);  // bind, alter_context
        if (out.close || out.bytes.empty()) {
            state.SkipWithError(("server refused the session's " + p.kind).c_str());
            return;
        }
    }
    for (const auto& r : requests) {
        auto out = conn.on_pdu(r, clock, rng);
        auto pdu = rpc::parse_pdu(out.bytes);
        if (!pdu || pdu->header.ptype != static_cast<std::uint8_t>(rpc::PduType::Response) ||
            out.activations.size() != 1 || out.activations[0].hresult != 0 || out.activations[0].fault != 0) {
            state.SkipWithError("server did not answer a session request with a KMS response");
            return;
        }
    }
    for (auto _ : state) {
        for (const auto& r : requests) {
            auto out = conn.on_pdu(r, clock, rng);
            benchmark::DoNotOptimize(out);
        }
    }
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(requests.size()));
    state.SetLabel(std::to_string(requests.size()) + " requests/iter");
}

// ---------------------------------------------------------------------------------------------------------
// Crypto primitives (items = blocks or calls)

// One 16-byte block through the v6 cipher, in place, so each call depends on the previous one (as in CBC
// encryption): this is per-block latency including the call, not pipelined throughput.
void BM_AesBlock(benchmark::State& state, crypto::Impl impl, bool decrypt) {
    if (impl == crypto::Impl::AesNi && !crypto::aesni_available()) {
        state.SkipWithError("this CPU has no AES-NI");
        return;
    }
    const crypto::BlockCipher c(crypto::Cipher::V6Aes128Tweaked, impl);
    if (c.impl() != impl) {
        state.SkipWithError("requested implementation not in use");
        return;
    }
    alignas(16) std::array<std::uint8_t, 16> block{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    for (auto _ : state) {
        if (decrypt)
            c.decrypt_block(block.data(), block.data());
        else
            c.encrypt_block(block.data(), block.data());
        benchmark::DoNotOptimize(block);
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * 16);
}

Bytes pattern(std::size_t n) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 7 + 1);
    return b;
}

void BM_V4Mac(benchmark::State& state) {
    const auto data = pattern(static_cast<std::size_t>(state.range(0)));
    for (auto _ : state) {
        auto mac = crypto::v4_mac(data);
        benchmark::DoNotOptimize(mac);
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * state.range(0));
}

void BM_Sha256(benchmark::State& state) {
    const auto data = pattern(static_cast<std::size_t>(state.range(0)));
    for (auto _ : state) {
        auto h = crypto::sha256(data);
        benchmark::DoNotOptimize(h);
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * state.range(0));
}

void BM_HmacSha256(benchmark::State& state) {
    const auto data = pattern(static_cast<std::size_t>(state.range(0)));
    const auto key = crypto::v6_hmac_key(kSheetTime.ticks);
    for (auto _ : state) {
        auto h = crypto::hmac_sha256(key, data);
        benchmark::DoNotOptimize(h);
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * state.range(0));
}

void BM_V6HmacKey(benchmark::State& state) {
    std::uint64_t t = kSheetTime.ticks;
    for (auto _ : state) {
        auto k = crypto::v6_hmac_key(t);
        benchmark::DoNotOptimize(k);
    }
    state.SetItemsProcessed(state.iterations());
}

// Registered inside the namespace so the reported names are plain ("BM_VerifyMessage/v4"); scripts/bench-core
// looks them up by these names.
using crypto::Impl;

BENCHMARK_CAPTURE(BM_VerifyMessage, v4, 4);
BENCHMARK_CAPTURE(BM_VerifyMessage, v5, 5);
BENCHMARK_CAPTURE(BM_VerifyMessage, v6, 6);
BENCHMARK_CAPTURE(BM_VerifyRpc, v4, 4);
BENCHMARK_CAPTURE(BM_VerifyRpc, v5, 5);
BENCHMARK_CAPTURE(BM_VerifyRpc, v6, 6);
BENCHMARK_CAPTURE(BM_Conversation, v4, 4);
BENCHMARK_CAPTURE(BM_Conversation, v5, 5);
BENCHMARK_CAPTURE(BM_Conversation, v6, 6);
BENCHMARK_CAPTURE(BM_DecodeRequest, v4, 4);
BENCHMARK_CAPTURE(BM_DecodeRequest, v5, 5);
BENCHMARK_CAPTURE(BM_DecodeRequest, v6, 6);
BENCHMARK_CAPTURE(BM_DecodeResponse, v4, 4);
BENCHMARK_CAPTURE(BM_DecodeResponse, v5, 5);
BENCHMARK_CAPTURE(BM_DecodeResponse, v6, 6);
BENCHMARK_CAPTURE(BM_VerifyExchangeOnly, v4, 4);
BENCHMARK_CAPTURE(BM_VerifyExchangeOnly, v5, 5);
BENCHMARK_CAPTURE(BM_VerifyExchangeOnly, v6, 6);
BENCHMARK_CAPTURE(BM_BuildMessage, v4, 4);
BENCHMARK_CAPTURE(BM_BuildMessage, v5, 5);
BENCHMARK_CAPTURE(BM_BuildMessage, v6, 6);
BENCHMARK_CAPTURE(BM_ServerOnPdu, v4, 4);
BENCHMARK_CAPTURE(BM_ServerOnPdu, v5, 5);
BENCHMARK_CAPTURE(BM_ServerOnPdu, v6, 6);
BENCHMARK_CAPTURE(BM_AesBlock, encrypt_portable, Impl::Portable, false);
BENCHMARK_CAPTURE(BM_AesBlock, encrypt_aesni, Impl::AesNi, false);
BENCHMARK_CAPTURE(BM_AesBlock, decrypt_portable, Impl::Portable, true);
BENCHMARK_CAPTURE(BM_AesBlock, decrypt_aesni, Impl::AesNi, true);
BENCHMARK(BM_V4Mac)->Arg(236);
BENCHMARK(BM_Sha256)->Arg(16);
BENCHMARK(BM_HmacSha256)->Arg(248);
BENCHMARK(BM_V6HmacKey);

}  // namespace
}  // namespace kmscope

BENCHMARK_MAIN();
