// Conversation fed a sequence of records, then finish().
// Input: [options] then records [tag] [u16le length] [bytes]: tag bit 0 is the direction (0 client->server,
// 1 server->client); a tag >= 0xF0 is a TCP gap of `length` bytes in that direction (no bytes follow). A
// truncated last record is fed as far as it goes. options: low nibble = max_pending_calls (0: the default 64),
// high nibble = Limits::max_fragments (0: the default 16), bit 0 of the last byte picks the EndReason.
//
// Invariants (after finish(), which answers every pending request). An independent framer + assembler per
// direction (resynchronising after a gap at the next chunk that starts a PDU, as the model does) counts the complete
// request PDUs from the client (R), the complete response PDUs plus fault PDUs from the server (A) and the well-formed
// PDUs per direction (P). Then:
//   - exchanges with a request_time == R: every request becomes exactly one exchange, answered or not;
//   - exchanges with a response_time == A: every answer becomes exactly one exchange (paired or orphan);
//   - PduEvents per direction == P, in stream order;
//   - each exchange's outcome agrees with which halves it has; ok() implies an empty verdict and a response;
//   - no request is left pending;
//   - ServerFingerprint (which parses ePIDs and bind answers) digests every event and gives a valid verdict.
#include <cstdio>
#include <cstdlib>

#include "fuzz_check.hpp"
#include "kmscope/conversation.hpp"
#include "kmscope/fingerprint.hpp"

using namespace kmscope;

namespace {

// What the conversation must have seen in one direction, computed with the framing primitives only.
struct Mirror {
    explicit Mirror(const rpc::Limits& l) : limits(l), framer(l), assembler(l) {}
    rpc::Limits limits;
    rpc::StreamFramer framer;
    rpc::FragmentAssembler assembler;
    bool stopped = false;
    bool resync = false;  // after a gap: skip chunks until one starts with a KMS-relevant PDU header
    std::uint64_t position = 0;
    std::size_t pdus = 0;   // well-formed PDUs
    std::size_t calls = 0;  // complete requests (client) or responses + faults (server)

    void gap(std::uint64_t missing) {
        if (stopped) return;
        resync = true;
        position += missing;
    }

    void feed(Direction dir, ByteView bytes) {
        if (stopped) return;
        if (resync) {
            auto h = bytes.size() >= rpc::kHeaderSize ? rpc::parse_header(bytes.first(rpc::kHeaderSize), 0, limits)
                                                      : Result<rpc::Header>(ParseError{});
            const bool starts =
                h && (h->ptype == 0 || h->ptype == 2 || h->ptype == 3 || (h->ptype >= 11 && h->ptype <= 15));
            if (!starts) {
                position += bytes.size();
                return;
            }
            resync = false;
            framer.restart(position);
            assembler = rpc::FragmentAssembler(limits);
        }
        position += bytes.size();
        framer.feed(bytes);
        while (auto f = framer.next()) {
            auto pdu = rpc::parse_pdu(f->bytes, 0, limits);
            if (!pdu) continue;
            ++pdus;
            const auto ptype = static_cast<rpc::PduType>(pdu->header.ptype);
            if (dir == Direction::ToClient && ptype == rpc::PduType::Fault) ++calls;
            const auto wanted = dir == Direction::ToServer ? rpc::PduType::Request : rpc::PduType::Response;
            if (ptype != wanted) continue;
            auto whole = assembler.add(*pdu, f->bytes);
            if (!whole || !*whole) continue;
            if (**whole != f->bytes && !rpc::parse_pdu(**whole, 0, limits)) continue;
            ++calls;
        }
        if (framer.error()) stopped = true;
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    ConversationOptions options;
    options.max_pending_calls = (data[0] & 15) ? (data[0] & 15) : 64;
    if (data[0] >> 4) options.limits.max_fragments = data[0] >> 4;
    const EndReason reason = (data[size - 1] & 1) ? EndReason::EndOfCapture : EndReason::Closed;

    Conversation conv(options);
    Mirror client(options.limits), server(options.limits);
    FileTime t{132000000000000000ull};
    std::size_t pos = 1;
    while (pos < size) {
        const std::uint8_t tag = data[pos++];
        std::size_t len = 0;
        if (pos + 2 <= size) len = load_u16le(data + pos);
        pos += 2;
        const Direction dir = (tag & 1) ? Direction::ToClient : Direction::ToServer;
        Mirror& m = dir == Direction::ToServer ? client : server;
        t.ticks += 10000;
        if (tag >= 0xF0) {
            conv.gap(dir, t, len);
            m.gap(len);
            continue;
        }
        if (pos >= size) break;
        len = std::min(len, size - pos);
        const ByteView bytes(data + pos, len);
        pos += len;
        conv.feed(dir, t, bytes);
        m.feed(dir, bytes);
    }
    conv.finish(t, reason);
    FUZZ_CHECK(conv.pending_requests() == 0);

    std::size_t requests = 0, answers = 0, pdus[2] = {0, 0};
    std::uint64_t last_offset[2] = {0, 0};
    bool any_offset[2] = {false, false};
    ServerFingerprint fingerprint;
    for (const Event& ev : conv.take_events()) {
        fingerprint.observe(ev);
        if (const auto* p = std::get_if<PduEvent>(&ev)) {
            const int d = static_cast<int>(p->direction);
            ++pdus[d];
            FUZZ_CHECK(!any_offset[d] || p->stream_offset > last_offset[d]);
            any_offset[d] = true;
            last_offset[d] = p->stream_offset;
        } else if (const auto* e = std::get_if<Exchange>(&ev)) {
            requests += e->request_time.has_value();
            answers += e->response_time.has_value();
            FUZZ_CHECK(e->request_time || e->response_time);
            switch (e->outcome) {
                case Outcome::NoResponse:
                    FUZZ_CHECK(e->request_time && !e->response_time);
                    break;
                case Outcome::Orphan:
                    FUZZ_CHECK(!e->request_time && e->response_time);
                    break;
                case Outcome::Response:
                    FUZZ_CHECK(e->request_time && e->response_time);
                    break;
                case Outcome::Hresult:
                    FUZZ_CHECK(e->request_time && e->response_time && e->hresult && !e->response);
                    break;
                case Outcome::Fault:
                    FUZZ_CHECK(e->request_time && e->response_time && e->fault_status);
                    break;
            }
            if (e->fault_status) FUZZ_CHECK(e->outcome == Outcome::Fault || e->outcome == Outcome::Orphan);
            if (e->ok()) FUZZ_CHECK(e->verdict.ok() && e->response && e->request && e->request_error == std::nullopt);
            if (e->request) FUZZ_CHECK(!e->request_error && e->request_version == e->request->version);
            if (e->response) FUZZ_CHECK(e->response_message.size() == e->response->message_size);
            if (e->latency_ms()) FUZZ_CHECK(*e->latency_ms() >= 0);
        } else if (const auto* n = std::get_if<ContextNegotiation>(&ev)) {
            FUZZ_CHECK(n->accepted.size() <= n->results.size());
            if (n->nak) FUZZ_CHECK(n->answered && n->accepted.empty());
        }
    }
    if (requests != client.calls || answers != server.calls)
        std::fprintf(stderr, "exchanges with a request %zu (requests framed %zu), with an answer %zu (answers %zu)\n",
                     requests, client.calls, answers, server.calls);
    const ServerImpl impl = fingerprint.verdict();
    FUZZ_CHECK(impl == ServerImpl::Unknown || impl == ServerImpl::Vlmcsd || impl == ServerImpl::PyKms ||
               impl == ServerImpl::GenuineLike);
    for (const auto& tell : fingerprint.tells()) FUZZ_CHECK(!tell.empty());
    FUZZ_CHECK(requests == client.calls);
    FUZZ_CHECK(answers == server.calls);
    FUZZ_CHECK(pdus[0] == client.pdus && pdus[1] == server.pdus);
    return 0;
}
