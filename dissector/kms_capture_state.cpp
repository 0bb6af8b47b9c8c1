// The bridge's per-capture-file memory (see kms_capture_state.hpp).
#include "kms_capture_state.hpp"

#include <utility>
#include <variant>

namespace kmsdiss {

using namespace kmscope;

void CaptureFileState::keep_request(const void* key, kms::DecodedRequest&& request) {
    std::lock_guard<std::mutex> lock(mu_);
    if (kept_requests_.size() < kMaxKeptRequests) kept_requests_.insert_or_assign(key, std::move(request));
}

std::optional<kms::DecodedRequest> CaptureFileState::take_request(const void* key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = key ? kept_requests_.find(key) : kept_requests_.end();
    if (it == kept_requests_.end()) return std::nullopt;
    std::optional<kms::DecodedRequest> request(std::move(it->second));
    kept_requests_.erase(it);
    return request;
}

CaptureFileState::FingerprintNews CaptureFileState::observe_exchange(const char* server_key, const Exchange& exchange) {
    std::lock_guard<std::mutex> lock(mu_);
    Server& server = servers_[server_key];
    server.fingerprint.observe(exchange);
    // The tells of the bind answers of this server's connections (observe_segment) are reported here too.
    const auto& tells = server.fingerprint.tells();
    FingerprintNews news{server_impl_name(server.fingerprint.verdict()),
                         {tells.begin() + static_cast<std::ptrdiff_t>(server.tells_reported), tells.end()}};
    server.tells_reported = tells.size();
    return news;
}

void CaptureFileState::observe_segment(guint32 connection, const char* server_key, Direction direction, FileTime time,
                                       ByteView bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = connections_.find(connection);
    if (it == connections_.end()) {
        ConversationOptions options;
        options.emit_pdu_events = false;
        it = connections_.try_emplace(connection, options).first;
    }
    it->second.feed(direction, time, bytes);
    ServerFingerprint& fingerprint = servers_[server_key].fingerprint;
    bool answered = false;
    for (const auto& e : it->second.take_events())
        if (const auto* n = std::get_if<ContextNegotiation>(&e)) {
            fingerprint.observe(*n);
            answered = true;
        }
    // Only bind-type PDUs are fed, so once the answer is in nothing is pending: free the model (a later bind or
    // alter_context on the connection starts a fresh one).
    if (answered && it->second.pending_requests() == 0) connections_.erase(it);
}

void CaptureFileState::clear() {
    std::lock_guard<std::mutex> lock(mu_);
    servers_.clear();
    connections_.clear();
    // Swapped rather than cleared, which would keep the bucket array of a large file.
    std::unordered_map<const void*, kms::DecodedRequest>().swap(kept_requests_);
}

CaptureFileState& capture_file_state() {
    static CaptureFileState state;
    return state;
}

}  // namespace kmsdiss
