// kms-analyze: finds, decodes and verifies every KMS activation in pcap/pcapng files (plain, gzip,
// or standard input) and prints one record per exchange as a table, JSON lines or CSV.
// Exit status: 0, 1 with --strict when a verdict failed, 2 on usage or input errors.
#include <sched.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "analyzer.hpp"
#include "kmscope/version.hpp"
#include "live.hpp"

int main(int argc, char** argv) {
    using namespace kmscope;
    using namespace kmscope::analyzer;
    CLI::App app{"kms-analyze: find, decode and verify KMS activations in capture files"};
    app.set_version_flag("--version,-V", std::string("kms-analyze (kmscope) ") + kmscope::version);
    std::vector<std::string> files, filters;
    std::vector<std::uint16_t> ports;
    std::string products_file, format = "table";
    bool summary = false, strict = false, no_progress = false;
    std::string html_file;
    bool alerts = false;
    std::vector<std::string> expect_servers;
    LiveSettings live;
    Options opt;
    std::size_t max_conns = opt.limits.max_connections;
    double idle_seconds = static_cast<double>(opt.limits.idle_ticks) / 1e7;
    app.add_option("files", files, "pcap or pcapng files (gzip is read transparently; - for standard input)");
    auto* live_opt = app.add_option("--live", live.capture.interface,
                                    "capture live from this interface (lo, eth0, any) until SIGINT or SIGTERM; "
                                    "exchanges and alerts are printed as they complete");
    app.add_option("--bpf", live.capture.bpf_filter, "with --live: a capture filter (tcpdump syntax)")->needs(live_opt);
    app.add_option("--snaplen", live.capture.snaplen, "with --live: bytes kept per packet")
        ->check(CLI::Range(64, 262144))
        ->needs(live_opt);
    app.add_flag("--promiscuous", live.capture.promiscuous, "with --live: promiscuous mode (off by default)")
        ->needs(live_opt);
    app.add_option("--user", live.user,
                   "with --live as root: the user to become once the interface is open (root keeps root)")
        ->default_str("nobody")
        ->needs(live_opt);
    app.add_option("--stats-interval", live.stats_seconds,
                   "with --live: seconds between statistics lines on stderr (0: only at the end)")
        ->check(CLI::NonNegativeNumber)
        ->default_str("60")
        ->needs(live_opt);
    app.add_option("--output,-o", live.output_path,
                   "write records to this file (appended) instead of standard output; reopened on SIGHUP");
    app.add_flag("--alerts", alerts, "print alert events after their records (always with --live and --format eve)");
    app.add_option("--expect-server", expect_servers,
                   "a legitimate KMS server (address, address:port or CIDR; repeatable): any other server "
                   "answering KMS raises a rogue_server alert")
        ->allow_extra_args(false);
    app.add_option("--format,-f", format,
                   "output format: table, json (JSON lines), csv, or eve (Suricata EVE JSON lines with alerts)")
        ->check(CLI::IsMember({"table", "json", "csv", "eve"}))
        ->default_str("table");
    app.add_flag("--summary,-s", summary, "add a report per KMS ID, client, server and product");
    app.add_option("--html", html_file,
                   "also write a self-contained HTML report to FILE (charts, sortable tables; works offline); "
                   "the normal output still goes to standard output, in any --format");
    app.add_option("--filter", filters,
                   "only records with KEY=VALUE[,VALUE...]; KEY is client or server (address, address:port, "
                   "address/prefix), product or workstation (substring), version (6, 6.0, v6), verdict (ok, fail, "
                   "response, hresult, fault, no_response, orphan), cmid or kms_id (GUID); repeat to require several")
        ->allow_extra_args(false);
    app.add_flag("--strict", strict, "exit 1 when any reported exchange failed verification");
    app.add_option("--products", products_file, "extra product CSV (same columns as data/products.csv)");
    app.add_option("--kms-port", ports, "more server ports to report unanswered connections on (1688 always)")
        ->allow_extra_args(false);
    app.add_option("--max-connections", max_conns, "open TCP connections kept at once")->check(CLI::PositiveNumber);
    app.add_option("--idle-timeout", idle_seconds, "seconds of capture time after which an idle connection ends")
        ->check(CLI::PositiveNumber);
    app.add_flag("--no-progress", no_progress, "never show the progress line on stderr");
    unsigned jobs = 1;
    app.add_option("--jobs,-j", jobs,
                   "capture files analysed at once, each on one thread (0: one per CPU core); the output is the "
                   "same as one at a time, in the order the files are given")
        ->excludes(live_opt);
    app.add_flag("--pipeline", opt.pipeline,
                 "read, reassemble and print each file on three threads: about 15 % less time on one large "
                 "file, for about a third more CPU; the output is the same")
        ->excludes(live_opt);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }
    opt.format = format == "json"  ? Format::Json
                 : format == "csv" ? Format::Csv
                 : format == "eve" ? Format::Eve
                                   : Format::Table;
    if (summary && opt.format == Format::Eve) {
        std::cerr << "kms-analyze: --summary is not an EVE event; --format eve ends with a stats event, and "
                     "--format json --summary writes the summary\n";
        return 2;
    }
    if (files.empty() == live.capture.interface.empty()) {
        std::cerr << "kms-analyze: give capture files or --live INTERFACE (one of the two)\n";
        return 2;
    }
    // Before any output file is opened: a usage error leaves nothing behind.
    if (std::count(files.begin(), files.end(), "-") > 1) {
        std::cerr << "kms-analyze: - (standard input) given more than once\n";
        return 2;
    }
    for (const auto& e : expect_servers) {
        auto m = parse_address_match(e);
        if (!m) {
            std::cerr << "kms-analyze: --expect-server '" << e << "' is not an address, address:port or CIDR\n";
            return 2;
        }
        opt.expect_servers.push_back(*m);
    }
    const bool live_capture = !live.capture.interface.empty();
    opt.alerts = alerts || live_capture || opt.format == Format::Eve || !opt.expect_servers.empty();
    opt.summary = summary;
    opt.progress = !no_progress && isatty(STDERR_FILENO);
    opt.limits.max_connections = max_conns;
    opt.limits.idle_ticks = static_cast<std::uint64_t>(idle_seconds * 1e7);
    for (auto p : ports) opt.kms_ports.insert(p);
    for (const auto& f : filters) {
        std::string error;
        auto parsed = parse_filter(f, error);
        if (!parsed) {
            std::cerr << "kms-analyze: " << error << "\n";
            return 2;
        }
        opt.filters.push_back(std::move(*parsed));
    }
    ProductTable products = ProductTable::with_builtin();
    if (!products_file.empty()) {
        auto merged = products.merge_csv_file(products_file);
        if (!merged) {
            std::cerr << "kms-analyze: " << merged.error().to_string() << "\n";
            return 2;
        }
    }
    std::FILE* html = html_file.empty() ? nullptr : std::fopen(html_file.c_str(), "w");
    if (!html_file.empty() && !html) {
        std::cerr << "kms-analyze: " << html_file << ": " << std::strerror(errno) << "\n";
        return 2;
    }
    opt.html = html;
    std::FILE* out = stdout;
    if (!live.output_path.empty() && !(out = std::fopen(live.output_path.c_str(), "a"))) {
        std::cerr << "kms-analyze: " << live.output_path << ": " << std::strerror(errno) << "\n";
        return 2;
    }
    static char out_buffer[1 << 20];
    if (live_capture)
        std::setvbuf(out, nullptr, _IOLBF, 0);  // each record as it completes
    else
        std::setvbuf(out, out_buffer, _IOFBF, sizeof out_buffer);
    Analyzer analyzer(opt, products, out);
    if (live_capture) return run_live(analyzer, live, out);
    if (jobs == 0) {  // the CPUs this process may run on (a container's or taskset's limit included)
        cpu_set_t cpus;
        jobs = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? static_cast<unsigned>(CPU_COUNT(&cpus))
                                                             : std::thread::hardware_concurrency();
        jobs = std::max(1u, jobs);
    }
    const bool inputs_ok = analyzer.run(files, jobs);
    analyzer.finish();
    std::fflush(out);
    if (html) {
        const bool failed = std::ferror(html) != 0;
        if (std::fclose(html) != 0 || failed) {
            std::cerr << "kms-analyze: " << html_file << ": the report could not be written\n";
            return 2;
        }
    }
    if (!inputs_ok) return 2;
    if (strict && analyzer.totals().not_ok > 0) return 1;
    return 0;
}
