// packet-kms.cpp: Wireshark plugin (4.0, 4.4, 4.6) for Microsoft's KMS activation protocol (v4/v5/v6 over
// DCE/RPC). Version differences of Wireshark's API live in ws_compat.hpp.
//
// The DCE/RPC dissector handles bind, alter_context, reassembly and call matching; we register as the
// subdissector of interface 51c82175-844e-4750-b0d8-ec255555bc06 v1.0, opnum 0 RequestActivation.
// Decoding, decryption and verification are the kmscope core's (through kms_bridge); this file only
// presents the results. Rules that keep tshark safe:
//   * the functions that touch a tvb hold no C++ object with a destructor (tvb errors are longjmp);
//   * the stub is copied out with tvb_memdup, decoded by noexcept bridge calls into wmem memory;
//   * no C++ exception can leave the bridge.
#include <epan/column-info.h>
#include <epan/conversation.h>
#include <epan/dissectors/packet-dcerpc.h>
#include <epan/expert.h>
#include <epan/packet.h>
#include <epan/prefs.h>
#include <epan/proto_data.h>
#include <epan/tap.h>
#include <epan/to_str.h>
#include <glib.h>
#include <ws_version.h>

#include <cstdint>
#include <cstring>
#include <ctime>
#include <string>

#include "kms_bridge.hpp"
#include "kms_stats.hpp"
#include "kmscope/bytes.hpp"
#include "kmscope/dcerpc.hpp"
#include "kmscope/kms.hpp"
#include "kmscope/ndr.hpp"
#include "kmscope/status.hpp"
#include "kmscope/version.hpp"
#include "ws_compat.hpp"

// The project's version, which tshark -G plugins shows.
extern "C" WS_DLL_PUBLIC_DEF const gchar plugin_version[] = KMSCOPE_VERSION;
extern "C" WS_DLL_PUBLIC_DEF const int plugin_want_major = WIRESHARK_VERSION_MAJOR;
extern "C" WS_DLL_PUBLIC_DEF const int plugin_want_minor = WIRESHARK_VERSION_MINOR;
extern "C" WS_DLL_PUBLIC_DEF void plugin_register(void);
// The plugin's type for `tshark -G plugins` (asked from 4.4 on; unused by 4.0, see ws_compat.hpp).
extern "C" WS_DLL_PUBLIC_DEF std::uint32_t plugin_describe(void);

namespace {

namespace layout = kmscope::kms::layout;
namespace rpc = kmscope::rpc;
using kmsdiss::KmsTapInfo;
using kmsdiss::RequestView;
using kmsdiss::ResponseView;

constexpr guint kDefaultPort = 1688;
constexpr gint64 kMaxClockSkewSeconds = 4 * 3600;  // a genuine host refuses more (docs/protocol.md §11.1)

int proto_kms = -1;
int proto_kms_tcp = -1;  // the TCP-level helper (heuristic, port and Decode As entry)
int kms_tap = -1;

int hf_kms_opnum = -1;
int hf_kms_req = -1;
int hf_kms_resp = -1;
int hf_kms_message_size = -1;
int hf_kms_version_major = -1;
int hf_kms_version_minor = -1;
int hf_kms_req_vm_info = -1;
int hf_kms_req_license_status = -1;
int hf_kms_req_binding_expiration = -1;
int hf_kms_req_app_id = -1;
int hf_kms_req_sku_id = -1;
int hf_kms_req_kms_id = -1;
int hf_kms_req_cmid = -1;
int hf_kms_req_n_policy = -1;
int hf_kms_req_client_time = -1;
int hf_kms_req_previous_cmid = -1;
int hf_kms_req_workstation = -1;
int hf_kms_resp_pid_size = -1;
int hf_kms_resp_epid = -1;
int hf_kms_resp_epid_platform = -1;
int hf_kms_resp_epid_group = -1;
int hf_kms_resp_epid_key_id = -1;
int hf_kms_resp_epid_channel = -1;
int hf_kms_resp_epid_lcid = -1;
int hf_kms_resp_epid_build = -1;
int hf_kms_resp_epid_date = -1;
int hf_kms_resp_epid_day_year = -1;
int hf_kms_resp_cmid = -1;
int hf_kms_resp_client_time = -1;
int hf_kms_resp_count = -1;
int hf_kms_resp_activation_interval = -1;
int hf_kms_resp_renewal_interval = -1;
int hf_kms_resp_random_xored_ivs = -1;
int hf_kms_resp_xored_ivs = -1;
int hf_kms_resp_hwid = -1;
int hf_kms_hresult = -1;
int hf_kms_iv = -1;
int hf_kms_mac = -1;
int hf_kms_mac_status = -1;
int hf_kms_mac_expected = -1;
int hf_kms_hash = -1;
int hf_kms_hash_status = -1;
int hf_kms_hash_expected = -1;
int hf_kms_hmac = -1;
int hf_kms_hmac_status = -1;
int hf_kms_hmac_expected = -1;
int hf_kms_ciphertext = -1;
int hf_kms_decrypted = -1;
int hf_kms_padding = -1;
int hf_kms_application = -1;
int hf_kms_product = -1;
int hf_kms_kms_product = -1;
int hf_kms_valid = -1;
int hf_kms_verdict_failed = -1;
int hf_kms_server_impl = -1;
int hf_kms_request_in = -1;
int hf_kms_response_in = -1;
int hf_kms_time = -1;

// Former names, kept as aliases: a hidden item with the old name and the same value next to each item of the new
// name (Wireshark 4.0 to 4.6 have no field alias API; proto_register_alias renames whole protocols only).
int hf_alias_request = -1;
int hf_alias_response = -1;
int hf_alias_epid_platform = -1;
int hf_alias_epid_group = -1;
int hf_alias_epid_key_id = -1;
int hf_alias_epid_channel = -1;
int hf_alias_epid_lcid = -1;
int hf_alias_epid_build = -1;
int hf_alias_epid_date = -1;
int hf_alias_failed_check = -1;

gint ett_kms = -1;
gint ett_kms_message = -1;
gint ett_kms_epid = -1;
gint ett_kms_verdict = -1;
gint ett_kms_decrypted = -1;

expert_field ei_kms_check_failed = EI_INIT;
expert_field ei_kms_malformed = EI_INIT;
expert_field ei_kms_truncated = EI_INIT;
expert_field ei_kms_hresult = EI_INIT;
expert_field ei_kms_count_low = EI_INIT;
expert_field ei_kms_clock_skew = EI_INIT;
expert_field ei_kms_emulator = EI_INIT;
expert_field ei_kms_unknown_product = EI_INIT;
// One expert info per kind of RPC anomaly (rpc::RpcAnomaly), kms.rpc.<name>, registered from the core's table.
expert_field ei_kms_rpc[rpc::kRpcAnomalyKinds];
expert_field ei_kms_unverified = EI_INIT;
expert_field ei_kms_trailing = EI_INIT;
expert_field ei_kms_midstream = EI_INIT;

wscompat::pref_bool kms_decrypt = true;
guint kms_tcp_port = kDefaultPort;
guint kms_registered_port = 0;
dissector_handle_t dcerpc_tcp_handle = nullptr;
dissector_handle_t kms_tcp_handle = nullptr;

// Value strings are filled from the core's names at registration.
value_string license_status_vals[8];
value_string hresult_vals[16];
const value_string vm_info_vals[] = {{0, "Physical machine"}, {1, "Virtual machine"}, {0, nullptr}};

/// The request of a call, kept for its response (file scope). Its address is also the key under which the
/// bridge keeps the decoded request until the response takes it.
struct StoredRequest {
    guint8* message;
    guint32 len;
    bool has_context_id;  // the request PDU header was readable
    guint16 context_id;
    // The exchange's verdict, set when the response is first dissected: later passes over the request frame
    // (Wireshark, tshark -2) mark the request of a failed exchange too.
    bool verified;
    kmsdiss::CheckList verdict;
};

/// First-pass results of a response frame, computed once: the fingerprint depends on what came before, and
/// the verdict needs the request (kept so that later passes, e.g. Wireshark re-dissecting, skip the request
/// and the verification).
struct StoredResponse {
    const char* server_impl;  // a string literal from the core; NULL when the fingerprint did not run
    int n_tells;
    const char** tells;  // n_tells texts (file scope)
    bool verified;
    kmsdiss::CheckList verdict;
};

void dissect_midstream(tvbuff_t* tvb, packet_info* pinfo, proto_tree* tree, conversation_t* conv);

/// What the bridge must compute beyond what every pass needs (kmsdiss::Want bits). Expert infos are always
/// computed: Wireshark records them on the first pass, which has no tree, for the status bar's severity and
/// the Expert column; the ePID parts and the expected values of bad checks only show in a tree, the tap texts
/// only to a tap listener.
unsigned wants(proto_tree* tree) {
    unsigned want = 0;
    if (tree) want |= kmsdiss::kWantTree;
    if (have_tap_listener(kms_tap)) want |= kmsdiss::kWantTapText;
    return want;
}

/// What DCE/RPC (or the mid-stream decoder) hands to the "kms" dissector with a stub.
struct KmsCall {
    dcerpc_info* di;
    bool is_request;
    bool midstream;  // no bind captured: DCE/RPC did not pair the call, so it shows no request/response links
};

dissector_handle_t kms_handle = nullptr;

/// Hides an item (a former field name kept as an alias, or a link DCE/RPC already shows).
void hide(proto_item* it) {
    proto_item_set_hidden(it);
}

void generated(proto_item* it) {
    proto_item_set_generated(it);
}

// ---- the DCE/RPC header in front of a stub ------------------------------------------------------------

// The sizes, flags and readers are the core's (kmscope/dcerpc.hpp, kmscope/bytes.hpp); the offsets of the fields
// read here are those of the PDU layouts (docs/protocol.md §2).

/// Copies the `size` bytes in front of the stub at `offset` of `tvb`, as received: DCE/RPC hands a subdissector
/// a slice of the PDU (a subset of the TCP payload, or of TCP's reassembled segment), so the PDU header lies
/// just before it in the same data source. A stub reassembled from DCE/RPC fragments is a new buffer without
/// the header: false then. `stub` holds the first `stub_len` captured stub bytes, compared to make sure.
bool bytes_before_stub(tvbuff_t* tvb, int offset, const guint8* stub, int stub_len, std::size_t size, guint8* out) {
    tvbuff_t* ds = tvb_get_ds_tvb(tvb);
    if (!ds || !stub || stub_len <= 0) return false;
    const gint n = static_cast<gint>(size);
    const gint at = tvb_raw_offset(tvb) + offset;
    const int check = stub_len < 16 ? stub_len : 16;
    const gint ds_len = static_cast<gint>(tvb_captured_length(ds));
    if (at < n || at + check > ds_len) return false;
    guint8 head[16];
    tvb_memcpy(ds, head, at, check);
    if (std::memcmp(head, stub, static_cast<std::size_t>(check)) != 0) return false;
    tvb_memcpy(ds, out, at - n, n);
    return true;
}

/// True when `h` is a little-endian connection-oriented DCE/RPC header of type `ptype` for `call_id` (the core
/// decodes little-endian PDUs only).
bool is_header_of(const guint8* h, rpc::PduType ptype, guint32 call_id) {
    return h[0] == rpc::kVersion && h[2] == static_cast<guint8>(ptype) && (h[4] & rpc::kDrepLittleEndian) != 0 &&
           kmscope::load_u32le(h + 12) == call_id;
}

/// The context id of the request PDU in front of a request stub (with or without an object UUID).
bool request_context_id(tvbuff_t* tvb, int offset, const guint8* stub, int stub_len, guint32 call_id,
                        guint16* context_id) {
    // With PFC_OBJECT_UUID set, the object's GUID lies between the request header and the stub.
    constexpr std::size_t kWithObject = rpc::kRequestHeaderSize + sizeof(kmscope::Guid::wire);
    guint8 h[kWithObject];
    for (const bool object : {false, true}) {
        if (bytes_before_stub(tvb, offset, stub, stub_len, object ? kWithObject : rpc::kRequestHeaderSize, h) &&
            is_header_of(h, rpc::PduType::Request, call_id) && ((h[3] & rpc::flag::kObjectUuid) != 0) == object) {
            *context_id = kmscope::load_u16le(h + rpc::kHeaderSize + 4);
            return true;
        }
    }
    return false;
}

/// The response header fields in front of a response stub, with the request's context id when known.
kmsdiss::RpcHeaderView response_header(tvbuff_t* tvb, int offset, const guint8* stub, int stub_len, guint32 call_id,
                                       const StoredRequest* sr) {
    kmsdiss::RpcHeaderView v{};
    guint8 h[rpc::kResponseHeaderSize];
    if (!bytes_before_stub(tvb, offset, stub, stub_len, rpc::kResponseHeaderSize, h) ||
        !is_header_of(h, rpc::PduType::Response, call_id))
        return v;
    v.present = true;
    v.flags = h[3];
    v.alloc_hint = kmscope::load_u32le(h + rpc::kHeaderSize);
    v.context_id = kmscope::load_u16le(h + rpc::kHeaderSize + 4);
    v.cancel_count = h[rpc::kHeaderSize + 6];
    if (sr && sr->has_context_id) {
        v.has_request_context = true;
        v.request_context_id = sr->context_id;
    }
    return v;
}

/// Per TCP connection: which side is the server (the side the bind was sent to).
struct KmsConnection {
    address server;
    guint32 server_port;
    const char* server_key;
};

e_guid_t to_e_guid(const guint8* w) {
    e_guid_t g;
    g.data1 = kmscope::load_u32le(w);
    g.data2 = kmscope::load_u16le(w + 4);
    g.data3 = kmscope::load_u16le(w + 6);
    std::memcpy(g.data4, w + 8, 8);
    return g;
}

nstime_t to_nstime(const kmsdiss::TimeView& t) {
    nstime_t n;
    n.secs = static_cast<time_t>(t.secs);
    n.nsecs = t.nsecs;
    return n;
}

void add_guid(proto_tree* tree, int hf, tvbuff_t* tvb, int off, const kmsdiss::GuidView& g) {
    e_guid_t eg = to_e_guid(g.wire);
    proto_tree_add_guid(tree, hf, tvb, off, 16, &eg);
}

void add_product(proto_tree* tree, packet_info* pinfo, int hf, tvbuff_t* tvb, int off, const kmsdiss::GuidView& g,
                 const char* what) {
    proto_item* it = proto_tree_add_string(tree, hf, tvb, off, 16, g.name);
    proto_item_set_generated(it);
    if (!g.known) expert_add_info_format(pinfo, it, &ei_kms_unknown_product, "Unknown %s GUID %s", what, g.name);
}

void add_bytes(proto_tree* tree, int hf, tvbuff_t* tvb, int off, const guint8* bytes, int len) {
    proto_tree_add_bytes(tree, hf, tvb, off, len, bytes);
}

/// One item per failed check (kms.verdict.failed, alias kms.failed_check); with `experts`, each is also an expert
/// info (a request frame's later pass repeats the exchange's verdict without its expert infos, which the
/// response frame carries).
void add_failed_checks(proto_tree* tree, packet_info* pinfo, tvbuff_t* tvb, int off, int len,
                       const kmsdiss::TextList& failed, bool experts) {
    for (int i = 0; i < failed.n; ++i) {
        proto_item* it = proto_tree_add_string(tree, hf_kms_verdict_failed, tvb, off, len, failed.name[i]);
        generated(it);
        hide(proto_tree_add_string(tree, hf_alias_failed_check, tvb, off, len, failed.name[i]));
        if (!experts) continue;
        if (failed.is_count[i])
            expert_add_info_format(pinfo, it, &ei_kms_count_low, "Count below the request's N policy: %s",
                                   failed.text[i]);
        else
            expert_add_info_format(pinfo, it, &ei_kms_check_failed, "Verification failed (%s): %s", failed.name[i],
                                   failed.text[i]);
    }
}

/// Hex text of `len` bytes (pinfo scope).
const char* hex(packet_info* pinfo, const guint8* bytes, int len) {
    char* out = static_cast<char*>(wmem_alloc(pinfo->pool, static_cast<std::size_t>(2 * len + 1)));
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < len; ++i) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 0xf];
    }
    out[2 * len] = '\0';
    return out;
}

/// A MAC, hash or HMAC the way Wireshark presents a checksum (proto_tree_add_checksum, which 4.0 offers for
/// integers only): "[correct]", "[incorrect, should be ...]" or "[unverified]" after the value, a generated
/// status field with Wireshark's checksum values and, when bad and known, the expected value as a field.
void add_check_value(proto_tree* tree, packet_info* pinfo, tvbuff_t* tvb, int off, int len, int hf, int hf_status,
                     int hf_expected, const guint8* value, guint8 status, const guint8* expected) {
    proto_item* it = proto_tree_add_bytes(tree, hf, tvb, off, len, value);
    if (status == kmsdiss::kCheckGood)
        proto_item_append_text(it, " [correct]");
    else if (status == kmsdiss::kCheckBad && expected)
        proto_item_append_text(it, " [incorrect, should be %s]", hex(pinfo, expected, len));
    else if (status == kmsdiss::kCheckBad)
        proto_item_append_text(it, " [incorrect]");
    else
        proto_item_append_text(it, " [unverified]");
    generated(proto_tree_add_uint(tree, hf_status, tvb, off, len, status));
    if (status == kmsdiss::kCheckBad && expected)
        generated(proto_tree_add_bytes(tree, hf_expected, tvb, off, len, expected));
}

bool is_ndr64(dcerpc_info* di) {
    return di->call_data && (di->call_data->flags & DCERPC_IS_NDR64) != 0;
}

/// The base request fields (section 4), at layout offsets of `tvb` starting at `base`.
void add_base_request(proto_tree* tree, packet_info* pinfo, tvbuff_t* tvb, int base, const RequestView* rv) {
    proto_tree_add_uint(tree, hf_kms_req_vm_info, tvb, base + static_cast<int>(layout::kReqVmInfo), 4, rv->vm_info);
    proto_tree_add_uint(tree, hf_kms_req_license_status, tvb, base + static_cast<int>(layout::kReqLicenseStatus), 4,
                        rv->license_status);
    proto_tree_add_uint(tree, hf_kms_req_binding_expiration, tvb,
                        base + static_cast<int>(layout::kReqBindingExpiration), 4, rv->binding_expiration);
    add_guid(tree, hf_kms_req_app_id, tvb, base + static_cast<int>(layout::kReqAppId), rv->app);
    add_product(tree, pinfo, hf_kms_application, tvb, base + static_cast<int>(layout::kReqAppId), rv->app,
                "application");
    add_guid(tree, hf_kms_req_sku_id, tvb, base + static_cast<int>(layout::kReqSkuId), rv->sku);
    add_product(tree, pinfo, hf_kms_product, tvb, base + static_cast<int>(layout::kReqSkuId), rv->sku, "SKU");
    add_guid(tree, hf_kms_req_kms_id, tvb, base + static_cast<int>(layout::kReqKmsId), rv->kms);
    add_product(tree, pinfo, hf_kms_kms_product, tvb, base + static_cast<int>(layout::kReqKmsId), rv->kms, "KMS");
    add_guid(tree, hf_kms_req_cmid, tvb, base + static_cast<int>(layout::kReqCmid), rv->cmid);
    proto_tree_add_uint(tree, hf_kms_req_n_policy, tvb, base + static_cast<int>(layout::kReqNPolicy), 4, rv->n_policy);
    nstime_t ct = to_nstime(rv->client_time);
    proto_item* ti =
        proto_tree_add_time(tree, hf_kms_req_client_time, tvb, base + static_cast<int>(layout::kReqClientTime), 8, &ct);
    gint64 skew = static_cast<gint64>(pinfo->abs_ts.secs) - rv->client_time.secs;
    if (skew > kMaxClockSkewSeconds || skew < -kMaxClockSkewSeconds)
        expert_add_info_format(pinfo, ti, &ei_kms_clock_skew,
                               "Client time is %" G_GINT64_FORMAT " s %s the capture time (more than 4 h)",
                               skew > 0 ? skew : -skew, skew > 0 ? "behind" : "ahead of");
    add_guid(tree, hf_kms_req_previous_cmid, tvb, base + static_cast<int>(layout::kReqPreviousCmid), rv->previous_cmid);
    proto_tree_add_string(tree, hf_kms_req_workstation, tvb, base + static_cast<int>(layout::kReqWorkstation),
                          static_cast<int>(kmscope::kms::kWorkstationBytes), rv->workstation);
}

void add_version(proto_tree* tree, tvbuff_t* tvb, int msg, guint16 major, guint16 minor) {
    proto_tree_add_uint(tree, hf_kms_version_minor, tvb, msg + static_cast<int>(layout::kEnvVersion), 2, minor);
    proto_tree_add_uint(tree, hf_kms_version_major, tvb, msg + static_cast<int>(layout::kEnvVersion) + 2, 2, major);
}

/// The v5/v6 envelope as received: IV and encrypted data. Shown whether or not the message is decrypted, so
/// that the ciphertext stays a field (with its bytes) when decryption is off.
void add_envelope(proto_tree* tree, tvbuff_t* tvb, int msg, guint32 msg_len, const guint8* iv) {
    add_bytes(tree, hf_kms_iv, tvb, msg + static_cast<int>(layout::kEnvIv), iv, 16);
    if (msg_len > layout::kEnvCiphertext)
        proto_tree_add_item(tree, hf_kms_ciphertext, tvb, msg + static_cast<int>(layout::kEnvCiphertext),
                            static_cast<int>(msg_len - layout::kEnvCiphertext), ENC_NA);
}

/// The decrypted plaintext as a data source of its own (a bytes tab) and the subtree its fields go under.
proto_tree* add_decrypted(proto_tree* tree, packet_info* pinfo, tvbuff_t* tvb, const guint8* plaintext, guint32 len,
                          const char* source, tvbuff_t** ptvb) {
    *ptvb = tvb_new_child_real_data(tvb, plaintext, len, len);
    add_new_data_source(pinfo, *ptvb, source);
    proto_item* it = proto_tree_add_item(tree, hf_kms_decrypted, *ptvb, 0, static_cast<int>(len), ENC_NA);
    return proto_item_add_subtree(it, ett_kms_decrypted);
}

/// The message item (kms.req / kms.resp) with its alias (kms.request / kms.response).
proto_tree* add_message(proto_tree* tree, int hf, int hf_alias, tvbuff_t* tvb, int offset, int len, proto_item** mi) {
    *mi = proto_tree_add_item(tree, hf, tvb, offset, len, ENC_NA);
    hide(proto_tree_add_item(tree, hf_alias, tvb, offset, len, ENC_NA));
    return proto_item_add_subtree(*mi, ett_kms_message);
}

/// A request/response link. DCE/RPC puts its own ("Request in frame", "Response in frame") into the KMS tree
/// when it paired the call; ours then stays filterable (kms.request_in, kms.response_in) but hidden, so that
/// the tree shows one link per direction. Mid-stream, ours is the only one.
void add_link(proto_tree* tree, int hf, tvbuff_t* tvb, guint32 frame, const KmsCall* call) {
    proto_item* it = proto_tree_add_uint(tree, hf, tvb, 0, 0, frame);
    generated(it);
    if (!call->midstream) hide(it);
}

/// The record of a call's request for its response: the first request of a call, on the first pass.
StoredRequest* new_stored_request(packet_info* pinfo, const dcerpc_info* di) {
    if (PINFO_FD_VISITED(pinfo) || !di->call_data || di->call_data->se_data) return nullptr;
    return wmem_new0(wmem_file_scope(), StoredRequest);
}

/// Attaches the request message and its PDU's context id to the call (when the stub framed a message).
void store_request(StoredRequest* sr, tvbuff_t* tvb, int offset, const guint8* stub, gint captured, dcerpc_info* di,
                   const RequestView* rv) {
    if (!sr || rv->msg_len == 0) return;
    sr->message = static_cast<guint8*>(wmem_memdup(wmem_file_scope(), stub + rv->msg_offset, rv->msg_len));
    sr->len = rv->msg_len;
    sr->has_context_id = request_context_id(tvb, offset, stub, captured, di->call_id, &sr->context_id);
    di->call_data->se_data = sr;
}

void queue_request_tap(packet_info* pinfo, const RequestView* rv) {
    if (!have_tap_listener(kms_tap)) return;
    KmsTapInfo* ti = wmem_new0(pinfo->pool, KmsTapInfo);
    ti->is_request = true;
    ti->major = rv->major;
    ti->minor = rv->minor;
    if (rv->decoded) {
        ti->product = rv->sku.name;
        ti->license_status = rv->license_status_name;
        ti->cmid = rv->cmid_text;
        ti->workstation = rv->workstation;
    }
    tap_queue_packet(kms_tap, pinfo, ti);
}

/// On a later pass over a request frame whose response was dissected: the exchange's verdict (kms.valid and
/// the failed checks that the request's own checks, `own`, do not already list; the expert infos stay on the
/// response frame). True when the exchange failed.
bool add_exchange_verdict(proto_tree* tree, packet_info* pinfo, tvbuff_t* tvb, const dcerpc_info* di,
                          const kmsdiss::TextList& own) {
    const StoredRequest* sr = di->call_data ? static_cast<const StoredRequest*>(di->call_data->se_data) : nullptr;
    if (!PINFO_FD_VISITED(pinfo) || !sr || !sr->verified) return false;
    proto_item* vi = proto_tree_add_boolean(tree, hf_kms_valid, tvb, 0, 0, sr->verdict.n == 0);
    generated(vi);
    proto_item_append_text(vi, " (verdict of the exchange)");
    if (tree) {
        kmsdiss::TextList all{}, rest{};
        kmsdiss::check_names(sr->verdict, &all);
        for (int i = 0; i < all.n; ++i) {
            bool listed = false;
            for (int j = 0; j < own.n && !listed; ++j) listed = g_strcmp0(all.name[i], own.name[j]) == 0;
            if (listed) continue;
            rest.name[rest.n] = all.name[i];
            rest.text[rest.n] = all.text[i];
            rest.is_count[rest.n++] = all.is_count[i];
        }
        add_failed_checks(proto_item_add_subtree(vi, ett_kms_verdict), pinfo, tvb, 0, 0, rest, false);
    }
    return sr->verdict.n > 0;
}

int dissect_request(tvbuff_t* tvb, packet_info* pinfo, proto_tree* tree, const KmsCall* call) {
    dcerpc_info* di = call->di;
    const int offset = 0;
    const gint reported = tvb_reported_length(tvb);
    const gint captured = tvb_captured_length(tvb);
    guint8* stub = captured > 0 ? static_cast<guint8*>(tvb_memdup(pinfo->pool, tvb, offset, captured)) : nullptr;
    StoredRequest* sr = new_stored_request(pinfo, di);
    RequestView* rv = wmem_new0(pinfo->pool, RequestView);
    kmsdiss::decode_request_stub(pinfo->pool, stub, captured > 0 ? static_cast<std::size_t>(captured) : 0, is_ndr64(di),
                                 kms_decrypt, wants(tree), sr, rv);
    store_request(sr, tvb, offset, stub, captured, di, rv);

    const int msg = offset + static_cast<int>(rv->msg_offset);
    proto_item* mi = nullptr;
    proto_tree* mt = add_message(tree, hf_kms_req, hf_alias_request, tvb, offset, reported, &mi);
    if (rv->msg_len > 0) proto_tree_add_uint(mt, hf_kms_message_size, tvb, offset, 4, rv->msg_len);
    if (rv->have_version) add_version(mt, tvb, msg, rv->major, rv->minor);

    if (di->call_data && di->call_data->rep_frame)
        add_link(tree, hf_kms_response_in, tvb, di->call_data->rep_frame, call);
    const bool exchange_failed = add_exchange_verdict(tree, pinfo, tvb, di, rv->failed);

    if (rv->decoded) {
        if (rv->encrypted) {
            add_envelope(mt, tvb, msg, rv->msg_len, rv->iv);
            tvbuff_t* ptvb = nullptr;
            proto_tree* dt =
                add_decrypted(mt, pinfo, tvb, rv->plaintext, rv->plaintext_len, "Decrypted KMS request", &ptvb);
            add_base_request(dt, pinfo, ptvb, 0, rv);
            if (rv->plaintext_len > kmscope::kms::kBaseRequestSize)
                proto_tree_add_item(dt, hf_kms_padding, ptvb, static_cast<int>(kmscope::kms::kBaseRequestSize),
                                    static_cast<int>(rv->plaintext_len - kmscope::kms::kBaseRequestSize), ENC_NA);
        } else {
            add_base_request(mt, pinfo, tvb, msg, rv);
            add_check_value(mt, pinfo, tvb, msg + static_cast<int>(kmscope::kms::kBaseRequestSize),
                            static_cast<int>(layout::kMacSize), hf_kms_mac, hf_kms_mac_status, hf_kms_mac_expected,
                            rv->mac, rv->mac_status, rv->has_mac_expected ? rv->mac_expected : nullptr);
        }
        add_failed_checks(mt, pinfo, tvb, msg, static_cast<int>(rv->msg_len), rv->failed, true);
        col_add_fstr(pinfo->cinfo, COL_INFO, "KMS v%u request: %s from %s%s", rv->major, rv->sku.name,
                     rv->workstation[0] ? rv->workstation : "(no name)",
                     rv->failed.n > 0 || exchange_failed ? " [verification failed]" : "");
    } else if (rv->decrypt_skipped) {
        add_envelope(mt, tvb, msg, rv->msg_len, rv->iv);
        col_add_fstr(pinfo->cinfo, COL_INFO, "KMS v%u request (not decrypted)", rv->major);
    } else {
        expert_add_info_format(pinfo, mi, captured < reported ? &ei_kms_truncated : &ei_kms_malformed,
                               "Malformed KMS request: %s", rv->error ? rv->error : "undecodable");
        col_add_str(pinfo->cinfo, COL_INFO, "KMS request (malformed)");
    }
    if (rv->trailing > 0)
        expert_add_info_format(pinfo, mi, &ei_kms_trailing, "%u bytes after the KMS message in the request stub",
                               rv->trailing);

    queue_request_tap(pinfo, rv);

    // A stub cut short by the snapshot length: make the framework mark the frame malformed.
    if (captured < reported) tvb_ensure_bytes_exist(tvb, offset, reported);
    return reported;
}

void add_epid(proto_tree* tree, tvbuff_t* tvb, int off, int len, const ResponseView* pv) {
    proto_item* ei = proto_tree_add_string(tree, hf_kms_resp_epid, tvb, off, len, pv->epid);
    if (!pv->epid_parts.parsed) return;
    proto_tree* et = proto_item_add_subtree(ei, ett_kms_epid);
    const kmsdiss::EpidView& e = pv->epid_parts;
    const struct {
        int hf, alias;
        guint32 value;
    } parts[] = {
        {hf_kms_resp_epid_platform, hf_alias_epid_platform, e.platform},
        {hf_kms_resp_epid_group, hf_alias_epid_group, e.group},
        {hf_kms_resp_epid_key_id, hf_alias_epid_key_id, e.key_id},
        {hf_kms_resp_epid_channel, hf_alias_epid_channel, e.channel},
        {hf_kms_resp_epid_lcid, hf_alias_epid_lcid, e.lcid},
        {hf_kms_resp_epid_build, hf_alias_epid_build, e.build},
    };
    for (const auto& p : parts) {
        generated(proto_tree_add_uint(et, p.hf, tvb, off, len, p.value));
        hide(proto_tree_add_uint(et, p.alias, tvb, off, len, p.value));
    }
    // The activation day as a calendar date; -T fields gives its value, ISO 8601. The digits as sent stay a field.
    generated(
        proto_tree_add_string_format_value(et, hf_kms_resp_epid_date, tvb, off, len, e.date_iso, "%s", e.date_text));
    generated(proto_tree_add_string(et, hf_kms_resp_epid_day_year, tvb, off, len, e.day_year));
    nstime_t d = to_nstime(e.date);
    hide(proto_tree_add_time(et, hf_alias_epid_date, tvb, off, len, &d));
}

/// The base response (section 5) and, for v5/v6, the body trailer, at layout offsets from `base`.
void add_base_response(proto_tree* tree, packet_info* pinfo, tvbuff_t* tvb, int base, const ResponseView* pv) {
    const auto& l = pv->layout;
    proto_tree_add_uint(tree, hf_kms_resp_pid_size, tvb, base + static_cast<int>(l.pid_size), 4, pv->pid_size);
    add_epid(tree, tvb, base + static_cast<int>(l.epid), static_cast<int>(pv->pid_size), pv);
    e_guid_t cmid = to_e_guid(pv->cmid);
    proto_tree_add_guid(tree, hf_kms_resp_cmid, tvb, base + static_cast<int>(l.cmid), 16, &cmid);
    nstime_t ct = to_nstime(pv->client_time);
    proto_tree_add_time(tree, hf_kms_resp_client_time, tvb, base + static_cast<int>(l.client_time), 8, &ct);
    proto_tree_add_uint(tree, hf_kms_resp_count, tvb, base + static_cast<int>(l.count), 4, pv->count);
    proto_tree_add_uint(tree, hf_kms_resp_activation_interval, tvb, base + static_cast<int>(l.activation_interval), 4,
                        pv->activation_interval);
    proto_tree_add_uint(tree, hf_kms_resp_renewal_interval, tvb, base + static_cast<int>(l.renewal_interval), 4,
                        pv->renewal_interval);
    if (!pv->encrypted) return;
    add_bytes(tree, hf_kms_resp_random_xored_ivs, tvb, base + static_cast<int>(l.random_xored_ivs),
              pv->random_xored_ivs, 16);
    add_check_value(tree, pinfo, tvb, base + static_cast<int>(l.hash), 32, hf_kms_hash, hf_kms_hash_status,
                    hf_kms_hash_expected, pv->hash, pv->hash_status,
                    pv->has_hash_expected ? pv->hash_expected : nullptr);
    if (pv->has_hwid) {
        add_bytes(tree, hf_kms_resp_hwid, tvb, base + static_cast<int>(l.hwid), pv->hwid, 8);
        add_bytes(tree, hf_kms_resp_xored_ivs, tvb, base + static_cast<int>(l.xored_ivs), pv->xored_ivs, 16);
        add_check_value(tree, pinfo, tvb, base + static_cast<int>(l.hmac), 16, hf_kms_hmac, hf_kms_hmac_status,
                        hf_kms_hmac_expected, pv->hmac, pv->hmac_status,
                        pv->has_hmac_expected ? pv->hmac_expected : nullptr);
    }
}

/// The server whose fingerprint sees a response (first pass): the connection's server, as recorded when its
/// bind was seen (KMS-TCP); else this frame's sender.
const char* server_key_for(packet_info* pinfo, const dcerpc_info* di) {
    const KmsConnection* kc =
        di->conv ? static_cast<const KmsConnection*>(conversation_get_proto_data(di->conv, proto_kms_tcp)) : nullptr;
    return kc ? kc->server_key
              : wmem_strdup_printf(pinfo->pool, "%s:%u", address_to_str(pinfo->pool, &pinfo->src), pinfo->srcport);
}

/// Keeps a response frame's first-pass results (fingerprint, verdict) for later passes, and gives the verdict
/// to the request's record, for later passes over the request frame.
StoredResponse* store_response(packet_info* pinfo, guint32 call_id, StoredRequest* sr, const ResponseView* pv) {
    if (sr && pv->verified) {
        sr->verified = true;
        sr->verdict = pv->checks;
    }
    if (!pv->server_impl && !pv->verified) return nullptr;
    StoredResponse* stored = wmem_new0(wmem_file_scope(), StoredResponse);
    stored->server_impl = pv->server_impl;  // a string literal from the core
    if (pv->new_tells.n > 0) {
        stored->tells = wmem_alloc_array(wmem_file_scope(), const char*, pv->new_tells.n);
        for (int i = 0; i < pv->new_tells.n; ++i)
            stored->tells[stored->n_tells++] = wmem_strdup(wmem_file_scope(), pv->new_tells.text[i]);
    }
    stored->verified = pv->verified;
    stored->verdict = pv->checks;
    p_add_proto_data(wmem_file_scope(), pinfo, proto_kms, call_id, stored);
    return stored;
}

/// The expert info of the RPC anomaly kind named `name` (rpc::rpc_anomaly_name).
expert_field* rpc_anomaly_expert(const char* name) {
    for (std::size_t k = 0; k < rpc::kRpcAnomalyKinds; ++k)
        if (g_strcmp0(name, rpc::rpc_anomaly_name(rpc::kRpcAnomalies[k])) == 0) return &ei_kms_rpc[k];
    return &ei_kms_rpc[0];  // not reached: the bridge names every anomaly by its kind
}

void add_response_anomalies(packet_info* pinfo, proto_item* mi, const ResponseView* pv) {
    for (int i = 0; i < pv->header_anomalies.n; ++i)
        expert_add_info_format(pinfo, mi, rpc_anomaly_expert(pv->header_anomalies.name[i]), "RPC response header: %s",
                               pv->header_anomalies.text[i]);
    for (int i = 0; i < pv->anomalies.n; ++i)
        expert_add_info_format(pinfo, mi, rpc_anomaly_expert(pv->anomalies.name[i]), "RPC response stub: %s",
                               pv->anomalies.text[i]);
}

void queue_response_tap(packet_info* pinfo, const ResponseView* pv) {
    if (!have_tap_listener(kms_tap)) return;
    KmsTapInfo* ti = wmem_new0(pinfo->pool, KmsTapInfo);
    ti->is_request = false;
    ti->major = pv->major;
    ti->minor = pv->minor;
    ti->epid = pv->decoded ? pv->epid : nullptr;
    ti->verdict = pv->verdict;
    tap_queue_packet(kms_tap, pinfo, ti);
}

/// The tree items and Info column of a decoded response message.
void add_decoded_response(tvbuff_t* tvb, int offset, int msg, packet_info* pinfo, proto_tree* tree, proto_item* mi,
                          proto_tree* mt, const ResponseView* pv) {
    proto_tree_add_uint(mt, hf_kms_message_size, tvb, offset, 4, pv->msg_len);
    add_version(mt, tvb, msg, pv->major, pv->minor);
    if (pv->encrypted) {
        add_envelope(mt, tvb, msg, pv->msg_len, pv->iv);
        tvbuff_t* ptvb = nullptr;
        proto_tree* dt =
            add_decrypted(mt, pinfo, tvb, pv->plaintext, pv->plaintext_len, "Decrypted KMS response", &ptvb);
        add_base_response(dt, pinfo, ptvb, 0, pv);
        if (pv->plaintext_len > pv->layout.body_end)
            proto_tree_add_item(dt, hf_kms_padding, ptvb, static_cast<int>(pv->layout.body_end),
                                static_cast<int>(pv->plaintext_len - pv->layout.body_end), ENC_NA);
    } else {
        add_base_response(mt, pinfo, tvb, msg, pv);
        add_check_value(mt, pinfo, tvb, msg + static_cast<int>(pv->layout.base_end), static_cast<int>(layout::kMacSize),
                        hf_kms_mac, hf_kms_mac_status, hf_kms_mac_expected, pv->mac, pv->mac_status,
                        pv->has_mac_expected ? pv->mac_expected : nullptr);
    }
    if (pv->verified) {
        proto_item* vi = proto_tree_add_boolean(tree, hf_kms_valid, tvb, msg, static_cast<int>(pv->msg_len), pv->valid);
        generated(vi);
        proto_tree* vt = proto_item_add_subtree(vi, ett_kms_verdict);
        add_failed_checks(vt, pinfo, tvb, msg, static_cast<int>(pv->msg_len), pv->failed, true);
    } else {
        expert_add_info(pinfo, mi, &ei_kms_unverified);
    }
    col_add_fstr(pinfo->cinfo, COL_INFO, "KMS v%u response: count %u, ePID %s%s", pv->major, pv->count, pv->epid,
                 pv->verified && !pv->valid ? " [verification failed]" : "");
}

int dissect_response(tvbuff_t* tvb, packet_info* pinfo, proto_tree* tree, const KmsCall* call) {
    dcerpc_info* di = call->di;
    const int offset = 0;
    const gint reported = tvb_reported_length(tvb);
    const gint captured = tvb_captured_length(tvb);
    guint8* stub = captured > 0 ? static_cast<guint8*>(tvb_memdup(pinfo->pool, tvb, offset, captured)) : nullptr;
    StoredRequest* sr = di->call_data ? static_cast<StoredRequest*>(di->call_data->se_data) : nullptr;
    const bool first_pass = !PINFO_FD_VISITED(pinfo);
    // Computed once, on the first pass: the fingerprint depends on what came before, the verdict on the request.
    StoredResponse* stored =
        static_cast<StoredResponse*>(p_get_proto_data(wmem_file_scope(), pinfo, proto_kms, di->call_id));
    const kmsdiss::RpcHeaderView header = response_header(tvb, offset, stub, captured, di->call_id, sr);

    kmsdiss::ResponseInput in{};
    in.stub = stub;
    in.len = captured > 0 ? static_cast<std::size_t>(captured) : 0;
    in.ndr64 = is_ndr64(di);
    in.decrypt = kms_decrypt;
    in.want = wants(tree);
    in.request_key = sr;
    in.request_message = sr ? sr->message : nullptr;
    in.request_len = sr ? sr->len : 0;
    in.kept_verdict = stored && stored->verified ? &stored->verdict : nullptr;
    in.header = &header;
    in.server_key = first_pass ? server_key_for(pinfo, di) : nullptr;
    in.call_id = di->call_id;
    ResponseView* pv = wmem_new0(pinfo->pool, ResponseView);
    kmsdiss::decode_response_stub(pinfo->pool, in, pv);
    if (!stored && first_pass) stored = store_response(pinfo, di->call_id, sr, pv);

    const int msg = offset + static_cast<int>(pv->msg_offset);
    proto_item* mi = nullptr;
    proto_tree* mt = add_message(tree, hf_kms_resp, hf_alias_response, tvb, offset, reported, &mi);

    if (di->call_data && di->call_data->req_frame) {
        add_link(tree, hf_kms_request_in, tvb, di->call_data->req_frame, call);
        nstime_t delta;
        nstime_delta(&delta, &pinfo->abs_ts, &di->call_data->req_time);
        generated(proto_tree_add_time(tree, hf_kms_time, tvb, 0, 0, &delta));
    }
    add_response_anomalies(pinfo, mi, pv);

    if (pv->is_hresult || (pv->error == nullptr && pv->hresult != 0)) {
        proto_item* hi = proto_tree_add_uint(mt, hf_kms_hresult, tvb, offset + (reported >= 4 ? reported - 4 : 0),
                                             reported >= 4 ? 4 : 0, pv->hresult);
        expert_add_info_format(pinfo, hi, &ei_kms_hresult, "Server returned HRESULT 0x%08X%s%s", pv->hresult,
                               pv->hresult_name[0] ? " " : "", pv->hresult_name);
    }
    if (pv->is_hresult) {
        generated(proto_tree_add_boolean(tree, hf_kms_valid, tvb, 0, 0, FALSE));
        col_add_fstr(pinfo->cinfo, COL_INFO, "KMS response: HRESULT 0x%08X%s%s", pv->hresult,
                     pv->hresult_name[0] ? " " : "", pv->hresult_name);
    } else if (pv->decoded) {
        add_decoded_response(tvb, offset, msg, pinfo, tree, mi, mt, pv);
    } else if (pv->decrypt_skipped) {
        proto_tree_add_uint(mt, hf_kms_message_size, tvb, offset, 4, pv->msg_len);
        add_version(mt, tvb, msg, pv->major, pv->minor);
        add_envelope(mt, tvb, msg, pv->msg_len, pv->iv);
        col_add_fstr(pinfo->cinfo, COL_INFO, "KMS v%u response (not decrypted)", pv->major);
    } else {
        if (pv->have_version) add_version(mt, tvb, msg, pv->major, pv->minor);
        expert_add_info_format(pinfo, mi, captured < reported ? &ei_kms_truncated : &ei_kms_malformed,
                               "Malformed KMS response: %s", pv->error ? pv->error : "undecodable");
        col_add_str(pinfo->cinfo, COL_INFO, "KMS response (malformed)");
    }

    if (stored && stored->server_impl) {
        proto_item* it = proto_tree_add_string(tree, hf_kms_server_impl, tvb, 0, 0, stored->server_impl);
        generated(it);
        for (int i = 0; i < stored->n_tells; ++i)
            expert_add_info_format(pinfo, it, &ei_kms_emulator, "Emulator tell: %s", stored->tells[i]);
    }
    queue_response_tap(pinfo, pv);

    if (captured < reported) tvb_ensure_bytes_exist(tvb, offset, reported);
    return reported;
}

/// The "kms" dissector: one KMS stub (request or response), as DCE/RPC or the mid-stream decoder hands it over.
/// Going through a dissector handle makes kms one of the frame's layers (frame.protocols, "Protocols in frame").
int dissect_kms_stub(tvbuff_t* tvb, packet_info* pinfo, proto_tree* tree, void* data) {
    const KmsCall* call = static_cast<const KmsCall*>(data);
    if (!call || !call->di) return 0;
    return call->is_request ? dissect_request(tvb, pinfo, tree, call) : dissect_response(tvb, pinfo, tree, call);
}

int call_kms(tvbuff_t* tvb, int offset, packet_info* pinfo, proto_tree* tree, const KmsCall& call) {
    return offset + call_dissector_only(kms_handle, tvb_new_subset_remaining(tvb, offset), pinfo, tree,
                                        const_cast<KmsCall*>(&call));
}

/// DCE/RPC's callbacks for opnum 0 (RequestActivation).
int dissect_kms_request(tvbuff_t* tvb, int offset, packet_info* pinfo, proto_tree* tree, dcerpc_info* di, guint8*) {
    return call_kms(tvb, offset, pinfo, tree, KmsCall{di, true, false});
}

int dissect_kms_response(tvbuff_t* tvb, int offset, packet_info* pinfo, proto_tree* tree, dcerpc_info* di, guint8*) {
    return call_kms(tvb, offset, pinfo, tree, KmsCall{di, false, false});
}

/// Records which side of a KMS connection is the server: the destination of the bind that offers the KMS
/// interface.
KmsConnection* new_kms_connection(packet_info* pinfo, conversation_t* conv) {
    KmsConnection* kc = wmem_new0(wmem_file_scope(), KmsConnection);
    copy_address_wmem(wmem_file_scope(), &kc->server, &pinfo->dst);
    kc->server_port = pinfo->destport;
    kc->server_key =
        wmem_strdup_printf(wmem_file_scope(), "%s:%u", address_to_str(pinfo->pool, &pinfo->dst), pinfo->destport);
    conversation_add_proto_data(conv, proto_kms_tcp, kc);
    return kc;
}

/// The KMS connection of this packet, created when the segment starts with a bind or alter_context that
/// offers the KMS interface.
KmsConnection* kms_connection(packet_info* pinfo, conversation_t* conv, const guint8* bytes, std::size_t len) {
    KmsConnection* kc = static_cast<KmsConnection*>(conversation_get_proto_data(conv, proto_kms_tcp));
    if (kc || !kmsdiss::is_kms_bind(bytes, len)) return kc;
    return new_kms_connection(pinfo, conv);
}

/// A cheap look at the first header bytes before the segment is copied: a DCE/RPC v5 bind (11), bind_ack,
/// bind_nak, alter_context or alter_context_resp (15).
bool may_start_with_bind_pdu(tvbuff_t* tvb) {
    return tvb_captured_length(tvb) >= rpc::kHeaderSize && wscompat::tvb_get_u8(tvb, 0) == rpc::kVersion &&
           rpc::negotiates_context(wscompat::tvb_get_u8(tvb, 2));
}

/// First pass: a segment that starts with a bind-type PDU goes to the core's conversation model of the
/// connection, so that the server fingerprint sees the bind answers (assoc_group, padding, NDR64 acceptance),
/// which a DCE/RPC subdissector never receives.
void observe_bind_pdus(tvbuff_t* tvb, packet_info* pinfo, conversation_t* conv) {
    if (!may_start_with_bind_pdu(tvb)) return;
    const gint captured = tvb_captured_length(tvb);
    const gint len = captured < 65535 ? captured : 65535;
    guint8* bytes = static_cast<guint8*>(tvb_memdup(pinfo->pool, tvb, 0, len));
    if (!kmsdiss::starts_with_bind_pdu(bytes, static_cast<std::size_t>(len))) return;
    const KmsConnection* kc = kms_connection(pinfo, conv, bytes, static_cast<std::size_t>(len));
    if (!kc) return;
    const bool to_server = addresses_equal(&pinfo->dst, &kc->server) && pinfo->destport == kc->server_port;
    kmsdiss::observe_segment(conv->conv_index, kc->server_key, to_server, bytes, static_cast<std::size_t>(len),
                             pinfo->abs_ts.secs, pinfo->abs_ts.nsecs);
}

/// A KMS connection's TCP payload (heuristic hit, port preference or Decode As): DCE/RPC dissects the
/// segment and calls us back for the KMS stubs. The conversation is looked up once per segment.
int dissect_kms_tcp(tvbuff_t* tvb, packet_info* pinfo, proto_tree* tree, void* data) {
    conversation_t* conv = find_or_create_conversation(pinfo);
    if (!PINFO_FD_VISITED(pinfo)) observe_bind_pdus(tvb, pinfo, conv);
    const int consumed = call_dissector_with_data(dcerpc_tcp_handle, tvb, pinfo, tree, data);
    // No bind of the KMS interface on this connection (mid-stream capture): decode the calls ourselves.
    if (!conversation_get_proto_data(conv, proto_kms_tcp)) dissect_midstream(tvb, pinfo, tree, conv);
    return consumed;
}

/// A connection whose bind was not captured: our own call table (DCE/RPC has no context to map).
struct MidstreamState {
    wmem_map_t* calls;  // call_id -> dcerpc_call_value (file scope)
};

/// Mid-stream KMS: on a connection handed to KMS-TCP (port preference or Decode As) whose bind was not
/// captured, DCE/RPC cannot map the context id to the KMS interface and never calls the subdissector. Each
/// complete request (opnum 0) or response PDU of the segment whose stub frames as a KMS message (the NDR is
/// inferred from the stub; a response uses its request's) is dissected here instead, with a call table of
/// our own for request/response matching.
void dissect_midstream(tvbuff_t* tvb, packet_info* pinfo, proto_tree* tree, conversation_t* conv) {
    const gint captured = tvb_captured_length(tvb);
    constexpr gint kHeaderSize = static_cast<gint>(rpc::kHeaderSize);
    if (captured < kHeaderSize) return;
    const gint len = captured < 65535 ? captured : 65535;
    guint8* bytes = static_cast<guint8*>(tvb_memdup(pinfo->pool, tvb, 0, len));
    MidstreamState* ms = static_cast<MidstreamState*>(conversation_get_proto_data(conv, proto_kms));
    gint off = 0;
    while (off + kHeaderSize <= len) {
        kmsdiss::PduView pv;
        kmsdiss::parse_pdu_view(bytes + off, static_cast<std::size_t>(len - off), &pv);
        if (!pv.ok || pv.frag_length == 0) break;
        const gint pdu = off;
        off += static_cast<gint>(pv.frag_length);
        const bool is_request = pv.ptype == static_cast<guint8>(rpc::PduType::Request) && pv.opnum == 0 && pv.ndr != 0;
        const bool is_response = pv.ptype == static_cast<guint8>(rpc::PduType::Response);
        if (!is_request && !is_response) continue;
        if (!ms) {
            if (!is_request) continue;
            ms = wmem_new0(wmem_file_scope(), MidstreamState);
            ms->calls = wmem_map_new(wmem_file_scope(), g_direct_hash, g_direct_equal);
            conversation_add_proto_data(conv, proto_kms, ms);
        }
        dcerpc_call_value* cv =
            static_cast<dcerpc_call_value*>(wmem_map_lookup(ms->calls, GUINT_TO_POINTER(pv.call_id)));
        if (is_request && !PINFO_FD_VISITED(pinfo)) {
            cv = wmem_new0(wmem_file_scope(), dcerpc_call_value);
            cv->req_frame = pinfo->num;
            cv->req_time = pinfo->abs_ts;
            cv->flags = pv.ndr == 64 ? DCERPC_IS_NDR64 : 0;
            wmem_map_insert(ms->calls, GUINT_TO_POINTER(pv.call_id), cv);
        }
        if (is_response) {
            if (cv && !PINFO_FD_VISITED(pinfo) && cv->rep_frame == 0) cv->rep_frame = pinfo->num;
            if (!cv) {  // answer to a request that was not captured either
                if (pv.ndr == 0) continue;
                cv = wmem_new0(pinfo->pool, dcerpc_call_value);
                cv->flags = pv.ndr == 64 ? DCERPC_IS_NDR64 : 0;
            }
        }
        if (!cv) continue;
        dcerpc_info di;
        std::memset(&di, 0, sizeof di);
        di.conv = conv;
        di.call_id = pv.call_id;
        di.ptype = pv.ptype;
        di.call_data = cv;
        tvbuff_t* stub =
            tvb_new_subset_length(tvb, pdu + static_cast<gint>(pv.stub_offset), static_cast<gint>(pv.stub_length));
        proto_item* ti = proto_tree_add_item(tree, proto_kms, stub, 0, -1, ENC_NA);
        proto_tree* kt = proto_item_add_subtree(ti, ett_kms);
        expert_add_info(pinfo, ti, &ei_kms_midstream);
        col_set_str(pinfo->cinfo, COL_PROTOCOL, "KMS");
        call_kms(stub, 0, pinfo, kt, KmsCall{&di, is_request, true});
    }
}

/// TCP heuristic: a bind offering the KMS interface makes the connection ours (we then hand every
/// segment to DCE/RPC ourselves). Tried before DCE/RPC's own heuristic, which would otherwise claim it.
wscompat::heur_result dissect_kms_heur_tcp(tvbuff_t* tvb, packet_info* pinfo, proto_tree* tree, void* data) {
    const gint captured = tvb_captured_length(tvb);
    if (captured < static_cast<gint>(rpc::kHeaderSize) || wscompat::tvb_get_u8(tvb, 0) != rpc::kVersion ||
        wscompat::tvb_get_u8(tvb, 2) != static_cast<guint8>(rpc::PduType::Bind))
        return false;
    const gint len = captured < 65535 ? captured : 65535;
    guint8* bytes = static_cast<guint8*>(tvb_memdup(pinfo->pool, tvb, 0, len));
    if (!kmsdiss::is_kms_bind(bytes, static_cast<std::size_t>(len))) return false;
    conversation_t* conv = find_or_create_conversation(pinfo);
    conversation_set_dissector(conv, kms_tcp_handle);
    // The bind is already checked: record the connection now rather than parse it again in dissect_kms_tcp.
    if (!conversation_get_proto_data(conv, proto_kms_tcp)) new_kms_connection(pinfo, conv);
    dissect_kms_tcp(tvb, pinfo, tree, data);
    return true;
}

// ---- registration -------------------------------------------------------------------------------

void kms_cleanup() {
    kmsdiss::forget_capture_file();
}

void fill_value_strings() {
    for (guint32 i = 0; i < 7; ++i) license_status_vals[i] = value_string{i, g_strdup(kmsdiss::license_status_text(i))};
    license_status_vals[7] = value_string{0, nullptr};
    const guint32 codes[] = {kmscope::kHrInvalidData,    kmscope::kHrAccessDenied,        kmscope::kHrProductDeclined,
                             kmscope::kHrTimeSkew,       kmscope::kHrInvalidDataSecurity, kmscope::kHrCountInsufficient,
                             kmscope::kHrNoKmsContacted, kmscope::kHrRpcCommFailure};
    guint n = 0;
    for (guint32 c : codes)
        if (const char* name = kmsdiss::hresult_text(c)) hresult_vals[n++] = value_string{c, g_strdup(name)};
    hresult_vals[n] = value_string{0, nullptr};
}

void proto_reg_handoff_kms();

// EXPFILL with a description for the expert info's display filter field. The members after the summary are
// EXPFILL's (id, protocol, orig_severity, hf_info), the same from 4.0 to 4.6; only hf_info's blurb differs.
#define KMS_EXPFILL(blurb)                                                 \
    0, nullptr, 0, {                                                       \
        nullptr, {                                                         \
            nullptr, nullptr, FT_NONE, BASE_NONE, nullptr, 0, blurb, HFILL \
        }                                                                  \
    }

void proto_register_kms() {
    fill_value_strings();
    // Every field has a description (tshark -G fields, the GUI's field reference). Names: kms.req / kms.resp are
    // the messages and kms.req.* / kms.resp.* their fields; kms.resp.epid.* the ePID's parts; fields of the
    // envelope (kms.iv, kms.mac, kms.hash, kms.hmac, ...) and of the exchange (kms.valid, kms.verdict.failed,
    // kms.request_in, ...) have no direction.
    static hf_register_info hf[] = {
        {&hf_kms_opnum,
         {"Operation", "kms.opnum", FT_UINT16, BASE_DEC, nullptr, 0x0,
          "DCE/RPC operation number of the KMS interface (0: RequestActivation)", HFILL}},
        {&hf_kms_req,
         {"KMS request", "kms.req", FT_NONE, BASE_NONE, nullptr, 0x0,
          "A KMS activation request (the RequestActivation stub)", HFILL}},
        {&hf_kms_resp,
         {"KMS response", "kms.resp", FT_NONE, BASE_NONE, nullptr, 0x0,
          "A KMS activation response (the RequestActivation response stub)", HFILL}},
        {&hf_kms_message_size,
         {"Message size", "kms.message_size", FT_UINT32, BASE_DEC, nullptr, 0x0,
          "Size of the KMS message in bytes, as the stub gives it", HFILL}},
        {&hf_kms_version_major,
         {"Major version", "kms.version.major", FT_UINT16, BASE_DEC, nullptr, 0x0,
          "KMS protocol major version (4, 5 or 6)", HFILL}},
        {&hf_kms_version_minor,
         {"Minor version", "kms.version.minor", FT_UINT16, BASE_DEC, nullptr, 0x0, "KMS protocol minor version",
          HFILL}},
        {&hf_kms_req_vm_info,
         {"VM info", "kms.req.vm_info", FT_UINT32, BASE_DEC, VALS(vm_info_vals), 0x0,
          "Whether the client says it runs in a virtual machine", HFILL}},
        {&hf_kms_req_license_status,
         {"License status", "kms.req.license_status", FT_UINT32, BASE_DEC, VALS(license_status_vals), 0x0,
          "The client's current license state (unlicensed, licensed, grace periods, ...)", HFILL}},
        {&hf_kms_req_binding_expiration,
         {"Binding expiration (minutes)", "kms.req.binding_expiration", FT_UINT32, BASE_DEC, nullptr, 0x0,
          "Minutes left in the current license state", HFILL}},
        {&hf_kms_req_app_id,
         {"Application ID", "kms.req.app_id", FT_GUID, BASE_NONE, nullptr, 0x0,
          "Licensing application GUID (Windows, Office 2010, Office 2013 and later)", HFILL}},
        {&hf_kms_req_sku_id,
         {"SKU ID (activation ID)", "kms.req.sku_id", FT_GUID, BASE_NONE, nullptr, 0x0,
          "GUID of the product edition (SKU) to activate", HFILL}},
        {&hf_kms_req_kms_id,
         {"KMS counted ID", "kms.req.kms_id", FT_GUID, BASE_NONE, nullptr, 0x0,
          "GUID of the product group the KMS host counts the client in", HFILL}},
        {&hf_kms_req_cmid,
         {"Client machine ID", "kms.req.cmid", FT_GUID, BASE_NONE, nullptr, 0x0,
          "CMID: the client's random, persistent identity for the KMS host's count", HFILL}},
        {&hf_kms_req_n_policy,
         {"N count policy", "kms.req.n_policy", FT_UINT32, BASE_DEC, nullptr, 0x0, "Minimum count the client needs",
          HFILL}},
        {&hf_kms_req_client_time,
         {"Client time", "kms.req.client_time", FT_ABSOLUTE_TIME, ABSOLUTE_TIME_UTC, nullptr, 0x0,
          "The client's clock when it sent the request (UTC)", HFILL}},
        {&hf_kms_req_previous_cmid,
         {"Previous client machine ID", "kms.req.previous_cmid", FT_GUID, BASE_NONE, nullptr, 0x0,
          "The client's previous CMID (zero unless it changed)", HFILL}},
        {&hf_kms_req_workstation,
         {"Workstation name", "kms.req.workstation", FT_STRING, BASE_NONE, nullptr, 0x0,
          "The client's DNS or NetBIOS name (UTF-16 on the wire)", HFILL}},
        {&hf_kms_resp_pid_size,
         {"ePID size", "kms.resp.pid_size", FT_UINT32, BASE_DEC, nullptr, 0x0,
          "Bytes of the ePID including its UTF-16 NUL", HFILL}},
        {&hf_kms_resp_epid,
         {"ePID", "kms.resp.epid", FT_STRING, BASE_NONE, nullptr, 0x0, "KMS host extended PID", HFILL}},
        {&hf_kms_resp_epid_platform,
         {"Platform", "kms.resp.epid.platform", FT_UINT32, BASE_DEC, nullptr, 0x0,
          "ePID part 1: the KMS host's OS platform ID", HFILL}},
        {&hf_kms_resp_epid_group,
         {"CSVLK group", "kms.resp.epid.group", FT_UINT32, BASE_DEC, nullptr, 0x0,
          "ePID part 2: the group ID of the host key (CSVLK)", HFILL}},
        {&hf_kms_resp_epid_key_id,
         {"CSVLK key ID", "kms.resp.epid.key_id", FT_UINT32, BASE_DEC, nullptr, 0x0,
          "ePID parts 3 and 4: the key ID of the host key (CSVLK)", HFILL}},
        {&hf_kms_resp_epid_channel,
         {"Channel", "kms.resp.epid.channel", FT_UINT32, BASE_DEC, nullptr, 0x0,
          "ePID part 5: license channel (3, volume, in genuine ePIDs)", HFILL}},
        {&hf_kms_resp_epid_lcid,
         {"LCID", "kms.resp.epid.lcid", FT_UINT32, BASE_DEC, nullptr, 0x0, "ePID part 6: the KMS host's locale ID",
          HFILL}},
        {&hf_kms_resp_epid_build,
         {"Host build", "kms.resp.epid.build", FT_UINT32, BASE_DEC, nullptr, 0x0,
          "ePID part 7: the KMS host's OS build number", HFILL}},
        {&hf_kms_resp_epid_date,
         {"Activation date", "kms.resp.epid.date", FT_STRING, BASE_NONE, nullptr, 0x0,
          "ePID part 8 as a date: the day the host key was activated (value in ISO 8601, YYYY-MM-DD)", HFILL}},
        {&hf_kms_resp_epid_day_year,
         {"Day and year", "kms.resp.epid.day_year", FT_STRING, BASE_NONE, nullptr, 0x0,
          "ePID part 8 as sent: day of the year (DDD) and year (YYYY)", HFILL}},
        {&hf_kms_resp_cmid,
         {"Client machine ID (echo)", "kms.resp.cmid", FT_GUID, BASE_NONE, nullptr, 0x0,
          "The request's CMID, echoed by the host", HFILL}},
        {&hf_kms_resp_client_time,
         {"Client time (echo)", "kms.resp.client_time", FT_ABSOLUTE_TIME, ABSOLUTE_TIME_UTC, nullptr, 0x0,
          "The request's client time, echoed by the host (UTC)", HFILL}},
        {&hf_kms_resp_count,
         {"Count", "kms.resp.count", FT_UINT32, BASE_DEC, nullptr, 0x0, "KMS host current active clients", HFILL}},
        {&hf_kms_resp_activation_interval,
         {"Activation interval (minutes)", "kms.resp.activation_interval", FT_UINT32, BASE_DEC, nullptr, 0x0,
          "Minutes an unactivated client waits before it retries", HFILL}},
        {&hf_kms_resp_renewal_interval,
         {"Renewal interval (minutes)", "kms.resp.renewal_interval", FT_UINT32, BASE_DEC, nullptr, 0x0,
          "Minutes an activated client waits before it renews", HFILL}},
        {&hf_kms_resp_random_xored_ivs,
         {"RandomXoredIVs", "kms.resp.random_xored_ivs", FT_BYTES, BASE_NONE, nullptr, 0x0,
          "v5/v6: the server random XOR the decrypted request IV", HFILL}},
        {&hf_kms_resp_xored_ivs,
         {"XoredIVs", "kms.resp.xored_ivs", FT_BYTES, BASE_NONE, nullptr, 0x0,
          "v6: the decrypted request IV, returned by the host", HFILL}},
        {&hf_kms_resp_hwid,
         {"HwId", "kms.resp.hwid", FT_BYTES, BASE_NONE, nullptr, 0x0, "v6: KMS host hardware ID", HFILL}},
        {&hf_kms_hresult,
         {"HRESULT", "kms.hresult", FT_UINT32, BASE_HEX, VALS(hresult_vals), 0x0,
          "The host's return value (0 with a response; an error code alone when it refuses)", HFILL}},
        {&hf_kms_iv,
         {"IV", "kms.iv", FT_BYTES, BASE_NONE, nullptr, 0x0, "v5/v6: initialization vector of the encrypted data",
          HFILL}},
        {&hf_kms_mac,
         {"MAC", "kms.mac", FT_BYTES, BASE_NONE, nullptr, 0x0, "v4 CBC-MAC over the base request or response", HFILL}},
        {&hf_kms_mac_status,
         {"MAC status", "kms.mac.status", FT_UINT8, BASE_NONE, VALS(proto_checksum_vals), 0x0,
          "Whether the v4 MAC is the one the message should carry", HFILL}},
        {&hf_kms_mac_expected,
         {"Expected MAC", "kms.mac.expected", FT_BYTES, BASE_NONE, nullptr, 0x0,
          "The v4 MAC the message should carry (shown when the MAC is bad)", HFILL}},
        {&hf_kms_hash,
         {"Hash", "kms.hash", FT_BYTES, BASE_NONE, nullptr, 0x0, "v5/v6: SHA-256 of the server random", HFILL}},
        {&hf_kms_hash_status,
         {"Hash status", "kms.hash.status", FT_UINT8, BASE_NONE, VALS(proto_checksum_vals), 0x0,
          "Whether the hash matches the server random (unverified without the request)", HFILL}},
        {&hf_kms_hash_expected,
         {"Expected hash", "kms.hash.expected", FT_BYTES, BASE_NONE, nullptr, 0x0,
          "The hash the response should carry (shown when the hash is bad)", HFILL}},
        {&hf_kms_hmac,
         {"HMAC", "kms.hmac", FT_BYTES, BASE_NONE, nullptr, 0x0, "v6 HMAC-SHA256 (last 16 bytes)", HFILL}},
        {&hf_kms_hmac_status,
         {"HMAC status", "kms.hmac.status", FT_UINT8, BASE_NONE, VALS(proto_checksum_vals), 0x0,
          "Whether the v6 HMAC is the one the response should carry", HFILL}},
        {&hf_kms_hmac_expected,
         {"Expected HMAC", "kms.hmac.expected", FT_BYTES, BASE_NONE, nullptr, 0x0,
          "The v6 HMAC the response should carry (shown when the HMAC is bad)", HFILL}},
        {&hf_kms_ciphertext,
         {"Encrypted data", "kms.ciphertext", FT_BYTES, BASE_NONE, nullptr, 0x0,
          "v5/v6: the AES-CBC encrypted part of the message, as received", HFILL}},
        {&hf_kms_decrypted,
         {"Decrypted", "kms.decrypted", FT_NONE, BASE_NONE, nullptr, 0x0,
          "v5/v6: the decrypted message (its own bytes tab); the fields under it are decrypted", HFILL}},
        {&hf_kms_padding,
         {"Padding", "kms.padding", FT_BYTES, BASE_NONE, nullptr, 0x0, "PKCS#7 padding of the decrypted data", HFILL}},
        {&hf_kms_application,
         {"Application", "kms.application", FT_STRING, BASE_NONE, nullptr, 0x0, "Name of the application ID", HFILL}},
        {&hf_kms_product, {"Product", "kms.product", FT_STRING, BASE_NONE, nullptr, 0x0, "Name of the SKU ID", HFILL}},
        {&hf_kms_kms_product,
         {"KMS product", "kms.kms_product", FT_STRING, BASE_NONE, nullptr, 0x0, "Name of the KMS counted ID", HFILL}},
        {&hf_kms_valid,
         {"Exchange valid", "kms.valid", FT_BOOLEAN, BASE_NONE, nullptr, 0x0,
          "True when every client-side check of the exchange passes", HFILL}},
        {&hf_kms_verdict_failed,
         {"Failed check", "kms.verdict.failed", FT_STRING, BASE_NONE, nullptr, 0x0,
          "Name of a client-side check the exchange failed (request_mac, hash, hmac, count, rpc, ...)", HFILL}},
        {&hf_kms_server_impl,
         {"Server implementation", "kms.server_impl", FT_STRING, BASE_NONE, nullptr, 0x0,
          "Fingerprint: vlmcsd, py-kms, genuine-like or unknown", HFILL}},
        {&hf_kms_request_in,
         {"Request in", "kms.request_in", FT_FRAMENUM, BASE_NONE, FRAMENUM_TYPE(FT_FRAMENUM_REQUEST), 0x0,
          "The frame of this response's request", HFILL}},
        {&hf_kms_response_in,
         {"Response in", "kms.response_in", FT_FRAMENUM, BASE_NONE, FRAMENUM_TYPE(FT_FRAMENUM_RESPONSE), 0x0,
          "The frame of this request's response", HFILL}},
        {&hf_kms_time,
         {"Time", "kms.time", FT_RELATIVE_TIME, BASE_NONE, nullptr, 0x0, "Time from request to response", HFILL}},
        // Former names (aliases, hidden), with the type and display they always had.
        {&hf_alias_request,
         {"KMS request", "kms.request", FT_NONE, BASE_NONE, nullptr, 0x0, "Former name of kms.req", HFILL}},
        {&hf_alias_response,
         {"KMS response", "kms.response", FT_NONE, BASE_NONE, nullptr, 0x0, "Former name of kms.resp", HFILL}},
        {&hf_alias_epid_platform,
         {"Platform", "kms.epid.platform", FT_UINT32, BASE_DEC, nullptr, 0x0, "Former name of kms.resp.epid.platform",
          HFILL}},
        {&hf_alias_epid_group,
         {"CSVLK group", "kms.epid.group", FT_UINT32, BASE_DEC, nullptr, 0x0, "Former name of kms.resp.epid.group",
          HFILL}},
        {&hf_alias_epid_key_id,
         {"CSVLK key ID", "kms.epid.key_id", FT_UINT32, BASE_DEC, nullptr, 0x0, "Former name of kms.resp.epid.key_id",
          HFILL}},
        {&hf_alias_epid_channel,
         {"Channel", "kms.epid.channel", FT_UINT32, BASE_DEC, nullptr, 0x0, "Former name of kms.resp.epid.channel",
          HFILL}},
        {&hf_alias_epid_lcid,
         {"LCID", "kms.epid.lcid", FT_UINT32, BASE_DEC, nullptr, 0x0, "Former name of kms.resp.epid.lcid", HFILL}},
        {&hf_alias_epid_build,
         {"Host build", "kms.epid.build", FT_UINT32, BASE_DEC, nullptr, 0x0, "Former name of kms.resp.epid.build",
          HFILL}},
        {&hf_alias_epid_date,
         {"Activation date", "kms.epid.date", FT_ABSOLUTE_TIME, ABSOLUTE_TIME_DOY_UTC, nullptr, 0x0,
          "Former form of kms.resp.epid.date: the activation day as a time (UTC midnight, day-of-year display)",
          HFILL}},
        {&hf_alias_failed_check,
         {"Failed check", "kms.failed_check", FT_STRING, BASE_NONE, nullptr, 0x0, "Former name of kms.verdict.failed",
          HFILL}},
    };

    static gint* ett[] = {&ett_kms, &ett_kms_message, &ett_kms_epid, &ett_kms_verdict, &ett_kms_decrypted};

    // Expert infos are display filter fields too (FT_NONE, tshark -G fields): KMS_EXPFILL gives each a description.
    static ei_register_info ei[] = {
        {&ei_kms_check_failed,
         {"kms.check_failed", PI_CHECKSUM, PI_ERROR, "Verification check failed",
          KMS_EXPFILL("A client-side check of the exchange failed (one per failed check, see kms.verdict.failed)")}},
        {&ei_kms_malformed,
         {"kms.malformed", PI_MALFORMED, PI_ERROR, "Malformed KMS message",
          KMS_EXPFILL("The stub or the KMS message could not be decoded")}},
        {&ei_kms_truncated,
         {"kms.truncated", PI_MALFORMED, PI_ERROR, "Truncated KMS message",
          KMS_EXPFILL("The KMS message was cut by the capture's snapshot length")}},
        {&ei_kms_hresult,
         {"kms.hresult.error", PI_RESPONSE_CODE, PI_WARN, "Server returned an HRESULT",
          KMS_EXPFILL("The KMS host refused the activation with an error code")}},
        {&ei_kms_count_low,
         {"kms.count_below_policy", PI_PROTOCOL, PI_WARN, "Count below the request's N policy",
          KMS_EXPFILL("The host's count is below the minimum the client asked for: the client stays unactivated")}},
        {&ei_kms_clock_skew,
         {"kms.clock_skew", PI_SEQUENCE, PI_WARN, "Client time more than 4 hours from the capture time",
          KMS_EXPFILL("A genuine KMS host refuses a client whose clock is more than 4 hours off")}},
        {&ei_kms_emulator,
         {"kms.emulator", PI_SECURITY, PI_NOTE, "KMS emulator tell",
          KMS_EXPFILL("Something the server did that points to a KMS emulator (vlmcsd, py-kms)")}},
        {&ei_kms_unknown_product,
         {"kms.unknown_product", PI_UNDECODED, PI_NOTE, "Product GUID not in the product table",
          KMS_EXPFILL("An application, SKU or KMS counted ID that the built-in product table does not name")}},
        {&ei_kms_unverified,
         {"kms.unverified", PI_SEQUENCE, PI_NOTE, "Request not seen: exchange not verified",
          KMS_EXPFILL("The response's request is not in the capture, so the exchange could not be verified")}},
        {&ei_kms_midstream,
         {"kms.midstream", PI_SEQUENCE, PI_NOTE, "Bind not captured: KMS decoded from the stub alone (NDR inferred)",
          KMS_EXPFILL("The capture starts after the DCE/RPC bind; the plugin decoded the call itself")}},
        {&ei_kms_trailing,
         {"kms.trailing_bytes", PI_PROTOCOL, PI_NOTE, "Bytes after the KMS message in the stub",
          KMS_EXPFILL("The stub holds bytes beyond the KMS message its size announces")}},
    };

    proto_kms = proto_register_protocol("Microsoft Key Management Service", "KMS", "kms");
    proto_register_field_array(proto_kms, hf, G_N_ELEMENTS(hf));
    proto_register_subtree_array(ett, G_N_ELEMENTS(ett));
    expert_module_t* experts = expert_register_protocol(proto_kms);
    expert_register_field_array(experts, ei, G_N_ELEMENTS(ei));
    // One per RPC anomaly kind, from the core's names and summaries: kms.rpc.context_id, ... The strings
    // must outlive the registration (Wireshark keeps the pointers).
    static std::string rpc_abbrevs[rpc::kRpcAnomalyKinds];
    static ei_register_info rpc_ei[rpc::kRpcAnomalyKinds];
    for (std::size_t k = 0; k < rpc::kRpcAnomalyKinds; ++k) {
        const auto kind = rpc::kRpcAnomalies[k];
        rpc_abbrevs[k] = std::string("kms.rpc.") + rpc::rpc_anomaly_name(kind);
        ei_kms_rpc[k] = EI_INIT;
        rpc_ei[k] = {&ei_kms_rpc[k],
                     {rpc_abbrevs[k].c_str(), PI_PROTOCOL, PI_WARN, rpc::rpc_anomaly_summary(kind),
                      KMS_EXPFILL("RPC framing of the response that a Windows client rejects (fails the rpc check)")}};
    }
    expert_register_field_array(experts, rpc_ei, G_N_ELEMENTS(rpc_ei));

    module_t* module = prefs_register_protocol(proto_kms, proto_reg_handoff_kms);  // re-applied on changes
    prefs_register_bool_preference(module, "decrypt", "Decrypt KMS v5/v6 messages",
                                   "Decrypt v5/v6 requests and responses and verify the exchange", &kms_decrypt);
    prefs_register_uint_preference(module, "tcp.port", "KMS TCP port",
                                   "TCP port decoded as DCE/RPC (KMS) even without the DCE/RPC heuristic", 10,
                                   &kms_tcp_port);

    kms_tap = register_tap(kmsdiss::kTapName);
    kmsdiss::register_clients_table();
    register_cleanup_routine(kms_cleanup);
    kms_handle = register_dissector("kms", dissect_kms_stub, proto_kms);
    proto_kms_tcp = proto_register_protocol("KMS over TCP", "KMS-TCP", "kms_tcp");
    kms_tcp_handle = register_dissector("kms_tcp", dissect_kms_tcp, proto_kms_tcp);
}

void proto_reg_handoff_kms() {
    static bool initialized = false;
    static const kmsdiss::InterfaceView kms_interface = kmsdiss::kms_interface_view();
    static e_guid_t uuid_kms = to_e_guid(kms_interface.uuid);
    static dcerpc_sub_dissector kms_dissectors[] = {
        {0, "RequestActivation", dissect_kms_request, dissect_kms_response},
        {0, nullptr, nullptr, nullptr},
    };
    if (!initialized) {
        dcerpc_init_uuid(proto_kms, ett_kms, &uuid_kms, kms_interface.version, kms_dissectors, hf_kms_opnum);
        dcerpc_tcp_handle = dissector_table_get_dissector_handle(find_dissector_table("tcp.port"), "DCERPC");
        dissector_add_for_decode_as("tcp.port", kms_tcp_handle);
        heur_dissector_add("tcp", dissect_kms_heur_tcp, "KMS over TCP (DCE/RPC bind to the KMS interface)", "kms_tcp",
                           proto_kms_tcp, HEURISTIC_ENABLE);
        kmsdiss::register_stats_tree();
        initialized = true;
    } else if (kms_registered_port != 0 && dcerpc_tcp_handle) {
        dissector_delete_uint("tcp.port", kms_registered_port, kms_tcp_handle);
    }
    kms_registered_port = 0;
    if (kms_tcp_port != 0 && dcerpc_tcp_handle) {
        dissector_add_uint("tcp.port", kms_tcp_port, kms_tcp_handle);
        kms_registered_port = kms_tcp_port;
    }
}

}  // namespace

extern "C" WS_DLL_PUBLIC_DEF void plugin_register(void) {
    static proto_plugin plug;
    plug.register_protoinfo = proto_register_kms;
    plug.register_handoff = proto_reg_handoff_kms;
    proto_register_plugin(&plug);
}

extern "C" WS_DLL_PUBLIC_DEF std::uint32_t plugin_describe(void) {
    return wscompat::kPluginDescription;
}
