// NDR32 / NDR64 framing of the RequestActivation stub (docs/protocol.md §2.6, §2.7).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kmscope/bytes.hpp"

namespace kmscope::rpc {

enum class Ndr { Ndr32, Ndr64 };

/// "32" or "64".
const char* ndr_name(Ndr ndr);

/// The KMS request message inside a request stub.
struct RequestStub {
    ByteView message;
    std::size_t message_offset = 0;  // offset of the message within the stub
    std::size_t trailing = 0;        // bytes after the message (the py-kms v4 client adds 4)
};

/// Strips the request framing (requestSize, conformance) and checks they agree and fit.
Result<RequestStub> parse_request_stub(ByteView stub, Ndr ndr, std::size_t base_offset = 0);
/// Frames a KMS request message as a request stub.
Bytes build_request_stub(ByteView message, Ndr ndr);

/// A deviation a strict client (vlmcs, Windows) flags in a response's RPC layer: the stub framing here, the
/// header in rpc_checks.hpp. Each fails the exchange's `rpc` check. Every kind has a stable name
/// (rpc_anomaly_name) and a summary, so that front ends count, filter and raise each kind separately (the
/// plugin registers one expert info per kind).
enum class RpcAnomaly : std::uint8_t {
    ContextId,           // header: the response's context id differs from the request's
    CancelCount,         // header: non-zero cancel_count
    Flags,               // header: flags beyond FIRST and LAST
    AllocHint,           // header: alloc_hint differs from the padded stub size
    Ndr64Padding,        // stub: non-zero NDR64 padding after responseSize
    NullPointerSize,     // stub: a NULL response pointer with a non-zero responseSize
    Referent,            // stub: a referent id other than 0x00020000
    ReturnValuePadding,  // stub: non-zero padding before the return value
    TrailingBytes,       // stub: bytes after the return value
};
inline constexpr std::size_t kRpcAnomalyKinds = 9;
/// Every kind, in declaration order.
inline constexpr RpcAnomaly kRpcAnomalies[kRpcAnomalyKinds] = {
    RpcAnomaly::ContextId, RpcAnomaly::CancelCount,        RpcAnomaly::Flags,
    RpcAnomaly::AllocHint, RpcAnomaly::Ndr64Padding,       RpcAnomaly::NullPointerSize,
    RpcAnomaly::Referent,  RpcAnomaly::ReturnValuePadding, RpcAnomaly::TrailingBytes};
/// The stable snake_case name of a kind ("context_id", ...): a string literal.
const char* rpc_anomaly_name(RpcAnomaly kind);
/// What the kind is, in a few words ("Response context id differs from the request's"): a string literal.
const char* rpc_anomaly_summary(RpcAnomaly kind);

/// One anomaly found: its kind and the sentence with this response's values.
struct RpcAnomalyNote {
    RpcAnomaly kind{};
    std::string text;
    bool operator==(const RpcAnomalyNote&) const = default;
};

/// A response stub: either a KMS message (non-NULL pointer) or an HRESULT with a NULL pointer.
struct ResponseStub {
    std::optional<ByteView> message;  // absent when the out pointer is NULL
    std::size_t message_offset = 0;
    std::uint32_t return_value = 0;  // the HRESULT
    std::uint64_t referent = 0;
    std::vector<RpcAnomalyNote> anomalies;  // deviations a strict client (vlmcs, Windows) would flag
};

/// Parses a response stub; framing that does not fit is an error, cosmetic deviations are anomalies.
Result<ResponseStub> parse_response_stub(ByteView stub, Ndr ndr, std::size_t base_offset = 0);
/// Frames a KMS response message (pad to 4, then the return value 0).
Bytes build_response_stub(ByteView message, Ndr ndr);
/// Builds the NULL-pointer stub that carries a KMS-level HRESULT.
Bytes build_error_stub(std::uint32_t hresult, Ndr ndr);
/// Size of a success stub for a message of `message_size` bytes (the alloc_hint a client expects).
std::size_t response_stub_size(std::size_t message_size, Ndr ndr);

/// Without the bind (a capture started mid-connection) the transfer syntax of a request or response stub
/// is inferred from its framing: the NDR64 and NDR32 length fields repeat the message size in different
/// places. nullopt when neither fits.
std::optional<Ndr> infer_request_ndr(ByteView stub);
std::optional<Ndr> infer_response_ndr(ByteView stub);

}  // namespace kmscope::rpc
