// The bridge between Wireshark and the kmscope core. Everything here is plain data: the dissector
// copies a stub out of its tvb, hands the bytes to one of these noexcept functions, and gets back a
// view whose strings and buffers live in a wmem scope. No C++ object with a destructor ever sits in
// a stack frame that calls a tvb accessor (Wireshark's exceptions are longjmp, and skip destructors).
#pragma once

#include <epan/wmem_scopes.h>
#include <glib.h>

#include <cstddef>
#include <cstdint>

#include "kmscope/kms.hpp"

namespace kmsdiss {

inline constexpr int kMaxItems = 16;

/// What a caller needs beyond the Info column, the decrypted data sources, the verdict, the expert infos and
/// the fingerprint (always computed: Wireshark records expert infos on the first pass, without a tree, for its
/// status bar); the bridge skips the rest (most frames of a summary run need neither).
enum Want : unsigned {
    kWantTree = 1u << 0,     // items seen only in a tree: ePID parts, the expected value of a bad MAC/hash/HMAC
    kWantTapText = 1u << 1,  // texts for the kms tap: CMID text, license status name, verdict text
};

/// The status of a MAC, hash or HMAC, with Wireshark's checksum values (proto_checksum_enum_e).
enum CheckStatus : guint8 {
    kCheckBad = 0,         // PROTO_CHECKSUM_E_BAD
    kCheckGood = 1,        // PROTO_CHECKSUM_E_GOOD
    kCheckUnverified = 2,  // PROTO_CHECKSUM_E_UNVERIFIED: the request, which it depends on, was not seen
};

/// Failed checks (kms::Check values) in verdict order: what a response frame keeps across passes.
struct CheckList {
    guint8 n;
    guint8 code[kMaxItems];
};

/// A GUID field with its product-table name.
struct GuidView {
    guint8 wire[16];
    const char* name;  // product name, or the GUID text when unknown (NULL for GUIDs that name no product)
    bool known;
};

/// A FILETIME as Unix seconds and nanoseconds.
struct TimeView {
    gint64 secs;
    gint32 nsecs;
};

/// A list of short texts (failed check names with their descriptions, anomalies, tells).
struct TextList {
    int n;
    const char* name[kMaxItems];
    const char* text[kMaxItems];
    bool is_count[kMaxItems];  // the failed check is "count" (its own expert info)
};

/// Everything the dissector shows for a request stub.
struct RequestView {
    const char* error;   // the stub or message could not be decoded (text from the core)
    guint32 msg_offset;  // KMS message offset within the stub
    guint32 msg_len;     // KMS message length (0 when the stub framing failed)
    guint32 trailing;    // bytes after the message in the stub
    bool have_version;
    guint16 major, minor;
    bool decoded;          // the base request is available
    bool encrypted;        // v5/v6 envelope
    bool decrypt_skipped;  // v5/v6 but decryption is off
    guint8 iv[16];
    guint8 mac[16];
    guint8 mac_status;      // v4: CheckStatus of the MAC
    bool has_mac_expected;  // v4, bad MAC, kWantTree: the MAC the request should carry
    guint8 mac_expected[16];
    const guint8* plaintext;  // v5/v6: 240 decrypted bytes (base request + padding)
    guint32 plaintext_len;
    guint32 vm_info, license_status, binding_expiration, n_policy;
    const char* license_status_name;
    GuidView app, sku, kms, cmid, previous_cmid;
    TimeView client_time;
    const char* workstation;
    const char* cmid_text;
    TextList failed;  // checks of the request alone (verify_request)
};

/// The ePID broken into its parts.
struct EpidView {
    bool parsed;
    guint32 platform, group, key_id, channel, lcid, build;
    TimeView date;          // activation day (UTC midnight)
    const char* date_iso;   // the same as ISO 8601 "2022-10-04"
    const char* date_text;  // the same as Wireshark writes dates: "Oct 4, 2022"
    const char* day_year;   // the ePID's last part as sent: day of year and year, "2772022"
};

/// Everything the dissector shows for a response stub.
struct ResponseView {
    const char* error;
    bool is_hresult;  // NULL out pointer: the stub carries only an HRESULT
    guint32 hresult;
    const char* hresult_name;  // "" when unknown
    guint32 msg_offset, msg_len;
    bool have_version;
    guint16 major, minor;
    bool decoded;
    bool encrypted;
    bool decrypt_skipped;
    guint8 iv[16];
    guint8 mac[16];
    const guint8* plaintext;  // v5/v6: decrypted bytes including padding
    guint32 plaintext_len;
    kmscope::kms::layout::ResponseLayout layout;  // offsets within the base response / body
    guint32 pid_size;
    const char* epid;
    EpidView epid_parts;
    guint8 cmid[16];
    TimeView client_time;
    guint32 count, activation_interval, renewal_interval;
    guint8 random_xored_ivs[16], hash[32], hwid[8], xored_ivs[16], hmac[16];
    bool has_hwid;
    // MAC (v4), hash (v5/v6) and HMAC (v6) statuses (CheckStatus) and, when bad and kWantTree, what they
    // should be (the hash needs the request).
    guint8 mac_status, hash_status, hmac_status;
    bool has_mac_expected, has_hash_expected, has_hmac_expected;
    guint8 mac_expected[16], hash_expected[32], hmac_expected[16];
    TextList anomalies;         // response stub framing deviations (core's parse_response_stub)
    TextList header_anomalies;  // response header deviations (core's rpc::response_header_anomalies)
    // Verification (only when the request was seen, or from a verdict kept by an earlier pass).
    bool verified;
    bool valid;
    CheckList checks;     // the failed checks
    TextList failed;      // the same with names and descriptions
    const char* verdict;  // kWantTapText only: "ok", "FAIL hash ...", "HRESULT 0x... NAME", "unverified"
    // Fingerprint of the server after this response (first pass only; NULL otherwise).
    const char* server_impl;
    TextList new_tells;
};

/// Decodes a request stub (NDR32 or NDR64). `stub` may be NULL when `len` is 0. `want` is a set of Want
/// bits. When `keep` is non-NULL and the request decodes, the bridge keeps the decoded request under that
/// key for the response of the same call (decode_response_stub), so that it is not decoded twice.
void decode_request_stub(wmem_allocator_t* scope, const guint8* stub, std::size_t len, bool ndr64, bool decrypt,
                         unsigned want, const void* keep, RequestView* out) noexcept;

/// The response PDU's header fields, read from the PDU in front of the stub, and the request's context id.
struct RpcHeaderView {
    bool present;  // false when the header could not be read (stub reassembled from fragments)
    guint8 flags;
    guint16 context_id;
    guint8 cancel_count;
    guint32 alloc_hint;
    bool has_request_context;
    guint16 request_context_id;
};

/// Everything decode_response_stub needs besides the stub.
struct ResponseInput {
    const guint8* stub;  // may be NULL when len is 0
    std::size_t len;
    bool ndr64;
    bool decrypt;
    unsigned want;  // Want bits
    // The request: the key given to decode_request_stub (its decoded copy, if still kept), else the stored
    // message, decoded again. Both NULL when the request was not seen.
    const void* request_key;
    const guint8* request_message;
    std::size_t request_len;
    // A verdict an earlier pass computed for this frame: used as is, the request is then not needed.
    const CheckList* kept_verdict;
    const RpcHeaderView* header;  // NULL when unknown
    // First pass only: the server whose fingerprint sees this exchange (NULL on later passes).
    const char* server_key;
    guint32 call_id;
};

/// Decodes a response stub and, when the request is known, verifies the exchange, the response header
/// checks included. Feeds the exchange to the fingerprint of `server_key` when it is set; the decoded request
/// kept under `request_key` is released then (the fingerprint is the last first-pass user).
void decode_response_stub(wmem_allocator_t* scope, const ResponseInput& in, ResponseView* out) noexcept;

/// True when `bytes` start with a DCE/RPC bind or alter_context that offers the KMS interface.
bool is_kms_bind(const guint8* bytes, std::size_t len) noexcept;

/// True when `bytes` start with a bind-type PDU header (bind, bind_ack, bind_nak, alter_context,
/// alter_context_resp) that is complete: the PDUs whose answers carry the server's bind-level tells.
bool starts_with_bind_pdu(const guint8* bytes, std::size_t len) noexcept;

/// Feeds one TCP segment of a KMS connection (first pass, capture order) to the core's conversation
/// model of that connection; the bind answers it yields go to the fingerprint of `server_key`.
void observe_segment(guint32 connection, const char* server_key, bool to_server, const guint8* bytes, std::size_t len,
                     gint64 secs, gint32 nsecs) noexcept;

/// One DCE/RPC PDU found at the start of `bytes` (for connections whose bind was not captured).
struct PduView {
    bool ok;              // a complete, valid PDU header and body
    guint8 ptype;         // 0 request, 2 response, ...
    guint32 frag_length;  // bytes of the PDU
    guint32 call_id;
    guint16 opnum;        // requests
    guint32 stub_offset;  // within the PDU
    guint32 stub_length;
    int ndr;  // 32 or 64: the core's NDR inference from the stub's framing (a request's must hold a v4-v6
              // KMS message), else 0
};

/// Parses the PDU at the start of `bytes`; for requests and responses says which NDR (if any) frames the
/// stub as a KMS message (requests: a supported KMS version; responses: a valid response stub).
void parse_pdu_view(const guint8* bytes, std::size_t len, PduView* out) noexcept;

/// The names and descriptions of the failed checks of a verdict (e.g. one kept by an earlier pass).
void check_names(const CheckList& checks, TextList* out) noexcept;

/// Forgets what the bridge kept for the capture file (fingerprints, connections, decoded requests): Wireshark's
/// cleanup routine, when the file is closed.
void forget_capture_file() noexcept;

/// The KMS interface as the core defines it, for the registration with DCE/RPC.
struct InterfaceView {
    guint8 uuid[16];  // wire bytes (Microsoft layout)
    guint16 version;  // major version
};
InterfaceView kms_interface_view() noexcept;

/// Names for value strings: license status 0..6 and the HRESULTs / NCA codes the core knows.
const char* license_status_text(guint32 status) noexcept;
const char* hresult_text(guint32 hr) noexcept;

}  // namespace kmsdiss
