// Small helpers shared by the unit tests.
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "kmscope/bytes.hpp"
#include "kmscope/conversation.hpp"

namespace kmscope::test {

/// Hex text to bytes; fails the test on malformed hex.
Bytes hex(std::string_view text);

/// Lower-case hex of the bytes.
inline std::string hexs(ByteView b) {
    return to_hex(b);
}

/// Parses a GUID literal; fails the test when malformed.
Guid guid(std::string_view text);

/// Every event of every KMS connection of a capture file, with the connection it came from.
struct CaptureConnection {
    std::uint64_t index = 0;  // 1-based order of appearance among all TCP connections
    std::string client, server;
    std::vector<Event> events;
    std::vector<Exchange> exchanges() const;
    bool is_kms = false;
};

/// Reads a capture with the capture library, splits TCP connections and runs each through the conversation model.
std::vector<CaptureConnection> analyse_capture(const std::string& path);

/// The PDUs of one TCP connection in capture order.
struct ConnectionPdus {
    std::vector<std::pair<Direction, Bytes>> pdus;
};

/// Cuts every TCP connection of a capture into its DCE/RPC PDUs (connections that are not DCE/RPC
/// are left out).
std::vector<ConnectionPdus> capture_pdus(const std::string& path);

/// captures/MANIFEST.json, parsed once.
const nlohmann::json& manifest();
/// The file names of every capture in the manifest, in manifest order.
std::vector<std::string> capture_names();
/// A gtest parameter name from a capture file name.
std::string param_name(const std::string& file);

/// Path of a file in captures/.
std::string capture_path(const std::string& name);

}  // namespace kmscope::test
