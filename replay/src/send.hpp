// `kms-replay send`: replays the recorded connections of a capture against a live server (the same
// PDUs, NDR choices and call ids, one new TCP connection each), verifies every answer with the core's
// client checks (the conversation model), and doubles as the load generator.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace kmscope::replay {

struct SendOptions {
    std::vector<std::string> captures;
    std::string to;            // HOST:PORT
    unsigned concurrency = 1;  // connections in flight
    std::uint64_t repeat = 1;  // times every recorded connection is replayed
    double duration = 0;       // seconds; replaces repeat when > 0
    double rate = 0;           // connections per second in total (0 = as fast as possible)
    double timeout = 5;        // seconds to wait for each answer
    bool vary_cmid = false;    // a fresh random CMID (and IV) in every request
    std::string ack_file;      // CMIDs of answered requests, one per line (with --vary-cmid)
    bool json = false;
    bool quiet = false;  // no per-exchange lines
};

/// Runs send; returns the exit code (0 when every exchange verified or was refused as recorded).
int run_send(const SendOptions& opts, std::ostream& out, std::ostream& err);

}  // namespace kmscope::replay
