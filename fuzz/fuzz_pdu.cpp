// rpc::parse_pdu on arbitrary bytes.
// Invariants: parsing is independent of base_offset (only error offsets move, by exactly base_offset) and
// of bytes after frag_length; body views lie inside the PDU at their recorded offsets; and every body the
// parser produces can be rebuilt with the matching build_* function into a PDU that parses back to the same
// values, with building idempotent (build(parse(build(x))) == build(x)).
#include <cstdio>
#include <cstdlib>

#include "fuzz_check.hpp"
#include "kmscope/dcerpc.hpp"

using namespace kmscope;
using namespace kmscope::rpc;

namespace {

bool same_items(const std::vector<ContextItem>& a, const std::vector<ContextItem>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (a[i].context_id != b[i].context_id || !(a[i].abstract == b[i].abstract) || a[i].transfer != b[i].transfer)
            return false;
    return true;
}

bool same_results(const std::vector<ContextResult>& a, const std::vector<ContextResult>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (a[i].result != b[i].result || a[i].reason != b[i].reason || !(a[i].transfer == b[i].transfer)) return false;
    return true;
}

bool same_bind(const BindBody& a, const BindBody& b) {
    return a.max_xmit_frag == b.max_xmit_frag && a.max_recv_frag == b.max_recv_frag && a.assoc_group == b.assoc_group &&
           same_items(a.contexts, b.contexts);
}

bool same_bind_ack(const BindAckBody& a, const BindAckBody& b) {
    return a.max_xmit_frag == b.max_xmit_frag && a.max_recv_frag == b.max_recv_frag && a.assoc_group == b.assoc_group &&
           a.secondary_address == b.secondary_address && a.secondary_address_present == b.secondary_address_present &&
           same_results(a.results, b.results);
}

bool same_view(ByteView a, ByteView b) {
    return equal_bytes(a, b);
}

// Parses a PDU this fuzzer built; it must parse, with the header fields the builder was given.
Pdu reparse(const Bytes& built, std::uint8_t ptype, std::uint32_t call_id) {
    FUZZ_CHECK(built.size() <= 0xFFFF);
    auto p = parse_pdu(built);
    if (!p) std::fprintf(stderr, "rebuilt PDU does not parse: %s\n", p.error().to_string().c_str());
    FUZZ_CHECK(p.ok());
    FUZZ_CHECK(p->header.ptype == ptype);
    FUZZ_CHECK(p->header.call_id == call_id);
    FUZZ_CHECK(p->header.frag_length == built.size());
    FUZZ_CHECK(p->header.auth_length == 0);
    return std::move(*p);
}

void check_rebuild(const Pdu& pdu) {
    const Header& h = pdu.header;
    if (const auto* b = std::get_if<BindBody>(&pdu.body)) {
        Bytes built = build_bind(static_cast<PduType>(h.ptype), h.flags, h.call_id, *b);
        Pdu again = reparse(built, h.ptype, h.call_id);
        FUZZ_CHECK(again.header.flags == h.flags);
        FUZZ_CHECK(same_bind(std::get<BindBody>(again.body), *b));
        FUZZ_CHECK(build_bind(static_cast<PduType>(h.ptype), h.flags, h.call_id, std::get<BindBody>(again.body)) ==
                   built);
    } else if (const auto* a = std::get_if<BindAckBody>(&pdu.body)) {
        // A secondary address without a NUL inside its L bytes gains one when rebuilt; a PDU that was already at
        // the 65535-byte limit cannot be rebuilt (build_bind_ack has a 16-bit frag_length).
        Bytes built = build_bind_ack(static_cast<PduType>(h.ptype), h.flags, h.call_id, *a);
        if (built.size() > 0xFFFF) return;
        Pdu again = reparse(built, h.ptype, h.call_id);
        FUZZ_CHECK(again.header.flags == h.flags);
        const auto& a2 = std::get<BindAckBody>(again.body);
        FUZZ_CHECK(same_bind_ack(a2, *a));
        FUZZ_CHECK(!a2.padding_nonzero);
        FUZZ_CHECK(build_bind_ack(static_cast<PduType>(h.ptype), h.flags, h.call_id, a2) == built);
        // Padding bytes are reported but do not change any value.
        Bytes stale = build_bind_ack(static_cast<PduType>(h.ptype), h.flags, h.call_id, *a, 0xA5);
        Pdu again_stale = reparse(stale, h.ptype, h.call_id);
        FUZZ_CHECK(same_bind_ack(std::get<BindAckBody>(again_stale.body), *a));
    } else if (const auto* n = std::get_if<BindNakBody>(&pdu.body)) {
        Bytes built = build_bind_nak(h.call_id, n->reject_reason);
        Pdu again = reparse(built, h.ptype, h.call_id);
        FUZZ_CHECK(std::get<BindNakBody>(again.body).reject_reason == n->reject_reason);
    } else if (const auto* q = std::get_if<RequestBody>(&pdu.body)) {
        // build_request writes no object UUID, so the rebuilt PDU must not claim one.
        const std::uint8_t flags = h.flags & static_cast<std::uint8_t>(~flag::kObjectUuid);
        Bytes built = build_request(flags, h.call_id, q->context_id, q->opnum, q->stub);
        Pdu again = reparse(built, h.ptype, h.call_id);
        const auto& q2 = std::get<RequestBody>(again.body);
        FUZZ_CHECK(again.header.flags == flags);
        FUZZ_CHECK(q2.context_id == q->context_id && q2.opnum == q->opnum && !q2.object);
        FUZZ_CHECK(q2.alloc_hint == q->stub.size());
        FUZZ_CHECK(same_view(q2.stub, q->stub));
        FUZZ_CHECK(q2.stub_offset == 24);
    } else if (const auto* r = std::get_if<ResponseBody>(&pdu.body)) {
        Bytes built = build_response(h.flags, h.call_id, r->context_id, r->stub);
        Pdu again = reparse(built, h.ptype, h.call_id);
        const auto& r2 = std::get<ResponseBody>(again.body);
        FUZZ_CHECK(again.header.flags == h.flags);
        FUZZ_CHECK(r2.context_id == r->context_id && r2.cancel_count == 0 && r2.reserved == 0);
        FUZZ_CHECK(r2.alloc_hint == r->stub.size());
        FUZZ_CHECK(same_view(r2.stub, r->stub));
        FUZZ_CHECK(r2.stub_offset == 24);
    } else if (const auto* f = std::get_if<FaultBody>(&pdu.body)) {
        Bytes built = build_fault(h.call_id, f->context_id, f->status);
        Pdu again = reparse(built, h.ptype, h.call_id);
        const auto& f2 = std::get<FaultBody>(again.body);
        FUZZ_CHECK(f2.context_id == f->context_id && f2.status == f->status);
        FUZZ_CHECK(again.header.flags == (flag::kFirstLast | flag::kDidNotExecute));
    }
}

bool same_pdu(const Pdu& a, const Pdu& b) {
    const Header &x = a.header, &y = b.header;
    if (x.version != y.version || x.version_minor != y.version_minor || x.ptype != y.ptype || x.flags != y.flags ||
        x.drep != y.drep || x.frag_length != y.frag_length || x.auth_length != y.auth_length ||
        x.call_id != y.call_id || a.body.index() != b.body.index())
        return false;
    if (const auto* p = std::get_if<BindBody>(&a.body)) return same_bind(*p, std::get<BindBody>(b.body));
    if (const auto* p = std::get_if<BindAckBody>(&a.body)) return same_bind_ack(*p, std::get<BindAckBody>(b.body));
    if (const auto* p = std::get_if<BindNakBody>(&a.body))
        return p->reject_reason == std::get<BindNakBody>(b.body).reject_reason;
    if (const auto* p = std::get_if<RequestBody>(&a.body)) {
        const auto& q = std::get<RequestBody>(b.body);
        return p->alloc_hint == q.alloc_hint && p->context_id == q.context_id && p->opnum == q.opnum &&
               p->object == q.object && p->stub_offset == q.stub_offset && same_view(p->stub, q.stub);
    }
    if (const auto* p = std::get_if<ResponseBody>(&a.body)) {
        const auto& q = std::get<ResponseBody>(b.body);
        return p->alloc_hint == q.alloc_hint && p->context_id == q.context_id && p->cancel_count == q.cancel_count &&
               p->reserved == q.reserved && p->stub_offset == q.stub_offset && same_view(p->stub, q.stub);
    }
    if (const auto* p = std::get_if<FaultBody>(&a.body)) {
        const auto& q = std::get<FaultBody>(b.body);
        return p->alloc_hint == q.alloc_hint && p->context_id == q.context_id && p->cancel_count == q.cancel_count &&
               p->reserved == q.reserved && p->status == q.status;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const ByteView in(data, size);
    constexpr std::size_t kBase = 1000003;
    auto pdu = parse_pdu(in);
    auto shifted = parse_pdu(in, kBase);
    FUZZ_CHECK(pdu.ok() == shifted.ok());
    if (!pdu) {
        FUZZ_CHECK(pdu.error().field == shifted.error().field);
        FUZZ_CHECK(shifted.error().offset == pdu.error().offset + kBase);
        FUZZ_CHECK(pdu.error().offset <= size);
        return 0;
    }
    FUZZ_CHECK(same_pdu(*pdu, *shifted));

    const Header& h = pdu->header;
    FUZZ_CHECK(h.version == 5 && h.version_minor == 0 && h.drep[0] == 0x10);
    FUZZ_CHECK(h.frag_length >= kHeaderSize && h.frag_length <= size);
    FUZZ_CHECK(h.ptype == data[2] && h.flags == data[3] && h.frag_length == load_u16le(data + 8) &&
               h.auth_length == load_u16le(data + 10) && h.call_id == load_u32le(data + 12));
    auto header = parse_header(in);
    FUZZ_CHECK(header.ok() && header->frag_length == h.frag_length && header->call_id == h.call_id);

    // Bytes after frag_length do not matter.
    if (size > h.frag_length) {
        auto exact = parse_pdu(in.first(h.frag_length));
        FUZZ_CHECK(exact.ok() && same_pdu(*pdu, *exact));
    }

    // Stub views point into the input, at their recorded offsets, and end before any auth trailer.
    const std::size_t body_end = h.frag_length - (h.auth_length ? 8u + h.auth_length : 0u);
    auto check_stub = [&](ByteView stub, std::size_t stub_offset) {
        FUZZ_CHECK(stub.data() == data + stub_offset);
        FUZZ_CHECK(stub_offset + stub.size() == body_end);
    };
    if (const auto* q = std::get_if<RequestBody>(&pdu->body)) {
        check_stub(q->stub, q->stub_offset);
        FUZZ_CHECK(q->object.has_value() == ((h.flags & flag::kObjectUuid) != 0));
        FUZZ_CHECK(q->stub_offset == (q->object ? 40u : 24u));
    }
    if (const auto* r = std::get_if<ResponseBody>(&pdu->body)) {
        check_stub(r->stub, r->stub_offset);
        FUZZ_CHECK(r->stub_offset == 24);
    }
    if (const auto* b = std::get_if<BindBody>(&pdu->body)) {
        const Limits limits;
        FUZZ_CHECK(b->contexts.size() <= limits.max_context_items);
        for (const auto& item : b->contexts)
            FUZZ_CHECK(!item.transfer.empty() && item.transfer.size() <= limits.max_transfer_syntaxes);
    }
    const bool known = h.ptype == 0 || h.ptype == 2 || h.ptype == 3 || (h.ptype >= 11 && h.ptype <= 15);
    FUZZ_CHECK(known != std::holds_alternative<std::monostate>(pdu->body));

    check_rebuild(*pdu);
    return 0;
}
