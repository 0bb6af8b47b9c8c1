// The KMS host's extended PID (ePID) and hardware ID (docs/protocol.md §9): strict parsing and formatting of
// "PPPPP-GGGGG-KKK-KKKKKK-03-LLLL-BBBBB.0000-DDDYYYY", plausibility notes for dissectors, the CSVLK and
// host-build tables of §9.2, and emulator-compatible ePID generation with injected randomness.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kmscope/bytes.hpp"
#include "kmscope/environment.hpp"
#include "kmscope/products.hpp"

namespace kmscope {

/// The numeric parts of an ePID, in text order.
struct EpidParts {
    std::uint32_t platform = 0;     ///< 5 digits: host OS platform id (55041, 5426, 6401, 3612)
    std::uint32_t group = 0;        ///< 5 digits: CSVLK group id
    std::uint32_t key_id = 0;       ///< 9 digits, printed 3 + 6: CSVLK key id
    std::uint32_t channel = 0;      ///< 2 digits: always 3 (volume licence) in genuine ePIDs
    std::uint32_t lcid = 0;         ///< unpadded decimal: locale id
    std::uint32_t build = 0;        ///< unpadded decimal, followed by ".0000": host OS build
    std::uint16_t day_of_year = 0;  ///< 3 digits: activation day 1..366
    std::uint16_t year = 0;         ///< 4 digits: activation year
    bool operator==(const EpidParts&) const = default;
};

/// Parses an ePID with the strict structure of §9.1; the error names the part that is wrong and its
/// character offset. LCID and build are unpadded decimal (1-5 digits, at most 65535, no leading zero).
Result<EpidParts> parse_epid(std::string_view text);

/// Formats parts as an ePID (inverse of parse_epid for every value parse_epid accepts).
std::string format_epid(const EpidParts& p);

/// Plausibility notes for a parsed ePID (channel not 03, impossible day, platform not matching the build,
/// LCID unknown to Windows, year before 2006, date before the host build's release); one short sentence
/// each, empty when plausible.
std::vector<std::string> epid_anomalies(const EpidParts& p);

/// Parameters of a KMS host key (CSVLK) family, as vlmcsd's ini names them (§9.2).
struct CsvlkFamily {
    std::string_view name;      ///< ini name, e.g. "Windows", "Office2019"
    std::uint32_t group;        ///< group id printed in the ePID
    std::uint32_t min_key_id;   ///< lowest key id
    std::uint32_t max_key_id;   ///< key ids are drawn from [min_key_id, max_key_id) (vlmcsd excludes max)
    std::int64_t release_unix;  ///< CSVLK release date, Unix seconds (00:00 UTC)
};

/// The CSVLK family with this ini name (case-sensitive), or nullptr when unknown.
const CsvlkFamily* csvlk_family(std::string_view ini_name);

/// Every known CSVLK family: the six of §9.2 in vlmcsd index order, then Office2021 and Office2024.
std::span<const CsvlkFamily> csvlk_families();

/// A KMS host OS build usable in ePIDs.
struct HostBuild {
    std::uint32_t build;        ///< OS build number
    std::uint32_t platform;     ///< platform id printed in the ePID
    std::int64_t release_unix;  ///< release date, Unix seconds (00:00 UTC)
    bool uses_ndr64;            ///< genuine hosts of this build accept NDR64 (build >= 9200)
};

/// Known host builds, newest first: §9.2's six plus 20348 (Server 2022) and 26100 (Server 2025).
std::span<const HostBuild> host_builds();

/// The table entry for exactly this build, or nullptr.
const HostBuild* find_host_build(std::uint32_t build);

/// Platform id for a host build (§9.1): < 9200 -> 55041, 9200..9599 -> 5426, 9600..10239 -> 6401,
/// >= 10240 -> 3612.
std::uint32_t platform_for_build(std::uint32_t build);

/// The CSVLK family whose ePID answers a KMS counted ID (its epid_csvlk column); unknown IDs or families
/// get the Windows family, as vlmcsd does.
const CsvlkFamily& csvlk_for_kms_id(const Guid& kms_id, const ProductTable& table);

/// Generates a random ePID like the emulators (§9.1): platform from the build, the family's group, key id
/// uniform in [min, max), the given LCID and build, and a date uniform between max(CSVLK release, build
/// release) and `now` (the earliest date when `now` is before it). Deterministic for a given rng state.
/// `host_build` and `lcid` should be at most 65535, or parse_epid() will not accept the result.
std::string generate_epid(const CsvlkFamily& f, std::uint32_t host_build, std::uint32_t lcid, FileTime now,
                          RandomSource& rng);

/// The 8-byte KMS host hardware ID sent in v6 responses (§9.3).
struct HwId {
    std::array<std::uint8_t, 8> bytes{};

    /// Parses exactly 16 hex digits (either case) in wire order; nullopt otherwise.
    static std::optional<HwId> parse(std::string_view hex16);
    /// 16 upper-case hex digits in wire order, e.g. "3A1C049600B60076".
    std::string to_string() const;
    /// The same digits written at `out` (kTextSize bytes, no NUL), for printers that keep no string.
    static constexpr std::size_t kTextSize = 16;
    void format(char* out) const;
    auto operator<=>(const HwId&) const = default;
};

/// vlmcsd's default HwId (src/config.h, "HwId from the Ratiborus VM").
inline constexpr HwId kVlmcsdDefaultHwId{{0x3A, 0x1C, 0x04, 0x96, 0x00, 0xB6, 0x00, 0x76}};
/// The HwId older py-kms releases answer with (docs/protocol.md §11.5): an emulator tell like the above.
inline constexpr HwId kPykmsOldHwId{{0x36, 0x4F, 0x46, 0x3A, 0x88, 0x63, 0xD3, 0x5F}};

}  // namespace kmscope
