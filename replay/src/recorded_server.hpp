// What a capture tells about the server that was recorded: its identity per KMS ID (ePID, HwId, count,
// intervals) and its RPC choices (NDR64, BTFN), so that serve --from and check can act as that server.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kmscope/conversation.hpp"
#include "kmscope/server.hpp"
#include "recorded.hpp"

namespace kmscope::replay {

/// One recorded response's server-side fields.
struct RecordedFields {
    std::string epid;
    std::optional<HwId> hwid;
    std::uint32_t count = 0;
    std::uint32_t activation_interval = 0;
    std::uint32_t renewal_interval = 0;
};

/// The recorded server, as far as the capture shows it.
struct RecordedServer {
    std::map<Guid, RecordedFields> by_kms_id;  // last response per KMS ID
    std::optional<bool> ndr64;                 // NDR64 accepted (when offered)
    std::optional<bool> btfn;                  // BTFN acknowledged (when offered)
    std::size_t responses = 0;
};

/// The events of one recorded connection, run through the conversation model.
std::vector<Event> recorded_events(const capture::RecordedConnection& c);
/// Learns the recorded server from every connection of a capture.
RecordedServer learn_server(const std::vector<capture::RecordedConnection>& connections);
/// Server fields of one decoded response.
RecordedFields fields_of(const kms::DecodedResponse& r);

/// A count per KMS ID (what the recorded server reported), falling back to twice the N policy.
class PerKmsIdCountPolicy final : public server::CountPolicy {
public:
    explicit PerKmsIdCountPolicy(std::map<Guid, std::uint32_t> counts) : counts_(std::move(counts)) {}
    std::uint32_t count_for(const kms::BaseRequest& request, FileTime now) override;

private:
    std::map<Guid, std::uint32_t> counts_;
    server::FixedCountPolicy fallback_;
};

/// Configures `ctx` as the recorded server: identities per CSVLK family, NDR64/BTFN, the host build and
/// LCID of its ePID, intervals (of the first KMS ID: the core has one pair per server) and counts per
/// KMS ID. Returns notes on what could not be reproduced.
std::vector<std::string> apply_recorded(const RecordedServer& rec, server::ServerContext& ctx);

}  // namespace kmscope::replay
