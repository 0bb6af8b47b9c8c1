// Every option of `kms-replay serve`, with its default, and the INI file (GLib GKeyFile) carrying them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kmscope::replay {

/// Options of `serve`. Names match the command-line options and the INI keys of [server].
struct ServeOptions {
    std::vector<std::string> listen;  // empty: dual-stack [::]:1688
    std::uint16_t port = 1688;        // default port for listen addresses without one
    unsigned threads = 1;             // event-loop threads sharing the listening sockets
    bool daemon = false;              // detach (double fork, setsid); the default is to stay in the foreground
    bool foreground = false;          // accepted for old unit files and scripts; the foreground is the default
    std::string state_dir;            // the generated identity's folder; empty: default_state_dir()
    std::string pid_file;
    std::string ready_file;  // written with the bound addresses once listening (tests, scripts)

    // Identity and RPC behaviour.
    bool ndr64 = true;
    bool btfn = true;
    std::uint32_t host_build = 17763;
    std::uint32_t lcid = 1033;
    std::uint32_t activation_interval = 120;
    std::uint32_t renewal_interval = 10080;
    std::string hwid;                                // empty: the installation's generated HwId (state directory)
    std::map<std::string, std::string> epid;         // family -> ePID
    std::map<std::string, std::string> family_hwid;  // family -> HwId
    std::string from;                                // capture whose server identity to take
    std::uint32_t max_n_policy = 1000;
    std::int64_t max_time_skew = 0;  // seconds; 0 = not checked
    bool strict_opnum = true;

    // Counting.
    std::string count_policy = "fixed";  // fixed | genuine
    std::uint32_t fixed_count = 0;       // 0 = twice the request's N policy
    std::string db;                      // SQLite file: CMID table (genuine) and request statistics
    std::string db_sync = "full";        // full | normal

    // Limits.
    double idle_timeout = 30;  // seconds without a complete PDU... or any byte
    std::uint32_t max_connections = 10000;
    std::uint32_t max_pdu_size = 65535;
    std::uint32_t max_requests_per_connection = 0;  // 0 = unlimited
    std::uint32_t max_binds_per_connection = 64;    // binds and alter_contexts; 0 = unlimited
    double max_connection_age = 600;                // seconds from accept; 0 = unlimited
    std::vector<std::string> allow;                 // CIDR networks; empty = everyone

    // Logging.
    std::string log_format = "text";  // text | json
    std::string log_file;             // activation log; empty = standard output
    bool quiet = false;               // no per-request lines (benchmarks)
};

/// Loads an INI file over `opts`; returns an error sentence or "".
std::string load_ini(const std::string& path, ServeOptions& opts);
/// Checks values that CLI11 cannot (policy names, formats); returns error sentences.
std::vector<std::string> validate(const ServeOptions& opts);
/// The options a SIGHUP cannot apply (listen addresses, threads, database, ...): sets those of `next`
/// back to the `running` values and returns the names of those that differed.
std::vector<std::string> keep_restart_only(const ServeOptions& running, ServeOptions& next);

}  // namespace kmscope::replay
