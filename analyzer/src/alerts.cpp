#include "alerts.hpp"

#include <algorithm>

#include "kmscope/fingerprint.hpp"
#include "kmscope/outcome.hpp"

namespace kmscope::analyzer {

const char* alert_name(AlertKind kind) {
    switch (kind) {
        case AlertKind::FailedActivation:
            return "failed_activation";
        case AlertKind::UnansweredConnection:
            return "unanswered_connection";
        case AlertKind::SrvLookupFailed:
            return "srv_lookup_failed";
        case AlertKind::RogueServer:
            return "rogue_server";
    }
    return "unknown";
}

std::uint32_t alert_signature_id(AlertKind kind) { return 1688001 + static_cast<std::uint32_t>(kind); }

int alert_severity(AlertKind kind) {
    switch (kind) {
        case AlertKind::RogueServer:
            return 1;
        case AlertKind::FailedActivation:
        case AlertKind::UnansweredConnection:
            return 2;
        case AlertKind::SrvLookupFailed:
            return 3;
    }
    return 3;
}

const char* alert_category(AlertKind kind) {
    return kind == AlertKind::RogueServer ? "Rogue KMS server" : "KMS activation failure";
}

std::optional<std::string> AlertRules::rogue_reason(const ExchangeRecord& r) const {
    // Only a server that answered KMS counts: a refused connection is someone else's problem.
    if (!r.x.response && !r.x.hresult) return std::nullopt;
    const bool expected =
        expected_.empty() || std::any_of(expected_.begin(), expected_.end(),
                                         [&](const AddressMatch& m) { return endpoint_matches(r.server, m); });
    const bool emulator = r.impl == ServerImpl::Vlmcsd || r.impl == ServerImpl::PyKms;
    if (!expected && !emulator) return std::string("KMS server not in --expect-server answered KMS");
    if (!emulator) return std::nullopt;
    return std::string(expected ? "KMS server" : "KMS server not in --expect-server") + " shows the tells of " +
           server_impl_name(r.impl) + " (a KMS emulator)";
}

std::vector<Alert> AlertRules::check(const Record& record) {
    std::vector<Alert> out;
    if (const auto* r = std::get_if<ExchangeRecord>(&record)) {
        if (!r->x.ok())
            out.push_back({AlertKind::FailedActivation, "KMS activation failed: " + verdict_text(r->x)});
        if (auto why = rogue_reason(*r); why && rogue_reported_.insert(r->server).second)
            out.push_back({AlertKind::RogueServer, std::move(*why)});
    } else if (const auto* c = std::get_if<ConnectionRecord>(&record)) {
        if (c->unanswered)
            out.push_back({AlertKind::UnansweredConnection,
                           std::string("KMS connection never answered (") + c->state + ")"});
    } else if (const auto* d = std::get_if<DnsRecord>(&record)) {
        const auto& m = d->message;
        if (m.response && (m.rcode != 0 || m.answers.empty()))
            out.push_back({AlertKind::SrvLookupFailed, "KMS discovery failed: " + m.name + " " +
                                                           (m.rcode != 0 ? rcode_name(m.rcode) : "has no SRV record")});
    }
    return out;
}

}  // namespace kmscope::analyzer
