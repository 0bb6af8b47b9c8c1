// --html: the aggregates, updated per record (html_page.cpp writes them out).
#include "html_report.hpp"

#include <algorithm>
#include <string_view>

#include "kmscope/outcome.hpp"
#include "kmscope/status.hpp"

namespace kmscope::analyzer {

namespace {

// Round bucket widths, in seconds: one second up to a day, then whole days and years.
constexpr std::array<std::int64_t, 18> kWidths{1,    2,    5,     10,    30,    60,     300,     600,      1800,
                                               3600, 7200, 21600, 43200, 86400, 604800, 2592000, 31536000, 315360000};

std::int64_t floor_to(std::int64_t t, std::int64_t width) {
    std::int64_t q = t / width;
    if (t % width < 0) --q;
    return q * width;
}

// Appends `s` to a list written as one cell.
void append(std::string& list, std::string_view s, std::string_view sep = "; ") {
    if (!list.empty()) list += sep;
    list += s;
}

// "0x8007000D ERROR_INVALID_DATA", or the code alone when it has no name.
std::string code_and_name(std::uint32_t code, std::string_view name) {
    std::string out = hex32(code);
    if (!name.empty()) out.append(" ").append(name);
    return out;
}

}  // namespace

const char* verdict_class_name(VerdictClass c) {
    static constexpr std::array<const char*, kVerdictClasses> names{"ok",    "failed",      "hresult",
                                                                    "fault", "no_response", "orphan"};
    return names[static_cast<std::size_t>(c)];
}

VerdictClass verdict_class(const Exchange& x) {
    if (x.ok()) return VerdictClass::Ok;
    switch (x.outcome) {
        case Outcome::Response:
            return VerdictClass::Failed;
        case Outcome::Hresult:
            return VerdictClass::Hresult;
        case Outcome::Fault:
            return VerdictClass::Fault;
        case Outcome::NoResponse:
            return VerdictClass::NoResponse;
        case Outcome::Orphan:
            return VerdictClass::Orphan;
    }
    return VerdictClass::Failed;
}

void TimeSeries::add(std::int64_t t, VerdictClass c) {
    ++buckets_[floor_to(t, width_)][static_cast<std::size_t>(c)];
    while (buckets_.size() > 1 &&
           (buckets_.rbegin()->first - buckets_.begin()->first) / width_ >= static_cast<std::int64_t>(kMaxBuckets))
        widen();
}

void TimeSeries::widen() {
    auto next = std::upper_bound(kWidths.begin(), kWidths.end(), width_);
    width_ = next == kWidths.end() ? width_ * 2 : *next;
    std::map<std::int64_t, Counts> merged;
    for (const auto& [start, counts] : buckets_) {
        auto& into = merged[floor_to(start, width_)];
        for (std::size_t i = 0; i < kVerdictClasses; ++i) into[i] += counts[i];
    }
    buckets_ = std::move(merged);
}

void LatencyHistogram::add(double ms) {
    const auto bound = std::lower_bound(kUpperMs.begin(), kUpperMs.end(), ms);
    ++counts_[static_cast<std::size_t>(bound - kUpperMs.begin())];
    min_ = total_ ? std::min(min_, ms) : ms;
    max_ = total_ ? std::max(max_, ms) : ms;
    sum_ += ms;
    ++total_;
}

void CappedCounts::add(const std::string& key, std::uint64_t n) {
    auto it = counts.find(key);
    if (it != counts.end())
        it->second += n;
    else if (counts.size() < cap)
        counts.emplace(key, n);
    else
        others += n;
}

HtmlReport::HtmlReport(const ProductTable& products) : products_(products), summary_(products) {}

void HtmlReport::add(const Record& record) {
    std::visit(
        [&](const auto& r) {
            note_file(r.file);
            add(r);
        },
        record);
}

void HtmlReport::note_file(const std::string* file) {
    if (!file || (!files_.empty() && files_.back() == *file)) return;
    if (files_.size() < kMaxRows)
        files_.push_back(*file);
    else
        ++files_left_out_;
}

void HtmlReport::add(const ExchangeRecord& r) {
    const Exchange& x = r.x;
    summary_.add(r);
    const VerdictClass c = verdict_class(x);
    ++by_class_[static_cast<std::size_t>(c)];
    series_.add(r.time().unix_seconds(), c);
    if (auto ms = x.latency_ms()) latency_.add(*ms);
    if (c == VerdictClass::Ok) return;
    for (auto check : x.verdict.failed) checks_.add(std::string(kms::check_name(check)));
    if (x.hresult && *x.hresult != 0) hresults_.add(code_and_name(*x.hresult, hresult_name(*x.hresult)));
    if (x.fault_status) faults_.add(code_and_name(*x.fault_status, nca_status_name(*x.fault_status)));
    if (!failures_.wants()) return;
    FailureRow row;
    row.time = r.time().to_iso8601();
    row.file = r.file ? *r.file : "";
    row.stream = r.stream;
    row.client = r.client;
    row.server = r.server;
    if (x.request) {
        row.workstation = x.request->base.workstation();
        row.product = products_.name_or_guid(x.request->base.sku_id);
    }
    row.verdict = verdict_text(x);
    for (const auto& d : r.stream_diagnostics) append(row.diagnostics, d);
    for (const auto& d : x.diagnostics) append(row.diagnostics, d.text);
    failures_.rows.push_back(std::move(row));
}

void HtmlReport::add(const DnsRecord& r) {
    summary_.add_dns();
    const KmsDiscovery& m = r.message;
    dns_names_.add(m.name);
    if (!m.response) {
        ++dns_queries_;
    } else {
        ++dns_answers_;
        dns_rcodes_.add(rcode_name(m.rcode));
        bool srv = false;
        for (const auto& a : m.answers) {
            srv = true;
            srv_targets_.add(a.target + ":" + std::to_string(a.port));
        }
        if (m.rcode != 0 || !srv) ++dns_failed_;
    }
    if (!dns_rows_.wants()) return;
    DnsRow row;
    row.time = r.time.to_iso8601();
    row.client = r.client;
    row.server = r.server;
    row.what = m.response ? "answer " + rcode_name(m.rcode) : std::string("query");
    if (m.qtype != 33) row.what += " (qtype " + std::to_string(m.qtype) + ")";
    row.name = m.name;
    for (const auto& a : m.answers)
        append(row.answers,
               a.target + ":" + std::to_string(a.port) + " (priority " + std::to_string(a.priority) + ", weight " +
                   std::to_string(a.weight) + ")",
               ", ");
    dns_rows_.rows.push_back(std::move(row));
}

void HtmlReport::add(const ConnectionRecord& r) {
    if (r.unanswered) {
        summary_.add_unanswered();
        unanswered_servers_.add(r.server);
    }
    connection_states_.add(r.state);
    if (!connections_.wants()) return;
    ConnectionRow row;
    row.time = r.first_seen.to_iso8601();
    row.file = r.file ? *r.file : "";
    row.stream = r.stream;
    row.client = r.client;
    row.server = r.server;
    row.state = r.state;
    row.client_bytes = r.client_bytes;
    row.server_bytes = r.server_bytes;
    for (const auto& d : r.diagnostics) append(row.diagnostics, d);
    connections_.rows.push_back(std::move(row));
}

}  // namespace kmscope::analyzer
