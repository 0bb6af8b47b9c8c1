#include "kmscope/dcerpc.hpp"

#include <algorithm>
#include <stdexcept>

namespace kmscope::rpc {

std::string pdu_type_name(std::uint8_t ptype) {
    switch (ptype) {
        case 0:
            return "request";
        case 1:
            return "ping";
        case 2:
            return "response";
        case 3:
            return "fault";
        case 11:
            return "bind";
        case 12:
            return "bind_ack";
        case 13:
            return "bind_nak";
        case 14:
            return "alter_context";
        case 15:
            return "alter_context_resp";
        case 16:
            return "auth3";
        case 17:
            return "shutdown";
        case 18:
            return "co_cancel";
        case 19:
            return "orphaned";
        default:
            return "ptype " + std::to_string(ptype);
    }
}

namespace {
SyntaxId make_syntax(std::string_view uuid, std::uint32_t version) {
    return SyntaxId{*Guid::parse(uuid), version};
}
}  // namespace

const SyntaxId& kms_interface() {
    static const SyntaxId s = make_syntax("51c82175-844e-4750-b0d8-ec255555bc06", 1);
    return s;
}
const SyntaxId& ndr32_syntax() {
    static const SyntaxId s = make_syntax("8a885d04-1ceb-11c9-9fe8-08002b104860", 2);
    return s;
}
const SyntaxId& ndr64_syntax() {
    static const SyntaxId s = make_syntax("71710533-beba-4937-8319-b5dbef9ccc36", 1);
    return s;
}
SyntaxId btfn_syntax(std::uint16_t bitmask) {
    SyntaxId s = make_syntax("6cb71c2c-9812-4540-0000-000000000000", 1);
    s.uuid.wire[8] = static_cast<std::uint8_t>(bitmask);
    s.uuid.wire[9] = static_cast<std::uint8_t>(bitmask >> 8);
    return s;
}

TransferKind classify_transfer(const SyntaxId& s) {
    if (s.uuid == ndr32_syntax().uuid) return TransferKind::Ndr32;
    if (s.uuid == ndr64_syntax().uuid) return TransferKind::Ndr64;
    static const SyntaxId btfn = btfn_syntax(0);
    if (std::equal(btfn.uuid.wire.begin(), btfn.uuid.wire.begin() + 8, s.uuid.wire.begin())) return TransferKind::Btfn;
    return TransferKind::Other;
}

std::uint16_t btfn_bitmask(const SyntaxId& s) {
    return load_u16le(s.uuid.wire.data() + 8);
}

std::string transfer_name(const SyntaxId& s) {
    switch (classify_transfer(s)) {
        case TransferKind::Ndr32:
            return "NDR32";
        case TransferKind::Ndr64:
            return "NDR64";
        case TransferKind::Btfn:
            return "BTFN";
        case TransferKind::Other:
            break;
    }
    return s.uuid.is_nil() ? "none" : s.uuid.to_string();
}

Result<Header> parse_header(ByteView bytes, std::size_t base_offset, const Limits& limits) {
    Reader r(bytes, base_offset);
    Header h;
    h.version = r.u8("rpc_vers");
    h.version_minor = r.u8("rpc_vers_minor");
    h.ptype = r.u8("ptype");
    h.flags = r.u8("pfc_flags");
    auto drep = r.bytes(4, "packed_drep");
    h.frag_length = r.u16le("frag_length");
    h.auth_length = r.u16le("auth_length");
    h.call_id = r.u32le("call_id");
    if (!r.ok()) return *r.error();
    std::copy(drep.begin(), drep.end(), h.drep.begin());
    if (h.version != kVersion || h.version_minor != 0)
        return ParseError{
            "rpc_vers", base_offset,
            "not DCE/RPC 5.0 (version " + std::to_string(h.version) + "." + std::to_string(h.version_minor) + ")"};
    if (h.drep[0] != kDrepLittleEndian)
        return ParseError{
            "packed_drep", base_offset + 4,
            "unsupported data representation " + to_hex(ByteView(h.drep)) + " (only little-endian ASCII)"};
    if (h.frag_length < kHeaderSize)
        return ParseError{"frag_length", base_offset + 8,
                          "frag_length " + std::to_string(h.frag_length) + " shorter than the 16-byte header"};
    if (h.frag_length > limits.max_pdu_size)
        return ParseError{"frag_length", base_offset + 8,
                          "frag_length " + std::to_string(h.frag_length) + " exceeds the limit of " +
                              std::to_string(limits.max_pdu_size)};
    return h;
}

namespace {

SyntaxId read_syntax(Reader& r, std::string_view uuid_field, std::string_view version_field) {
    SyntaxId s;
    s.uuid = r.guid(uuid_field);
    s.version = r.u32le(version_field);
    return s;
}

Result<BindBody> parse_bind_body(Reader& r, const Limits& limits) {
    BindBody b;
    b.max_xmit_frag = r.u16le("max_xmit_frag");
    b.max_recv_frag = r.u16le("max_recv_frag");
    b.assoc_group = r.u32le("assoc_group_id");
    std::uint8_t n = r.u8("n_context_elem");
    r.skip(3, "reserved");
    if (r.ok() && n > limits.max_context_items)
        r.fail("n_context_elem",
               std::to_string(n) + " context items exceed the limit of " + std::to_string(limits.max_context_items));
    if (r.ok()) b.contexts.reserve(n);  // within the limit: one allocation, not one per doubling
    for (std::uint8_t i = 0; i < n && r.ok(); ++i) {
        ContextItem item;
        item.context_id = r.u16le("p_cont_id");
        std::uint8_t nt = r.u8("n_transfer_syn");
        r.skip(1, "reserved");
        item.abstract = read_syntax(r, "abstract_syntax", "abstract_syntax_version");
        if (r.ok() && nt == 0) r.fail("n_transfer_syn", "context item without transfer syntax");
        if (r.ok() && nt > limits.max_transfer_syntaxes)
            r.fail("n_transfer_syn", std::to_string(nt) + " transfer syntaxes exceed the limit of " +
                                         std::to_string(limits.max_transfer_syntaxes));
        if (r.ok()) item.transfer.reserve(nt);
        for (std::uint8_t t = 0; t < nt && r.ok(); ++t)
            item.transfer.push_back(read_syntax(r, "transfer_syntax", "transfer_syntax_version"));
        b.contexts.push_back(std::move(item));
    }
    if (!r.ok()) return *r.error();
    return b;
}

Result<BindAckBody> parse_bind_ack_body(Reader& r, std::size_t pdu_start) {
    BindAckBody b;
    b.max_xmit_frag = r.u16le("max_xmit_frag");
    b.max_recv_frag = r.u16le("max_recv_frag");
    b.assoc_group = r.u32le("assoc_group_id");
    std::uint16_t len = r.u16le("sec_addr_length");
    auto addr = r.bytes(len, "sec_addr");
    b.secondary_address_present = len > 0;
    for (auto c : addr) {
        if (c == 0) break;
        b.secondary_address += static_cast<char>(c);
    }
    // Results start at a multiple of 4 from the PDU start; the pad bytes may hold anything.
    std::size_t pos = r.offset() - pdu_start;
    for (auto c : r.bytes((4 - pos % 4) % 4, "sec_addr_padding")) b.padding_nonzero = b.padding_nonzero || c != 0;
    std::uint8_t n = r.u8("n_results");
    r.skip(3, "reserved");
    constexpr std::size_t kResultSize = 24;                                    // result, reason, transfer syntax
    b.results.reserve(std::min<std::size_t>(n, r.remaining() / kResultSize));  // no more than the PDU holds
    for (std::uint8_t i = 0; i < n && r.ok(); ++i) {
        ContextResult cr;
        cr.result = r.u16le("result");
        cr.reason = r.u16le("reason");
        cr.transfer = read_syntax(r, "transfer_syntax", "transfer_syntax_version");
        if (r.ok()) b.results.push_back(cr);
    }
    if (!r.ok()) return *r.error();
    return b;
}

}  // namespace

Result<Pdu> parse_pdu(ByteView bytes, std::size_t base_offset, const Limits& limits) {
    auto header = parse_header(bytes, base_offset, limits);
    if (!header) return header.error();
    return parse_pdu(*header, bytes, base_offset, limits);
}

Result<Pdu> parse_pdu(const Header& header, ByteView bytes, std::size_t base_offset, const Limits& limits) {
    Pdu pdu;
    pdu.header = header;
    if (bytes.size() < pdu.header.frag_length)
        return ParseError{"frag_length", base_offset + 8,
                          "PDU truncated: frag_length " + std::to_string(pdu.header.frag_length) + " but only " +
                              std::to_string(bytes.size()) + " bytes"};
    std::size_t body_end = pdu.header.frag_length;
    if (pdu.header.auth_length != 0) {
        // An authentication verifier (8-byte sec_trailer + auth value) closes the PDU; KMS never uses one.
        std::size_t trailer = 8u + pdu.header.auth_length;
        if (trailer + kHeaderSize > body_end)
            return ParseError{"auth_length", base_offset + 10,
                              "auth_length " + std::to_string(pdu.header.auth_length) + " does not fit frag_length"};
        body_end -= trailer;
    }
    Reader r(bytes.subspan(kHeaderSize, body_end - kHeaderSize), base_offset + kHeaderSize);
    switch (static_cast<PduType>(pdu.header.ptype)) {
        case PduType::Bind:
        case PduType::AlterContext: {
            auto b = parse_bind_body(r, limits);
            if (!b) return b.error();
            pdu.body = std::move(*b);
            break;
        }
        case PduType::BindAck:
        case PduType::AlterContextResp: {
            auto b = parse_bind_ack_body(r, base_offset);
            if (!b) return b.error();
            pdu.body = std::move(*b);
            break;
        }
        case PduType::BindNak: {
            BindNakBody b;
            b.reject_reason = r.u16le("provider_reject_reason");
            if (!r.ok()) return *r.error();
            pdu.body = b;
            break;
        }
        case PduType::Request: {
            RequestBody b;
            b.alloc_hint = r.u32le("alloc_hint");
            b.context_id = r.u16le("p_cont_id");
            b.opnum = r.u16le("opnum");
            if (pdu.header.flags & flag::kObjectUuid) b.object = r.guid("object");
            if (!r.ok()) return *r.error();
            b.stub_offset = kHeaderSize + r.position();
            b.stub = r.rest();
            pdu.body = b;
            break;
        }
        case PduType::Response: {
            ResponseBody b;
            b.alloc_hint = r.u32le("alloc_hint");
            b.context_id = r.u16le("p_cont_id");
            b.cancel_count = r.u8("cancel_count");
            b.reserved = r.u8("reserved");
            if (!r.ok()) return *r.error();
            b.stub_offset = kHeaderSize + r.position();
            b.stub = r.rest();
            pdu.body = b;
            break;
        }
        case PduType::Fault: {
            FaultBody b;
            b.alloc_hint = r.u32le("alloc_hint");
            b.context_id = r.u16le("p_cont_id");
            b.cancel_count = r.u8("cancel_count");
            b.reserved = r.u8("reserved");
            b.status = r.u32le("status");
            if (!r.ok()) return *r.error();
            pdu.body = b;
            break;
        }
        default:
            break;  // other PTYPEs: header only
    }
    return pdu;
}

namespace {

void write_header(Writer& w, PduType ptype, std::uint8_t flags, std::uint32_t call_id) {
    w.u8(kVersion);
    w.u8(0);
    w.u8(static_cast<std::uint8_t>(ptype));
    w.u8(flags);
    w.u32le(kDrepLittleEndian);  // packed_drep 10 00 00 00
    w.u16le(0);                  // frag_length, patched by finish()
    w.u16le(0);                  // auth_length
    w.u32le(call_id);
}

Bytes finish(Writer& w) {
    if (w.size() > 0xFFFF)
        throw std::length_error("DCE/RPC PDU of " + std::to_string(w.size()) + " bytes exceeds 65535");
    w.patch_u16le(8, static_cast<std::uint16_t>(w.size()));
    return w.take();
}

void write_syntax(Writer& w, const SyntaxId& s) {
    w.guid(s.uuid);
    w.u32le(s.version);
}

}  // namespace

Bytes build_bind(PduType ptype, std::uint8_t flags, std::uint32_t call_id, const BindBody& body) {
    Writer w;
    write_header(w, ptype, flags, call_id);
    w.u16le(body.max_xmit_frag);
    w.u16le(body.max_recv_frag);
    w.u32le(body.assoc_group);
    w.u8(static_cast<std::uint8_t>(body.contexts.size()));
    w.zeros(3);
    for (const auto& item : body.contexts) {
        w.u16le(item.context_id);
        w.u8(static_cast<std::uint8_t>(item.transfer.size()));
        w.u8(0);
        write_syntax(w, item.abstract);
        for (const auto& t : item.transfer) write_syntax(w, t);
    }
    return finish(w);
}

Bytes build_bind_ack(PduType ptype, std::uint8_t flags, std::uint32_t call_id, const BindAckBody& body,
                     std::uint8_t pad_fill) {
    Writer w;
    write_header(w, ptype, flags, call_id);
    w.u16le(body.max_xmit_frag);
    w.u16le(body.max_recv_frag);
    w.u32le(body.assoc_group);
    if (body.secondary_address_present || !body.secondary_address.empty()) {
        w.u16le(static_cast<std::uint16_t>(body.secondary_address.size() + 1));
        w.bytes(ByteView(reinterpret_cast<const std::uint8_t*>(body.secondary_address.data()),
                         body.secondary_address.size()));
        w.u8(0);
    } else {
        w.u16le(0);
    }
    while (w.size() % 4) w.u8(pad_fill);
    w.u8(static_cast<std::uint8_t>(body.results.size()));
    w.zeros(3);
    for (const auto& r : body.results) {
        w.u16le(r.result);
        w.u16le(r.reason);
        write_syntax(w, r.transfer);
    }
    return finish(w);
}

Bytes build_bind_nak(std::uint32_t call_id, std::uint16_t reason) {
    Writer w;
    write_header(w, PduType::BindNak, flag::kFirstLast, call_id);
    w.u16le(reason);
    w.u8(1);  // one supported protocol version: 5.0
    w.u8(5);
    w.u8(0);
    w.align(4);
    return finish(w);
}

Bytes build_request(std::uint8_t flags, std::uint32_t call_id, std::uint16_t context_id, std::uint16_t opnum,
                    ByteView stub) {
    Writer w;
    write_header(w, PduType::Request, flags, call_id);
    w.u32le(static_cast<std::uint32_t>(stub.size()));
    w.u16le(context_id);
    w.u16le(opnum);
    w.bytes(stub);
    return finish(w);
}

Bytes build_response(std::uint8_t flags, std::uint32_t call_id, std::uint16_t context_id, ByteView stub) {
    Writer w;
    write_header(w, PduType::Response, flags, call_id);
    w.u32le(static_cast<std::uint32_t>(stub.size()));
    w.u16le(context_id);
    w.u8(0);
    w.u8(0);
    w.bytes(stub);
    return finish(w);
}

Bytes build_fault(std::uint32_t call_id, std::uint16_t context_id, std::uint32_t status) {
    Writer w;
    write_header(w, PduType::Fault, flag::kFirstLast | flag::kDidNotExecute, call_id);
    w.u32le(32);
    w.u16le(context_id);
    w.u8(0);
    w.u8(0);
    w.u32le(status);
    w.u32le(0);
    return finish(w);
}

}  // namespace kmscope::rpc
