// The server's own identity: a HwId and one ePID per CSVLK family, generated once per installation and
// kept in the state directory, so that the host presents the same identity at every start (as a real
// KMS host does) instead of vlmcsd's well-known defaults, which kms-analyze fingerprints as vlmcsd.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "kmscope/environment.hpp"
#include "kmscope/epid.hpp"

namespace kmscope::replay {

/// What the state file holds.
struct StoredIdentity {
    HwId hwid;
    std::uint32_t host_build = 0;  // the build and LCID the ePIDs were generated with
    std::uint32_t lcid = 0;
    std::map<std::string, std::string> epids;  // CSVLK family ini name -> ePID, every known family
};

/// The default state directory: $STATE_DIRECTORY (first entry) when systemd sets it, else
/// /var/lib/kms-replay for root, else $XDG_STATE_HOME/kms-replay or ~/.local/state/kms-replay.
std::string default_state_dir();

/// The identity file inside a state directory.
std::string identity_path(const std::string& state_dir);

/// A fresh identity: a random HwId that is none of the emulators' defaults, and an ePID per family
/// generated from `host_build` and `lcid` at time `now`.
StoredIdentity generate_identity(std::uint32_t host_build, std::uint32_t lcid, FileTime now, RandomSource& rng);

/// Reads an identity file; nullopt with `error` set when missing or malformed.
std::optional<StoredIdentity> read_identity(const std::string& path, std::string& error);

/// Writes an identity file atomically (temporary file, fsync, rename, fsync of the folder); false with
/// `error` set on failure.
bool write_identity(const std::string& path, const StoredIdentity& id, std::string& error);

/// The identity of `state_dir`: read when present; generated and stored when absent. When the stored
/// ePIDs were generated for another host build or LCID, they are generated again (the HwId stays) and
/// stored. `note` says what happened ("generated", "regenerated ePIDs for build ...", or "").
std::optional<StoredIdentity> load_or_create_identity(const std::string& state_dir, std::uint32_t host_build,
                                                      std::uint32_t lcid, FileTime now, RandomSource& rng,
                                                      std::string& note, std::string& error);

}  // namespace kmscope::replay
