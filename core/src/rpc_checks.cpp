#include "kmscope/rpc_checks.hpp"

#include "kmscope/status.hpp"

namespace kmscope::rpc {

std::vector<RpcAnomalyNote> response_header_anomalies(const ResponseHeaderFacts& f) {
    std::vector<RpcAnomalyNote> out;
    if (f.request_context_id && f.context_id != *f.request_context_id)
        out.push_back({RpcAnomaly::ContextId, "response context id " + std::to_string(f.context_id) +
                                                  " differs from the request's " +
                                                  std::to_string(*f.request_context_id)});
    if (f.cancel_count != 0)
        out.push_back({RpcAnomaly::CancelCount, "response cancel_count " + std::to_string(f.cancel_count)});
    if (f.flags & kUnexpectedResponseFlags)
        out.push_back({RpcAnomaly::Flags, "unexpected response flags " + hex32(f.flags)});
    if (f.message_size) {
        const std::size_t expected = response_stub_size(*f.message_size, f.ndr);
        if (f.alloc_hint != expected)
            out.push_back({RpcAnomaly::AllocHint, "response alloc_hint " + std::to_string(f.alloc_hint) +
                                                      " differs from the padded stub size " +
                                                      std::to_string(expected)});
    }
    return out;
}

}  // namespace kmscope::rpc
