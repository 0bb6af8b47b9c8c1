// DCE/RPC connection-oriented PDUs as KMS uses them (docs/protocol.md §2): parsing and building of
// bind, bind_ack, bind_nak, alter_context, alter_context_resp, request, response and fault.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "kmscope/bytes.hpp"

namespace kmscope::rpc {

enum class PduType : std::uint8_t {
    Request = 0,
    Response = 2,
    Fault = 3,
    Bind = 11,
    BindAck = 12,
    BindNak = 13,
    AlterContext = 14,
    AlterContextResp = 15,
};

/// Name of a PTYPE value ("bind", "alter_context_resp", ...; "ptype N" for others).
std::string pdu_type_name(std::uint8_t ptype);

/// True for the PDUs that negotiate a presentation context: bind, bind_ack, bind_nak, alter_context and
/// alter_context_resp.
constexpr bool negotiates_context(std::uint8_t ptype) {
    return ptype >= static_cast<std::uint8_t>(PduType::Bind) &&
           ptype <= static_cast<std::uint8_t>(PduType::AlterContextResp);
}
/// True for every PDU type KMS uses: the context negotiation plus request, response and fault.
constexpr bool kms_pdu_type(std::uint8_t ptype) {
    return negotiates_context(ptype) || ptype == static_cast<std::uint8_t>(PduType::Request) ||
           ptype == static_cast<std::uint8_t>(PduType::Response) || ptype == static_cast<std::uint8_t>(PduType::Fault);
}

namespace flag {
inline constexpr std::uint8_t kFirstFrag = 0x01;
inline constexpr std::uint8_t kLastFrag = 0x02;
inline constexpr std::uint8_t kPendingCancel = 0x04;
inline constexpr std::uint8_t kReserved = 0x08;
inline constexpr std::uint8_t kConcMpx = 0x10;
inline constexpr std::uint8_t kDidNotExecute = 0x20;
inline constexpr std::uint8_t kMaybe = 0x40;
inline constexpr std::uint8_t kObjectUuid = 0x80;
inline constexpr std::uint8_t kFirstLast = kFirstFrag | kLastFrag;
}  // namespace flag

/// rpc_vers of the connection-oriented protocol (rpc_vers_minor is 0).
inline constexpr std::uint8_t kVersion = 5;
/// packed_drep[0] for little-endian integers and ASCII characters, the only representation the core decodes.
inline constexpr std::uint8_t kDrepLittleEndian = 0x10;

inline constexpr std::size_t kHeaderSize = 16;
/// The request header: the common header, alloc_hint, p_cont_id and opnum (an object UUID may follow).
inline constexpr std::size_t kRequestHeaderSize = kHeaderSize + 8;
/// The response header: the common header, alloc_hint, p_cont_id, cancel_count and a reserved byte.
inline constexpr std::size_t kResponseHeaderSize = kHeaderSize + 8;

/// The common 16-byte header.
struct Header {
    std::uint8_t version = kVersion;
    std::uint8_t version_minor = 0;
    std::uint8_t ptype = 0;
    std::uint8_t flags = flag::kFirstLast;
    std::array<std::uint8_t, 4> drep{kDrepLittleEndian, 0, 0, 0};
    std::uint16_t frag_length = 0;
    std::uint16_t auth_length = 0;
    std::uint32_t call_id = 0;
};

/// An interface or transfer syntax identifier.
struct SyntaxId {
    Guid uuid;
    std::uint32_t version = 0;
    bool operator==(const SyntaxId&) const = default;
};

/// The KMS interface 51c82175-844e-4750-b0d8-ec255555bc06 v1.0.
const SyntaxId& kms_interface();
/// The NDR 2.0 (NDR32) transfer syntax.
const SyntaxId& ndr32_syntax();
/// The NDR64 transfer syntax.
const SyntaxId& ndr64_syntax();
/// Bind-time feature negotiation syntax carrying `bitmask` in bytes 8-9.
SyntaxId btfn_syntax(std::uint16_t bitmask);

enum class TransferKind { Ndr32, Ndr64, Btfn, Other };
/// Classifies a transfer syntax (BTFN is recognised by its first 8 wire bytes).
TransferKind classify_transfer(const SyntaxId& s);
/// The BTFN feature bitmask (bytes 8-9 of the wire GUID).
std::uint16_t btfn_bitmask(const SyntaxId& s);
/// Short display name of a transfer syntax: "NDR32", "NDR64", "BTFN", or its GUID.
std::string transfer_name(const SyntaxId& s);

/// A presentation context item of bind / alter_context.
struct ContextItem {
    std::uint16_t context_id = 0;
    SyntaxId abstract;
    std::vector<SyntaxId> transfer;
};

/// Body of bind and alter_context.
struct BindBody {
    std::uint16_t max_xmit_frag = 5840;
    std::uint16_t max_recv_frag = 5840;
    std::uint32_t assoc_group = 0;
    std::vector<ContextItem> contexts;
};

/// p_result_t result values.
enum class ContextResultCode : std::uint16_t {
    Acceptance = 0,
    UserRejection = 1,
    ProviderRejection = 2,
    NegotiateAck = 3,
};

/// One result of bind_ack / alter_context_resp.
struct ContextResult {
    std::uint16_t result = 0;
    std::uint16_t reason = 0;
    SyntaxId transfer;
};

/// Body of bind_ack and alter_context_resp.
struct BindAckBody {
    std::uint16_t max_xmit_frag = 5840;
    std::uint16_t max_recv_frag = 5840;
    std::uint32_t assoc_group = 0;
    std::string secondary_address;           // without its NUL; empty with L=0 (alter_context_resp)
    bool secondary_address_present = false;  // L > 0 on the wire
    bool padding_nonzero = false;            // stale bytes in the alignment padding (parsed only)
    std::vector<ContextResult> results;
};

/// Body of bind_nak.
struct BindNakBody {
    std::uint16_t reject_reason = 0;
};

/// Body of a request; `stub` views the input bytes.
struct RequestBody {
    std::uint32_t alloc_hint = 0;
    std::uint16_t context_id = 0;
    std::uint16_t opnum = 0;
    std::optional<Guid> object;
    ByteView stub;
    std::size_t stub_offset = 0;  // offset of the stub in the PDU
};

/// Body of a response; `stub` views the input bytes.
struct ResponseBody {
    std::uint32_t alloc_hint = 0;
    std::uint16_t context_id = 0;
    std::uint8_t cancel_count = 0;
    std::uint8_t reserved = 0;
    ByteView stub;
    std::size_t stub_offset = 0;
};

/// Body of a fault.
struct FaultBody {
    std::uint32_t alloc_hint = 0;
    std::uint16_t context_id = 0;
    std::uint8_t cancel_count = 0;
    std::uint8_t reserved = 0;
    std::uint32_t status = 0;
};

/// One parsed PDU. Views in the body point into the bytes given to parse_pdu.
struct Pdu {
    Header header;
    std::variant<std::monostate, BindBody, BindAckBody, BindNakBody, RequestBody, ResponseBody, FaultBody> body;
};

/// Hard limits that keep a hostile peer from costing memory or time.
struct Limits {
    std::size_t max_pdu_size = 65535;          // frag_length is 16 bits anyway
    std::size_t max_context_items = 16;        // per bind / alter_context
    std::size_t max_transfer_syntaxes = 16;    // per context item
    std::size_t max_fragments = 16;            // per fragmented request
    std::size_t max_reassembled_stub = 16384;  // bytes of a reassembled request stub
};

/// Parses and validates the 16-byte header (version 5.0, little-endian drep, sane frag_length).
Result<Header> parse_header(ByteView bytes, std::size_t base_offset = 0, const Limits& limits = {});
/// Parses one complete PDU (exactly frag_length bytes). Unknown PTYPEs yield a monostate body.
Result<Pdu> parse_pdu(ByteView bytes, std::size_t base_offset = 0, const Limits& limits = {});
/// The same with the header already parsed by parse_header from these bytes (by the framer, which needs
/// it to cut the PDU): the header is not read a second time.
Result<Pdu> parse_pdu(const Header& header, ByteView bytes, std::size_t base_offset = 0, const Limits& limits = {});

// Builders throw std::length_error when the PDU would not fit the 16-bit frag_length.

/// Builds bind (ptype Bind) or alter_context (ptype AlterContext).
Bytes build_bind(PduType ptype, std::uint8_t flags, std::uint32_t call_id, const BindBody& body);
/// Builds bind_ack or alter_context_resp; `pad_fill` is the byte used for alignment padding.
Bytes build_bind_ack(PduType ptype, std::uint8_t flags, std::uint32_t call_id, const BindAckBody& body,
                     std::uint8_t pad_fill = 0);
/// Builds bind_nak.
Bytes build_bind_nak(std::uint32_t call_id, std::uint16_t reason);
/// Builds a request PDU around an already framed stub.
Bytes build_request(std::uint8_t flags, std::uint32_t call_id, std::uint16_t context_id, std::uint16_t opnum,
                    ByteView stub);
/// Builds a response PDU around an already framed stub (alloc_hint = stub length).
Bytes build_response(std::uint8_t flags, std::uint32_t call_id, std::uint16_t context_id, ByteView stub);
/// Builds a fault PDU (flags FIRST|LAST|DID_NOT_EXECUTE, alloc_hint 32).
Bytes build_fault(std::uint32_t call_id, std::uint16_t context_id, std::uint32_t status);

}  // namespace kmscope::rpc
