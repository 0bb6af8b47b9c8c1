#include "kmscope/ndr.hpp"

namespace kmscope::rpc {

namespace {
constexpr std::uint32_t kReferentId = 0x00020000;
std::size_t pad4(std::size_t n) {
    return (4 - n % 4) % 4;
}
}  // namespace

const char* ndr_name(Ndr ndr) {
    return ndr == Ndr::Ndr64 ? "64" : "32";
}

Result<RequestStub> parse_request_stub(ByteView stub, Ndr ndr, std::size_t base_offset) {
    Reader r(stub, base_offset);
    std::uint32_t size = r.u32le("requestSize");
    std::uint64_t conformance;
    if (ndr == Ndr::Ndr64) {
        r.skip(4, "requestSize_padding");
        conformance = r.u64le("conformance");
    } else {
        conformance = r.u32le("conformance");
    }
    if (!r.ok()) return *r.error();
    if (conformance != size)
        return ParseError{
            "conformance", base_offset + (ndr == Ndr::Ndr64 ? 8 : 4),
            "array conformance " + std::to_string(conformance) + " differs from requestSize " + std::to_string(size)};
    RequestStub out;
    out.message_offset = r.position();
    out.message = r.bytes(size, "request");
    if (!r.ok()) return *r.error();
    out.trailing = r.remaining();
    return out;
}

Bytes build_request_stub(ByteView message, Ndr ndr) {
    Writer w;
    w.u32le(static_cast<std::uint32_t>(message.size()));
    if (ndr == Ndr::Ndr64) {
        w.u32le(0);
        w.u64le(message.size());
    } else {
        w.u32le(static_cast<std::uint32_t>(message.size()));
    }
    w.bytes(message);
    return w.take();
}

const char* rpc_anomaly_name(RpcAnomaly kind) {
    switch (kind) {
        case RpcAnomaly::ContextId:
            return "context_id";
        case RpcAnomaly::CancelCount:
            return "cancel_count";
        case RpcAnomaly::Flags:
            return "flags";
        case RpcAnomaly::AllocHint:
            return "alloc_hint";
        case RpcAnomaly::Ndr64Padding:
            return "ndr64_padding";
        case RpcAnomaly::NullPointerSize:
            return "null_pointer_size";
        case RpcAnomaly::Referent:
            return "referent";
        case RpcAnomaly::ReturnValuePadding:
            return "return_value_padding";
        case RpcAnomaly::TrailingBytes:
            return "trailing_bytes";
    }
    return "unknown";
}

const char* rpc_anomaly_summary(RpcAnomaly kind) {
    switch (kind) {
        case RpcAnomaly::ContextId:
            return "Response context id differs from the request's";
        case RpcAnomaly::CancelCount:
            return "Response cancel_count is not zero";
        case RpcAnomaly::Flags:
            return "Response flags other than FIRST and LAST";
        case RpcAnomaly::AllocHint:
            return "Response alloc_hint differs from the padded stub size";
        case RpcAnomaly::Ndr64Padding:
            return "Non-zero NDR64 padding after responseSize";
        case RpcAnomaly::NullPointerSize:
            return "NULL response pointer with a non-zero responseSize";
        case RpcAnomaly::Referent:
            return "Unusual referent id of the response pointer";
        case RpcAnomaly::ReturnValuePadding:
            return "Non-zero NDR padding before the return value";
        case RpcAnomaly::TrailingBytes:
            return "Bytes after the return value of the response stub";
    }
    return "Unknown RPC anomaly";
}

Result<ResponseStub> parse_response_stub(ByteView stub, Ndr ndr, std::size_t base_offset) {
    Reader r(stub, base_offset);
    ResponseStub out;
    std::uint32_t size = r.u32le("responseSize");
    if (ndr == Ndr::Ndr64) {
        if (r.u32le("responseSize_padding") != 0)
            out.anomalies.push_back({RpcAnomaly::Ndr64Padding, "non-zero NDR64 padding after responseSize"});
        out.referent = r.u64le("referent_id");
    } else {
        out.referent = r.u32le("referent_id");
    }
    if (!r.ok()) return *r.error();
    if (out.referent == 0) {
        out.return_value = r.u32le("return_value");
        if (!r.ok()) return *r.error();
        if (size != 0)
            out.anomalies.push_back(
                {RpcAnomaly::NullPointerSize, "NULL response pointer with responseSize " + std::to_string(size)});
        return out;
    }
    std::uint64_t conformance = ndr == Ndr::Ndr64 ? r.u64le("conformance") : r.u32le("conformance");
    if (!r.ok()) return *r.error();
    if (conformance != size)
        return ParseError{
            "conformance", r.offset() - (ndr == Ndr::Ndr64 ? 8 : 4),
            "array conformance " + std::to_string(conformance) + " differs from responseSize " + std::to_string(size)};
    if (out.referent != kReferentId)
        out.anomalies.push_back({RpcAnomaly::Referent, "unusual referent id " + std::to_string(out.referent)});
    out.message_offset = r.position();
    out.message = r.bytes(size, "response");
    auto pad = r.bytes(pad4(r.position()), "response_padding");
    out.return_value = r.u32le("return_value");
    if (!r.ok()) return *r.error();
    for (auto b : pad)
        if (b) {
            out.anomalies.push_back({RpcAnomaly::ReturnValuePadding, "non-zero NDR padding before the return value"});
            break;
        }
    if (r.remaining())
        out.anomalies.push_back(
            {RpcAnomaly::TrailingBytes, std::to_string(r.remaining()) + " bytes after the return value"});
    return out;
}

Bytes build_response_stub(ByteView message, Ndr ndr) {
    Writer w;
    w.u32le(static_cast<std::uint32_t>(message.size()));
    if (ndr == Ndr::Ndr64) {
        w.u32le(0);
        w.u64le(kReferentId);
        w.u64le(message.size());
    } else {
        w.u32le(kReferentId);
        w.u32le(static_cast<std::uint32_t>(message.size()));
    }
    w.bytes(message);
    w.align(4);
    w.u32le(0);
    return w.take();
}

Bytes build_error_stub(std::uint32_t hresult, Ndr ndr) {
    Writer w;
    w.zeros(ndr == Ndr::Ndr64 ? 16 : 8);
    w.u32le(hresult);
    return w.take();
}

std::size_t response_stub_size(std::size_t message_size, Ndr ndr) {
    std::size_t head = ndr == Ndr::Ndr64 ? 24 : 12;
    return head + message_size + pad4(head + message_size) + 4;
}

std::optional<Ndr> infer_request_ndr(ByteView stub) {
    if (stub.size() >= 16 && load_u32le(stub.data() + 4) == 0 &&
        load_u64le(stub.data() + 8) == load_u32le(stub.data()) &&
        16 + static_cast<std::size_t>(load_u32le(stub.data())) <= stub.size())
        return Ndr::Ndr64;
    if (stub.size() >= 8 && load_u32le(stub.data()) == load_u32le(stub.data() + 4)) return Ndr::Ndr32;
    return std::nullopt;
}

std::optional<Ndr> infer_response_ndr(ByteView stub) {
    if (stub.size() == 12) return Ndr::Ndr32;  // NULL-pointer error stubs
    if (stub.size() == 20) return Ndr::Ndr64;
    if (stub.size() >= 24 && load_u64le(stub.data() + 8) == 0x20000 &&
        load_u64le(stub.data() + 16) == load_u32le(stub.data()))
        return Ndr::Ndr64;
    if (stub.size() >= 12 && load_u32le(stub.data() + 8) == load_u32le(stub.data())) return Ndr::Ndr32;
    return std::nullopt;
}

}  // namespace kmscope::rpc
