// Names of the status codes seen around KMS: HRESULTs in response stubs and client logs, and the
// NCA status codes of DCE/RPC faults (docs/protocol.md §11).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kmscope {

inline constexpr std::uint32_t kHrInvalidData = 0x8007000D;  // bad version, size or N policy
inline constexpr std::uint32_t kHrAccessDenied = 0x80070005;
inline constexpr std::uint32_t kHrProductDeclined = 0xC004F042;
inline constexpr std::uint32_t kHrTimeSkew = 0xC004F06C;
inline constexpr std::uint32_t kHrInvalidDataSecurity = 0xC004D104;
inline constexpr std::uint32_t kHrCountInsufficient = 0xC004F038;
inline constexpr std::uint32_t kHrNoKmsContacted = 0xC004F074;
inline constexpr std::uint32_t kHrRpcCommFailure = 0x0000071C;

inline constexpr std::uint32_t kNcaOpRangeError = 0x1C010002;
inline constexpr std::uint32_t kNcaUnknownInterface = 0x1C010003;
inline constexpr std::uint32_t kNcaProtoError = 0x1C01000B;

// The names below are views of string literals: static and NUL-terminated, so callers (the dissector) may
// keep .data() as a C string. An unknown value gives an empty view whose data() may be null.

/// Symbolic name of an HRESULT ("ERROR_INVALID_DATA", ...), or "" when unknown.
std::string_view hresult_name(std::uint32_t hr);
/// One-sentence meaning of an HRESULT, or "" when unknown.
std::string_view hresult_description(std::uint32_t hr);
/// Symbolic name of an NCA fault status ("nca_s_unk_if", ...), or "" when unknown.
std::string_view nca_status_name(std::uint32_t status);
/// "0x8007000D" style text.
std::string hex32(std::uint32_t v);

}  // namespace kmscope
