// Alert events: the records a security team or a help desk wants pushed to them rather than found in
// the output. One decision per record, shared by every output that raises alerts (`--format eve`
// today). The signature ids are stable, in kmscope's own range (1688xxx), so SIEM rules can key on them.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "filter.hpp"
#include "records.hpp"

namespace kmscope::analyzer {

enum class AlertKind : std::uint8_t {
    FailedActivation,      // an exchange that is not ok: failed checks, an HRESULT, a fault, no response
    UnansweredConnection,  // a KMS port that never answered (the 0xC004F074 case)
    SrvLookupFailed,       // a _vlmcs._tcp SRV query answered with an error or with no SRV record
    RogueServer,           // a KMS server not in --expect-server, or whose answers show an emulator's tells
};

struct Alert {
    AlertKind kind;
    std::string signature;  // one sentence, specific to this record
};

/// "failed_activation", "unanswered_connection", "srv_lookup_failed", "rogue_server".
const char* alert_name(AlertKind kind);
/// 1688001 ... 1688004.
std::uint32_t alert_signature_id(AlertKind kind);
/// 1 (high) to 3 (low), as Suricata ranks alerts.
int alert_severity(AlertKind kind);
/// What kind of problem it is, for the alert's `category`.
const char* alert_category(AlertKind kind);

/// Decides the alerts of records as they pass, in order; remembers which servers were already reported
/// as rogue, so that each is reported once per run.
class AlertRules {
public:
    /// `expected_servers` (--expect-server): when given, any other KMS server is rogue.
    explicit AlertRules(std::vector<AddressMatch> expected_servers = {})
        : expected_(std::move(expected_servers)) {}
    std::vector<Alert> check(const Record& record);

private:
    std::optional<std::string> rogue_reason(const ExchangeRecord& r) const;
    std::vector<AddressMatch> expected_;
    std::set<std::string> rogue_reported_;  // servers ("ip:port")
};

}  // namespace kmscope::analyzer
