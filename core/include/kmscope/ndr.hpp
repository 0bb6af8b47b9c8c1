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

/// A response stub: either a KMS message (non-NULL pointer) or an HRESULT with a NULL pointer.
struct ResponseStub {
    std::optional<ByteView> message;  // absent when the out pointer is NULL
    std::size_t message_offset = 0;
    std::uint32_t return_value = 0;  // the HRESULT
    std::uint64_t referent = 0;
    std::vector<std::string> anomalies;  // deviations a strict client (vlmcs, Windows) would flag
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
