#include "kmscope/outcome.hpp"

#include "kmscope/status.hpp"

namespace kmscope {

std::string_view outcome_label(Outcome o) {
    switch (o) {
        case Outcome::Response:
            return "RESPONSE";
        case Outcome::Hresult:
            return "HRESULT";
        case Outcome::Fault:
            return "FAULT";
        case Outcome::NoResponse:
            return "NO RESPONSE";
        case Outcome::Orphan:
            return "ANSWER WITHOUT REQUEST";
    }
    return "UNKNOWN";
}

std::string failed_checks_text(const kms::Verdict& verdict) {
    if (verdict.ok()) return "";
    std::string s = "FAIL";
    for (auto c : verdict.failed) s.append(" ").append(kms::check_name(c));
    return s;
}

std::string verdict_text(Outcome outcome, const kms::Verdict& verdict, bool verified, std::uint32_t status) {
    const std::string failed = failed_checks_text(verdict);
    if (outcome == Outcome::Response) {
        if (verified && verdict.ok()) return "ok";
        return failed.empty() ? "FAIL undecodable" : failed;
    }
    const std::string prefix = failed.empty() ? "" : failed + ", ";
    auto named = [](std::string_view name) { return name.empty() ? std::string() : std::string(" ").append(name); };
    switch (outcome) {
        case Outcome::Hresult:
            return prefix + "HRESULT " + hex32(status) + named(status == 0 ? "S_OK" : hresult_name(status));
        case Outcome::Fault:
            return prefix + "FAULT " + hex32(status) + named(nca_status_name(status));
        default:
            return prefix + std::string(outcome_label(outcome));
    }
}

std::string verdict_text(const Exchange& x) {
    const std::uint32_t status = x.outcome == Outcome::Fault ? x.fault_status.value_or(0) : x.hresult.value_or(0);
    return verdict_text(x.outcome, x.verdict, x.response && x.request, status);
}

}  // namespace kmscope
