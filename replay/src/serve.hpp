// `kms-replay serve`: the event-driven KMS host on GLib. Every connection's bytes go through the core's
// ServerConnection (the same path `check` drives offline); this file owns sockets, the event loops,
// limits, the allow-list, the activation log and the SQLite store.
#pragma once

#include <functional>
#include <string>

#include "options.hpp"

namespace kmscope::replay {

/// Reads the configuration again (the INI file, then the command line's options over it) into its
/// argument; returns an error sentence or "".
using ReloadOptions = std::function<std::string(ServeOptions&)>;

/// Runs the server until SIGINT/SIGTERM, in the foreground unless `opts.daemon`. SIGHUP reopens the log
/// file and applies what `reload` reads where that is safe (identity, policy, intervals, counts, limits,
/// log format); listen addresses, threads and the database need a restart and are logged as such.
/// Readiness, reloads and shutdown are reported to systemd (sd_notify) when NOTIFY_SOCKET is set.
/// Returns the process exit code (0, or 2 for configuration and start-up errors, written to stderr).
int run_serve(const ServeOptions& opts, ReloadOptions reload = {});

}  // namespace kmscope::replay
