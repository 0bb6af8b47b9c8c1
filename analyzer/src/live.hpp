// kms-analyze --live IFACE: the process side of live monitoring (signals, privileges, the statistics
// line, reopening the output file); the capture and the analysis are the same engine as for files.
#pragma once

#include <cstdio>
#include <string>

#include "analyzer.hpp"
#include "packet_source.hpp"

namespace kmscope::analyzer {

struct LiveSettings {
    capture::LiveOptions capture;
    std::string user = "nobody";  // root drops to it once the interface is open; "root" keeps root
    double stats_seconds = 60;    // a statistics line on stderr this often; 0: only at the end
    std::string output_path;      // --output: reopened on SIGHUP (logrotate); empty: standard output
};

/// Captures until SIGINT or SIGTERM, then prints what a file's end prints (closing line, stats event,
/// --summary) and a last statistics line. Returns the exit status: 0, or 2 when the interface could not
/// be opened, privileges could not be dropped or reading failed.
int run_live(Analyzer& analyzer, const LiveSettings& settings, std::FILE* out);

}  // namespace kmscope::analyzer
