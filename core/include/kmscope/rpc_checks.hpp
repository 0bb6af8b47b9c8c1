// Response-header checks a strict KMS client (Windows, vlmcs) applies to a RequestActivation response PDU.
// One definition of the rules and their wording, shared by the conversation model (Conversation::on_response)
// and the Wireshark dissector, which reads the same header fields from the PDU that DCE/RPC handed it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kmscope/dcerpc.hpp"
#include "kmscope/ndr.hpp"

namespace kmscope::rpc {

/// Response flags a Windows client accepts are FIRST and LAST; any of these is an anomaly.
inline constexpr std::uint8_t kUnexpectedResponseFlags =
    flag::kPendingCancel | flag::kReserved | flag::kDidNotExecute | flag::kMaybe | flag::kObjectUuid;

/// The header fields of a response PDU and what they are compared with.
struct ResponseHeaderFacts {
    std::uint8_t flags = flag::kFirstLast;  // common header pfc_flags
    std::uint16_t context_id = 0;
    std::uint8_t cancel_count = 0;
    std::uint32_t alloc_hint = 0;
    /// The context id of the request this answers; absent when the request was not seen (nothing to compare).
    std::optional<std::uint16_t> request_context_id;
    /// Size of the KMS message the stub carries; absent for an HRESULT-only stub or a stub that does not
    /// frame, whose alloc_hint is not checked.
    std::optional<std::size_t> message_size;
    Ndr ndr = Ndr::Ndr32;
};

/// The anomalies of a response header, in rule order (context id, cancel_count, flags, alloc_hint); empty
/// when the header is what a client expects. Each one fails the exchange's `rpc` check.
std::vector<RpcAnomalyNote> response_header_anomalies(const ResponseHeaderFacts& facts);

}  // namespace kmscope::rpc
