// `kms-replay status --db FILE`: the host's view, in the spirit of `slmgr /dlv` on a KMS host.
#pragma once

#include <iosfwd>
#include <string>

namespace kmscope::replay {

/// Prints counts per KMS ID and request statistics; `list_cmids` adds every stored CMID. Returns the exit code.
int run_status(const std::string& db, bool json, bool list_cmids, std::ostream& out, std::ostream& err);

}  // namespace kmscope::replay
