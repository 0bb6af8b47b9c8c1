// --html FILE: a self-contained report (issue 13). Records are folded into aggregates as they pass the
// filters, so memory does not grow with the number of exchanges: per KMS ID, client, server and product
// the --summary aggregates (one Summary, the same counts --summary prints); beside them fixed-size
// histograms (activations over time, latency), small maps keyed by the protocol's vocabulary (checks,
// HRESULTs, faults, DNS rcodes, connection states) and the first rows of failures, DNS messages and
// troubled connections, each capped, with what was left out counted. The page is written at the end.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "kmscope/fingerprint.hpp"
#include "kmscope/products.hpp"
#include "records.hpp"
#include "summary.hpp"

namespace kmscope::analyzer {

/// How an exchange ended, as the report colours it: ok, failed checks, HRESULT, fault, no response, orphan.
enum class VerdictClass : std::uint8_t { Ok, Failed, Hresult, Fault, NoResponse, Orphan };
inline constexpr std::size_t kVerdictClasses = 6;
const char* verdict_class_name(VerdictClass c);
VerdictClass verdict_class(const Exchange& x);

/// Exchanges per time bucket and verdict class. The bucket width starts at one second and moves up a
/// ladder of round widths whenever more than kMaxBuckets would be needed, so the chart stays readable and
/// the memory fixed whatever the span of the capture.
class TimeSeries {
public:
    static constexpr std::size_t kMaxBuckets = 120;
    using Counts = std::array<std::uint64_t, kVerdictClasses>;
    void add(std::int64_t unix_seconds, VerdictClass c);
    std::int64_t width() const { return width_; }
    /// Bucket start (Unix seconds) -> counts, in time order.
    const std::map<std::int64_t, Counts>& buckets() const { return buckets_; }

private:
    void widen();
    std::int64_t width_ = 1;
    std::map<std::int64_t, Counts> buckets_;
};

/// Request-to-response latency on fixed logarithmic bounds (1-2-5 steps, 0.1 ms to 10 s, then above).
class LatencyHistogram {
public:
    static constexpr std::array<double, 16> kUpperMs{0.1, 0.2, 0.5, 1,   2,    5,    10,   20,
                                                     50,  100, 200, 500, 1000, 2000, 5000, 10000};
    void add(double ms);
    const std::array<std::uint64_t, kUpperMs.size() + 1>& counts() const { return counts_; }
    std::uint64_t total() const { return total_; }
    double min() const { return min_; }
    double max() const { return max_; }
    double mean() const { return total_ ? sum_ / static_cast<double>(total_) : 0; }

private:
    std::array<std::uint64_t, kUpperMs.size() + 1> counts_{};
    std::uint64_t total_ = 0;
    double sum_ = 0, min_ = 0, max_ = 0;
};

/// A map of counts that keeps at most `cap` distinct keys; counts for the others go to `others`.
struct CappedCounts {
    explicit CappedCounts(std::size_t cap) : cap(cap) {}
    void add(const std::string& key, std::uint64_t n = 1);
    std::size_t cap;
    std::map<std::string, std::uint64_t> counts;
    std::uint64_t others = 0;  // counted under keys past the cap
};

/// The first rows of a list, and how many more there were.
template <class Row>
struct CappedRows {
    explicit CappedRows(std::size_t cap) : cap(cap) {}
    bool wants() {
        if (rows.size() < cap) return true;
        ++left_out;
        return false;
    }
    std::size_t cap;
    std::vector<Row> rows;
    std::uint64_t left_out = 0;
};

class HtmlReport {
public:
    static constexpr std::size_t kMaxRows = 500;  // per table of exchanges, messages, connections, clients, ...
    explicit HtmlReport(const ProductTable& products);
    /// Folds in one record that passed the filters (on the output thread, in output order).
    void add(const Record& record);
    /// Writes the page. `fingerprints` are the analyzer's, per server "ip:port".
    void write(std::FILE* out, const ExchangeTotals& totals,
               const std::unordered_map<std::string, ServerFingerprint>& fingerprints) const;

    struct FailureRow {
        std::string time, file, client, server, workstation, product, verdict, diagnostics;
        std::uint64_t stream = 0;
    };
    struct DnsRow {
        std::string time, client, server, what, name, answers;
    };
    struct ConnectionRow {
        std::string time, file, client, server, state, diagnostics;
        std::uint64_t stream = 0, client_bytes = 0, server_bytes = 0;
    };

private:
    void add(const ExchangeRecord& r);
    void add(const DnsRecord& r);
    void add(const ConnectionRecord& r);
    void note_file(const std::string* file);

    const ProductTable& products_;
    Summary summary_;
    TimeSeries series_;
    LatencyHistogram latency_;
    std::array<std::uint64_t, kVerdictClasses> by_class_{};
    CappedCounts checks_{64}, hresults_{64}, faults_{64};
    CappedRows<FailureRow> failures_{kMaxRows};
    // Discovery and connections (the 0xC004F074 diagnosis).
    std::uint64_t dns_queries_ = 0, dns_answers_ = 0, dns_failed_ = 0;  // failed: an error rcode or no SRV record
    CappedCounts dns_rcodes_{32}, dns_names_{kMaxRows}, srv_targets_{kMaxRows};
    CappedRows<DnsRow> dns_rows_{kMaxRows};
    CappedCounts connection_states_{16}, unanswered_servers_{kMaxRows};
    CappedRows<ConnectionRow> connections_{kMaxRows};
    std::vector<std::string> files_;  // the inputs, in order (at most kMaxRows kept)
    std::uint64_t files_left_out_ = 0;
    const std::string* last_file_ = nullptr;
};

}  // namespace kmscope::analyzer
