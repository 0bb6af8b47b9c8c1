// Server fingerprinting (docs/protocol.md §11.5): which implementation answered, from the tells
// emulators leave in bind answers, faults and responses. Shared by the dissector and the analyzer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kmscope/conversation.hpp"

namespace kmscope {

enum class ServerImpl : std::uint8_t { Unknown, Vlmcsd, PyKms, GenuineLike };

/// "unknown", "vlmcsd", "py-kms", "genuine-like".
const char* server_impl_name(ServerImpl impl);

/// Accumulates evidence about the server of one connection (or of one server across connections).
class ServerFingerprint {
public:
    /// Takes a bind / alter_context answer into account.
    void observe(const ContextNegotiation& negotiation);
    /// Takes an exchange (response, fault) into account.
    void observe(const Exchange& exchange);
    /// Takes any conversation event into account.
    void observe(const Event& event);
    /// Adds the evidence of a separate, later observation of the same server (another capture file): tells,
    /// counts and the latest ePID and build. Connections in two files are not consecutive, so the assoc_group
    /// sequence starts afresh, and a consistency check between one file's NDR64 answer and the other's
    /// ePID build is not made.
    void absorb(const ServerFingerprint& later);
    /// The best guess so far.
    ServerImpl verdict() const;
    /// The observations behind the verdict, one short sentence each (emulator tells and consistency notes).
    const std::vector<std::string>& tells() const { return tells_; }

private:
    void tell(std::string_view text);  // kept once; a repeated tell costs no copy
    void check_consistency();
    int vlmcsd_ = 0;
    int pykms_ = 0;
    int emulator_ = 0;  // tells that point at an emulator without saying which
    bool answered_ = false;
    std::optional<bool> ndr64_accepted_;
    std::optional<std::uint32_t> last_assoc_group_;
    std::optional<std::uint32_t> epid_build_;
    std::optional<std::string> last_epid_;  // of the latest response
    bool several_epids_ = false;
    std::vector<std::string> tells_;
};

}  // namespace kmscope
