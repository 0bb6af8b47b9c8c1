// `kms-replay serve`: the event-driven KMS host on GLib. Every connection's bytes go through the core's
// ServerConnection (the same path `check` drives offline); this file owns sockets, the event loops,
// limits, the allow-list, the activation log and the SQLite store.
#pragma once

#include "options.hpp"

namespace kmscope::replay {

/// Runs the server until SIGINT/SIGTERM. Returns the process exit code; errors go to standard error.
int run_serve(const ServeOptions& opts);

}  // namespace kmscope::replay
