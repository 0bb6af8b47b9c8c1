// kms-analyze's engine: capture files in, records out. Every TCP connection goes through the
// reassembler into the core's Conversation; each exchange becomes a record, as do KMS connections that
// were never answered and DNS SRV discovery messages. Records are filtered, printed and summarised in the
// order they were found, by the thread that calls run() (or, live, by an output thread). Everything above
// TCP is the core's.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "batch_pipe.hpp"
#include "filter.hpp"
#include "html_report.hpp"
#include "kmscope/fingerprint.hpp"
#include "kmscope/products.hpp"
#include "printer.hpp"
#include "records.hpp"
#include "summary.hpp"
#include "tcp_split.hpp"

namespace kmscope::analyzer {

struct Options {
    Format format = Format::Table;
    bool summary = false;
    bool progress = false;
    std::FILE* html = nullptr;  // --html: where the report goes (main opens and closes it)
    std::vector<Filter> filters;
    std::set<std::uint16_t> kms_ports{1688};
    capture::TcpLimits limits;
    bool alerts = false;                       // print alert events (alerts.hpp) after their records
    std::vector<AddressMatch> expect_servers;  // --expect-server: any other KMS server is rogue
    // --pipeline: each file is read, reassembled and printed on three threads (less wall time on one big
    // file, about a third more CPU); otherwise on one (with --jobs, printing stays on the calling thread).
    bool pipeline = false;
};

/// Totals over everything analysed.
struct Totals : ExchangeTotals {
    std::uint64_t files = 0, bad_files = 0;
};

/// What the live statistics line reads on the reading thread while the other threads count.
struct LiveCounters {
    std::atomic<std::uint64_t> exchanges{0}, alerts{0};
    // The flow table after the latest batch of packets: open connections, and those evicted (idle, or the
    // least recently seen past --max-connections).
    std::atomic<std::uint64_t> open_connections{0}, evicted_connections{0};
};

class Analyzer {
public:
    Analyzer(Options options, const ProductTable& products, std::FILE* out);
    ~Analyzer();
    /// Analyses capture files ("-" is standard input), up to `jobs` of them at once. The records come out in
    /// the order of `files`, each file's in capture order: the same output whatever `jobs` is. Returns
    /// false when a file could not be opened or is corrupt (said on stderr, in file order, after that
    /// file's records); what was read before the damage is still reported.
    bool run(const std::vector<std::string>& files, unsigned jobs = 1);
    /// Captures live from an interface until `stop` is set (within one poll interval); `tick` runs on the
    /// reading thread at every poll and packet (statistics, reopening). False when the interface could
    /// not be opened or reading failed (said on stderr).
    bool run_live(const capture::LiveOptions& live, const std::atomic<bool>& stop,
                  const std::function<void(const capture::PacketSource&)>& tick);
    /// Runs once the live interface is open, before any packet: where privileges are dropped.
    void on_open(std::function<void()> hook) { on_open_ = std::move(hook); }
    /// Runs on the output thread before each record is printed (reopening the output on SIGHUP).
    void before_output(std::function<void()> hook) { before_output_ = std::move(hook); }
    /// Prints the closing line of the table and the --summary report.
    void finish();
    const Totals& totals() const { return totals_; }
    const LiveCounters& live_counters() const { return live_; }

private:
    struct ConnState;
    struct FileRun;
    void on_events(FileRun& run, const capture::TcpConnection& c, std::vector<Event>&& events);
    void on_end(FileRun& run, const capture::TcpConnection& c);
    void on_udp(FileRun& run, const capture::UdpDatagram& d);
    // Queues a record on the file's lane or the live pipe, or prints it at once. Exchange records are built in
    // their Record; the rarer ones convert on the way in.
    void emit(FileRun& run, Record&& record);
    // Opens and reads one file, on a worker thread of run().
    void analyse_file(FileRun& run);
    // Reads one source to its end (or its stop flag); false, with the reason in run.errors, on a read error.
    bool read(capture::PacketSource& source, FileRun& run, const std::function<void()>& tick = {});
    // Reassembles on the reading thread.
    bool read_here(capture::PacketSource& source, FileRun& run, capture::TcpSplit& split);
    // Hands packets in batches to a reassembly thread (--pipeline, and live capture).
    bool read_pipelined(capture::PacketSource& source, FileRun& run, capture::TcpSplit& split,
                        const std::function<void()>& tick);
    // Once a file's records are out: its errors on stderr, its count, and its servers' fingerprints.
    void close_file(FileRun& run);
    // On the thread that prints.
    void output(Record& record);

    Options opt_;
    const ProductTable& products_;
    std::FILE* out_;
    std::unique_ptr<Printer> printer_;
    std::unique_ptr<Summary> summary_;
    std::unique_ptr<HtmlReport> report_;  // --html
    LiveCounters live_;
    Totals totals_;  // exchange counts are kept by the output thread
    // By server "ip:port", over every file: each file's fingerprints are added in file order once its
    // records are out (the records' own verdicts come from their file's fingerprints).
    std::unordered_map<std::string, ServerFingerprint> fingerprints_;
    AlertRules alert_rules_;
    std::function<void()> on_open_, before_output_;
    // Live capture's output thread; files are printed by the thread that calls run(). Last: its thread
    // stops before the rest is destroyed.
    std::unique_ptr<BatchPipe<Record>> pipe_;
};

}  // namespace kmscope::analyzer
