// KMS messages v4 / v5 / v6 (docs/protocol.md §3-§8): base request and response, the v4 MAC
// envelope, the v5/v6 encrypted envelopes, client-side verification and server-side construction.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kmscope/bytes.hpp"
#include "kmscope/environment.hpp"
#include "kmscope/epid.hpp"

namespace kmscope::kms {

using Block = std::array<std::uint8_t, 16>;

/// Protocol version as carried in the first 4 bytes of every KMS message (minor, then major).
struct Version {
    std::uint16_t major = 0;
    std::uint16_t minor = 0;
    /// "6.0" style text.
    std::string to_string() const;
    /// True for 4.0, 5.0 and 6.0.
    bool supported() const { return minor == 0 && major >= 4 && major <= 6; }
    bool operator==(const Version&) const = default;
};

/// Reads the version of a KMS message without decoding the rest.
std::optional<Version> peek_version(ByteView message);

inline constexpr std::size_t kBaseRequestSize = 236;
inline constexpr std::size_t kV4RequestSize = 252;
inline constexpr std::size_t kV5RequestSize = 260;
inline constexpr std::size_t kWorkstationBytes = 128;

/// Field offsets, so that front ends can point at bytes without knowing the layout themselves.
namespace layout {
// Base request (section 4), relative to its start.
inline constexpr std::size_t kReqVersionMinor = 0, kReqVersionMajor = 2, kReqVmInfo = 4, kReqLicenseStatus = 8,
                             kReqBindingExpiration = 12, kReqAppId = 16, kReqSkuId = 32, kReqKmsId = 48, kReqCmid = 64,
                             kReqNPolicy = 80, kReqClientTime = 84, kReqPreviousCmid = 92, kReqWorkstation = 108;
// Envelopes: the v4 MAC follows the base message; v5/v6 messages are version, IV, ciphertext.
inline constexpr std::size_t kEnvVersion = 0, kEnvIv = 4, kEnvCiphertext = 20, kMacSize = 16;

/// Offsets of the base response and (v5/v6) body fields, relative to the base response / body start.
struct ResponseLayout {
    std::size_t version_minor = 0, version_major = 2, pid_size = 4, epid = 8;
    std::size_t cmid = 0, client_time = 0, count = 0, activation_interval = 0, renewal_interval = 0;
    std::size_t base_end = 0;  // 44 + P: where the v4 MAC or the v5/v6 body trailer starts
    std::size_t random_xored_ivs = 0, hash = 0, hwid = 0, xored_ivs = 0, hmac = 0, body_end = 0;
};
/// The response layout for a PIDSize and major version (hwid/xored_ivs/hmac only for v6).
ResponseLayout response_layout(std::uint32_t pid_size, int major);
}  // namespace layout

/// The 236-byte base request shared by all versions (section 4).
struct BaseRequest {
    Version version;
    std::uint32_t vm_info = 0;
    std::uint32_t license_status = 0;
    std::uint32_t binding_expiration = 0;
    Guid app_id;
    Guid sku_id;
    Guid kms_id;
    Guid cmid;
    std::uint32_t n_policy = 0;
    FileTime client_time;
    Guid previous_cmid;
    std::array<std::uint8_t, kWorkstationBytes> workstation_raw{};  // the whole field, garbage after NUL kept
    /// Workstation name up to the first NUL WCHAR, as UTF-8.
    std::string workstation() const;
    /// Sets the name (UTF-8, truncated to 63 UTF-16 units) and zero-fills the rest of the field.
    void set_workstation(std::string_view utf8);
};

/// Parses a base request (at least 236 bytes).
Result<BaseRequest> parse_base_request(ByteView bytes, std::size_t base_offset = 0);
/// Serialises a base request (236 bytes).
void write_base_request(Writer& w, const BaseRequest& r);

/// The variable-size base response (section 5).
struct BaseResponse {
    Version version;
    std::uint32_t pid_size = 0;
    std::string epid;              // up to the first NUL WCHAR
    bool pid_well_formed = false;  // even, <= 128 bytes, last WCHAR NUL and no earlier NUL
    /// parse_epid(epid) when it has the strict structure, parsed once here so that no front end
    /// re-parses it per exchange; not written by write_base_response (epid is the wire text).
    std::optional<EpidParts> epid_parts;
    Guid cmid;
    FileTime client_time;
    std::uint32_t count = 0;
    std::uint32_t activation_interval = 0;
    std::uint32_t renewal_interval = 0;
    /// Encoded size: 44 + pid_size.
    std::size_t size() const { return 44 + pid_size; }
};

/// Parses a base response; `consumed` receives its size.
Result<BaseResponse> parse_base_response(ByteView bytes, std::size_t base_offset = 0);
/// Serialises a base response; pid_size is computed from the ePID.
void write_base_response(Writer& w, const BaseResponse& r);

/// Every check a client (vlmcs, Windows) runs on an exchange (sections 6.4 and 8.5).
enum class Check : std::uint8_t {
    RequestMac,      // v4 MAC over the base request
    RequestPadding,  // v5/v6 request decrypts to PKCS#7 04040404
    ResponseMac,     // v4 MAC over the base response
    Decrypt,         // v5/v6 response PKCS#7 padding
    Version,         // supported request version; response version equals the request's
    Cmid,            // CMID echoed
    ClientTime,      // ClientTime echoed
    Pid,             // ePID length/termination
    Hash,            // SHA-256(RandomXoredIVs xor X) == Hash
    Iv,              // v5: response IV equals request IV
    XoredIvs,        // v6: XoredIVs == X
    Hmac,            // v6 HMAC
    IvReused,        // v6 response IV equals the request IV (emulator following v5 rules)
    Size,            // message size equals the size the body implies
    Count,           // count >= the request's N policy
    Rpc,             // RPC framing of the response (stub sizes, padding, context id)
};

/// Stable name of a check ("request_mac", "hmac", ...), used in JSON and filters. Like the description, a
/// view of a string literal (static, NUL-terminated).
std::string_view check_name(Check c);
/// One sentence describing what failed.
std::string_view check_description(Check c);

/// The outcome of verifying an exchange: the list of failed checks.
struct Verdict {
    std::vector<Check> failed;
    /// True when no check failed.
    bool ok() const { return failed.empty(); }
    /// True when check `c` failed.
    bool has(Check c) const;
    /// Records a failed check once.
    void fail(Check c);
};

/// A decoded KMS request.
struct DecodedRequest {
    Version version;
    BaseRequest base;
    std::size_t message_size = 0;
    // v4
    Block mac{};
    bool mac_ok = false;
    // v5 / v6
    Block iv{};  // IV_q
    Block x{};   // D_K(IV_q)
    bool padding_ok = false;
    Bytes plaintext;  // the 240 decrypted bytes (base request + padding)
    /// True for the encrypted envelopes (v5 and later).
    bool encrypted() const { return version.major >= 5; }
};

/// Decodes (and for v5/v6 decrypts) a KMS request message. Unsupported versions are decoded with the
/// envelope of the nearest real version (majors above 6 as v6) so their fields can be shown.
Result<DecodedRequest> decode_request(ByteView message, std::size_t base_offset = 0);
/// Checks that concern the request alone (v4 MAC, v5/v6 padding, supported version).
Verdict verify_request(const DecodedRequest& request);

/// A decoded KMS response.
struct DecodedResponse {
    Version version;
    BaseResponse base;
    std::size_t message_size = 0;
    std::size_t body_size = 0;  // plaintext body without PKCS#7 padding (v5/v6)
    // v4
    Block mac{};
    bool mac_ok = false;
    // v5 / v6
    Block iv{};  // IV_r
    bool padding_ok = false;
    Bytes plaintext;  // decrypted bytes including padding
    Block random_xored_ivs{};
    std::array<std::uint8_t, 32> hash{};
    std::optional<HwId> hwid;  // v6
    Block xored_ivs{};         // v6
    Block hmac{};              // v6
    bool hmac_ok = false;      // v6, keyed by the echoed ClientTime
    /// True for the encrypted envelopes (v5 and later).
    bool encrypted() const { return version.major >= 5; }
};

/// Decodes (and for v5/v6 decrypts) a KMS response message.
Result<DecodedResponse> decode_response(ByteView message, std::size_t base_offset = 0);
/// The size a well-formed response with this version and PIDSize must have.
std::size_t expected_response_size(Version v, std::uint32_t pid_size);
/// Runs every client-side check of the exchange, including the request's own checks.
Verdict verify_exchange(const DecodedRequest& request, const DecodedResponse& response);

/// What the server puts into a response.
struct ResponseFields {
    std::string epid;
    std::uint32_t count = 0;
    std::uint32_t activation_interval = 120;
    std::uint32_t renewal_interval = 10080;
    HwId hwid = kVlmcsdDefaultHwId;
};

/// The random values of a v5/v6 response: S (server random) and, for v6, IV_r.
struct ResponseRandom {
    Block s{};
    Block iv{};
};

/// Builds the KMS response message for a decoded request with the given random values.
Bytes build_response_message(const DecodedRequest& request, const ResponseFields& fields, const ResponseRandom& rnd);
/// Builds the KMS response message drawing S and IV_r (v6: different from IV_q) from `rng`.
Bytes build_response_message(const DecodedRequest& request, const ResponseFields& fields, RandomSource& rng);
/// The random values a recorded server used for a response (S = RandomXoredIVs xor X, IV_r from the
/// wire), so that the same response can be rebuilt byte for byte (kms-replay check, tests).
ResponseRandom recorded_random(const DecodedRequest& request, const DecodedResponse& response);
/// Builds a KMS request message (v4: MAC appended; v5/v6: encrypted with IV `iv`).
Bytes build_request_message(const BaseRequest& base, const Block& iv);
/// Builds a KMS request message with a random IV.
Bytes build_request_message(const BaseRequest& base, RandomSource& rng);

}  // namespace kmscope::kms
