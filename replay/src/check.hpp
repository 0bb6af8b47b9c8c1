// `kms-replay check`: every recorded request of a capture goes through the same ServerConnection that
// `serve` runs, configured with the recorded server's identity, clock and random values; each answer is
// verified as a client would and compared field by field with the recorded one.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace kmscope::replay {

struct CheckSummary {
    std::size_t exchanges = 0, matched = 0, mismatched = 0, tampered = 0, skipped = 0, errors = 0;
    /// True when every compared exchange matched and nothing was tampered.
    bool ok() const { return mismatched == 0 && tampered == 0 && errors == 0; }
};

/// Checks the captures, printing one line per exchange and a diff per mismatch to `out`; captures that
/// cannot be read (or hold no DCE/RPC connection) are counted in `errors` and reported on `err`.
CheckSummary run_check(const std::vector<std::string>& captures, std::ostream& out, std::ostream& err, bool json);

}  // namespace kmscope::replay
