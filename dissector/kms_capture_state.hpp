// What the bridge remembers across the frames of one capture file, beyond what Wireshark keeps for it in wmem
// file scope: the core's objects (fingerprints, conversation models, decoded requests), which wmem cannot hold.
// One object for the plugin, behind one mutex; Wireshark's cleanup routine clears it when a file is closed.
// Only kms_bridge.cpp uses it, inside its catch-all entry points (these methods may throw, e.g. bad_alloc).
#pragma once

#include <glib.h>

#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "kmscope/bytes.hpp"
#include "kmscope/conversation.hpp"
#include "kmscope/fingerprint.hpp"
#include "kmscope/kms.hpp"

namespace kmsdiss {

class CaptureFileState {
public:
    /// A server's fingerprint after an observation: its verdict and the tells not reported before.
    struct FingerprintNews {
        const char* server_impl;  // server_impl_name(): a literal of the core
        std::vector<std::string> new_tells;
    };

    /// Keeps a decoded request for the response of its call, under `key` (the dissector's per-call record), so
    /// that the response does not decode and decrypt it again. Requests that are never answered stay until the
    /// file is closed, at most kMaxKeptRequests of them (beyond that the response decodes the stored message).
    void keep_request(const void* key, kmscope::kms::DecodedRequest&& request);
    /// Takes out the request kept under `key`, if any.
    std::optional<kmscope::kms::DecodedRequest> take_request(const void* key);

    /// Feeds an exchange to the fingerprint of `server_key` (an endpoint, "address:port").
    FingerprintNews observe_exchange(const char* server_key, const kmscope::Exchange& exchange);
    /// Feeds a segment of TCP connection `connection` to that connection's conversation model; the bind answers
    /// it yields go to the fingerprint of `server_key`.
    void observe_segment(guint32 connection, const char* server_key, kmscope::Direction direction,
                         kmscope::FileTime time, kmscope::ByteView bytes);

    /// Forgets everything (the capture file is closed).
    void clear();

private:
    /// Per server endpoint: its fingerprint and how many of its tells a response frame already showed.
    struct Server {
        kmscope::ServerFingerprint fingerprint;
        std::size_t tells_reported = 0;
    };
    static constexpr std::size_t kMaxKeptRequests = 1u << 16;

    std::mutex mu_;
    std::map<std::string, Server> servers_;
    std::map<guint32, kmscope::Conversation> connections_;  // by Wireshark's conversation index
    std::unordered_map<const void*, kmscope::kms::DecodedRequest> kept_requests_;
};

/// The plugin's one CaptureFileState.
CaptureFileState& capture_file_state();

}  // namespace kmsdiss
