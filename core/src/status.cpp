#include "kmscope/status.hpp"

#include <cstdio>

namespace kmscope {

namespace {
struct StatusInfo {
    std::uint32_t code;
    std::string_view name;
    std::string_view description;
};

constexpr StatusInfo kHresults[] = {
    {0x00000000, "S_OK", "success"},
    {0x8007000D, "ERROR_INVALID_DATA", "the KMS server rejected the request data (e.g. unsupported protocol version)"},
    {0x80070005, "E_ACCESSDENIED", "the KMS server refused the client"},
    {0xC004F042, "SL_E_VL_KMS_SERVER_DECLINED", "the KMS server has declined to activate the requested product"},
    {0xC004F06C, "SL_E_VL_TIME_SKEW", "the client time stamp differs too much from the KMS server time"},
    {0xC004D104, "SL_E_SECURITY_PROCESSOR_INVALID_DATA", "the security processor reported invalid data"},
    {0xC004F038, "SL_E_VL_NOT_ENOUGH_COUNT", "the count reported by the KMS server is insufficient"},
    {0xC004F074, "SL_E_VL_NO_KMS_CONTACTED", "no Key Management Service could be contacted"},
    {0x0000071C, "RPC_S_COMM_FAILURE", "communication failed during the remote procedure call"},
};

constexpr StatusInfo kNca[] = {
    {0x1C010001, "nca_s_comm_failure", ""},
    {0x1C010002, "nca_s_op_rng_error", ""},
    {0x1C010003, "nca_s_unk_if", ""},
    {0x1C010006, "nca_s_wrong_boot_time", ""},
    {0x1C010009, "nca_s_you_crashed", ""},
    {0x1C01000B, "nca_s_proto_error", ""},
    {0x1C010013, "nca_s_out_args_too_big", ""},
    {0x1C010014, "nca_s_server_too_busy", ""},
    {0x1C010017, "nca_s_unsupported_type", ""},
    {0x1C000001, "nca_s_fault_int_div_by_zero", ""},
    {0x1C000009, "nca_s_fault_remote_no_memory", ""},
    {0x1C00000C, "nca_s_fault_context_mismatch", ""},
    {0x1C000011, "nca_s_fault_ndr", ""},
    {0x1C000012, "nca_s_fault_cancel", ""},
    {0x1C000014, "nca_s_fault_invalid_tag", ""},
    {0x1C00001A, "nca_s_fault_unspec", ""},
    {0x00000005, "rpc_s_access_denied", ""},
    {0x000006F7, "rpc_x_bad_stub_data", ""},
    {0x000006D1, "rpc_s_procnum_out_of_range", ""},
    {0x000006D3, "rpc_s_unknown_if", ""},
};

template <std::size_t N>
const StatusInfo* lookup(const StatusInfo (&table)[N], std::uint32_t code) {
    for (const auto& s : table)
        if (s.code == code) return &s;
    return nullptr;
}
}  // namespace

std::string_view hresult_name(std::uint32_t hr) {
    auto* s = lookup(kHresults, hr);
    return s ? s->name : std::string_view{};
}

std::string_view hresult_description(std::uint32_t hr) {
    auto* s = lookup(kHresults, hr);
    return s ? s->description : std::string_view{};
}

std::string_view nca_status_name(std::uint32_t status) {
    auto* s = lookup(kNca, status);
    return s ? s->name : std::string_view{};
}

std::string hex32(std::uint32_t v) {
    // By hand rather than snprintf: kms-analyze prints one per exchange.
    static constexpr char kDigits[] = "0123456789ABCDEF";
    std::string out = "0x00000000";
    for (int i = 9; i >= 2; --i, v >>= 4) out[static_cast<std::size_t>(i)] = kDigits[v & 0xF];
    return out;
}

}  // namespace kmscope
