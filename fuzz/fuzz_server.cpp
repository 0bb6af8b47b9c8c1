// server::ServerConnection on arbitrary client bytes, with a FixedClock and SeededRandom.
// Input: [config bits] [chunking seed] [client byte stream]. config bits: 0 ndr64, 1 btfn, 2 strict_opnum,
// 3 max_time_skew (4 h), 4-5 max_requests_per_connection (0 = unlimited), 6 host build 7601 instead of 17763,
// 7 the genuine-host count (distinct CMIDs, capped at 2N) instead of twice the N policy. Chunking seed 0 feeds the
// stream in one piece.
//
// Run A feeds the stream through on_bytes() in chunks (until the server asks to close). Run B frames the same
// stream itself and calls on_pdu() per PDU, feeding each PDU and its answer to a Conversation.
// Invariants:
//   - the output of both runs is identical (answers do not depend on TCP chunking), and so is close;
//   - every answer is exactly one well-formed PDU (parse_pdu ok), of a type that answers the PDU it replies to,
//     with the same call id; a bind_ack has one result per offered context;
//   - the server's own answers verify in the Conversation: no RPC framing anomaly, and every KMS response passes
//     every client-side check except the request's own integrity (the server does not check the request MAC
//     or padding) and, with the genuine count (which starts below N), the count; refusals carry 0x8007000D or
//     0xC004F06C;
//   - requests() equals the number of response PDUs sent.
#include <cstdio>
#include <cstdlib>

#include "fuzz_check.hpp"
#include "kmscope/conversation.hpp"
#include "kmscope/counting.hpp"
#include "kmscope/server.hpp"
#include "kmscope/status.hpp"

using namespace kmscope;

namespace {

constexpr std::uint64_t kSeed = 0x6b6d7363;
const FileTime kNow = FileTime::from_unix(1700000000);  // 2023-11-14

// A server context; bit 7 counts like a genuine host (distinct CMIDs, capped at 2N) instead of 2N.
struct Setup {
    explicit Setup(std::uint8_t bits) {
        ctx.config.ndr64 = bits & 1;
        ctx.config.btfn = bits & 2;
        ctx.config.strict_opnum = bits & 4;
        if (bits & 8) ctx.config.max_time_skew_seconds = 4 * 3600;
        ctx.config.max_requests_per_connection = (bits >> 4) & 3;
        ctx.config.host_build = (bits & 0x40) ? 7601 : 17763;
        if (bits & 0x80) ctx.counts = std::make_shared<GenuineCountPolicy>(store);
        SeededRandom rng(kSeed);
        ctx.identity = server::HostIdentity::create(ctx.config, kNow, rng);
    }
    Setup(const Setup&) = delete;
    Setup& operator=(const Setup&) = delete;
    MemoryCmidStore store;
    server::ServerContext ctx;
};

struct Run {
    Bytes bytes;
    bool close = false;
    std::uint32_t requests = 0;
};

Run run_chunked(std::uint8_t bits, std::uint8_t seed, ByteView stream) {
    Setup setup(bits);
    server::ServerContext& ctx = setup.ctx;
    server::ServerConnection conn(ctx, 0x1234, 1688);
    FixedClock clock(kNow);
    SeededRandom rng(kSeed);
    Run run;
    std::uint32_t x = seed * 2654435761u + 1;
    std::size_t pos = 0;
    while (pos < stream.size() && !run.close) {
        std::size_t n = stream.size() - pos;
        if (seed) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            n = std::min<std::size_t>(n, 1 + x % 64);
        }
        server::Output out = conn.on_bytes(stream.subspan(pos, n), clock, rng);
        pos += n;
        run.bytes.insert(run.bytes.end(), out.bytes.begin(), out.bytes.end());
        run.close = out.close;
    }
    run.requests = conn.requests();
    return run;
}

// The PDU types that may answer a PDU of type `asked`.
bool answers(std::uint8_t asked, std::uint8_t answer) {
    using rpc::PduType;
    auto is = [&](PduType t) { return answer == static_cast<std::uint8_t>(t); };
    switch (static_cast<PduType>(asked)) {
        case PduType::Bind:
            return is(PduType::BindAck) || is(PduType::BindNak);
        case PduType::AlterContext:
            return is(PduType::AlterContextResp) || is(PduType::BindNak);
        case PduType::Request:
            return is(PduType::Response) || is(PduType::Fault);
        default:
            return false;
    }
}

Run run_per_pdu(std::uint8_t bits, ByteView stream) {
    Setup setup(bits);
    server::ServerContext& ctx = setup.ctx;
    server::ServerConnection conn(ctx, 0x1234, 1688);
    FixedClock clock(kNow);
    SeededRandom rng(kSeed);
    Conversation conv;
    Run run;
    rpc::StreamFramer framer(ctx.config.limits);
    framer.feed(stream);
    FileTime t = kNow;
    std::uint32_t responses = 0;
    while (auto frame = framer.next()) {
        server::Output out = conn.on_pdu(frame->bytes, clock, rng);
        t.ticks += 10000;
        conv.feed(Direction::ToServer, t, frame->bytes);
        conv.feed(Direction::ToClient, t, out.bytes);
        run.bytes.insert(run.bytes.end(), out.bytes.begin(), out.bytes.end());
        if (!out.bytes.empty()) {
            auto reply = rpc::parse_pdu(out.bytes);
            FUZZ_CHECK(reply.ok());
            FUZZ_CHECK(reply->header.frag_length == out.bytes.size());  // exactly one PDU
            auto asked = rpc::parse_header(frame->bytes);
            FUZZ_CHECK(asked.ok());
            FUZZ_CHECK(answers(asked->ptype, reply->header.ptype));
            FUZZ_CHECK(reply->header.call_id == asked->call_id);
            if (const auto* ack = std::get_if<rpc::BindAckBody>(&reply->body)) {
                auto bind = rpc::parse_pdu(frame->bytes);
                FUZZ_CHECK(bind.ok() && ack->results.size() == std::get<rpc::BindBody>(bind->body).contexts.size());
            }
            if (const auto* r = std::get_if<rpc::ResponseBody>(&reply->body)) {
                auto req = rpc::parse_pdu(frame->bytes);
                FUZZ_CHECK(req.ok() && r->context_id == std::get<rpc::RequestBody>(req->body).context_id);
                ++responses;
            }
        }
        if (out.close) {
            run.close = true;
            break;
        }
    }
    if (!run.close && framer.error()) run.close = true;
    run.requests = conn.requests();
    FUZZ_CHECK(run.requests == responses);

    conv.finish(t);
    const bool genuine_count = bits & 0x80;
    for (const Event& ev : conv.take_events()) {
        const auto* e = std::get_if<Exchange>(&ev);
        if (!e) continue;
        if (e->verdict.has(kms::Check::Rpc)) {
            for (const auto& d : e->diagnostics) std::fprintf(stderr, "  %s\n", d.text.c_str());
        }
        FUZZ_CHECK(!e->verdict.has(kms::Check::Rpc));
        if (e->outcome == Outcome::Hresult) FUZZ_CHECK(*e->hresult == kHrInvalidData || *e->hresult == kHrTimeSkew);
        if (e->outcome == Outcome::Response && e->request) {
            FUZZ_CHECK(e->response.has_value());
            for (kms::Check c : e->verdict.failed) {
                const bool allowed = c == kms::Check::RequestMac || c == kms::Check::RequestPadding ||
                                     (genuine_count && c == kms::Check::Count);
                if (!allowed)
                    std::fprintf(stderr, "server answer fails check %s\n", std::string(kms::check_name(c)).c_str());
                FUZZ_CHECK(allowed);
            }
        }
    }
    return run;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const ByteView stream(data + 2, size - 2);
    const Run a = run_chunked(data[0], data[1], stream);
    const Run b = run_per_pdu(data[0], stream);
    FUZZ_CHECK(a.bytes == b.bytes);
    FUZZ_CHECK(a.close == b.close);
    FUZZ_CHECK(a.requests == b.requests);

    // The whole output is a sequence of well-formed PDUs.
    rpc::StreamFramer framer;
    framer.feed(a.bytes);
    while (auto f = framer.next()) FUZZ_CHECK(rpc::parse_pdu(f->bytes).ok());
    FUZZ_CHECK(!framer.error() && framer.buffered() == 0);
    return 0;
}
