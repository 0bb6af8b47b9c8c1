#include "kmscope/epid.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>

namespace kmscope {

namespace {

// Unix seconds of 00:00 UTC on a calendar date.
constexpr std::int64_t unix_date(int y, unsigned m, unsigned d) {
    return static_cast<std::int64_t>(
               std::chrono::sys_days{std::chrono::year{y} / std::chrono::month{m} / std::chrono::day{d}}
                   .time_since_epoch()
                   .count()) *
           86400;
}

// docs/protocol.md §9.2 CSVLK table (vlmcsd's six families, index order), then the two py-kms-only families.
// Office2021 and Office2024: neither docs/protocol.md nor the product sources (data/README.md) give their
// own numbers (py-kms's Office2024 range copies Office 2019's and has no release date),
// so both use Office2019's group, key-id range and release date here.
constexpr CsvlkFamily kFamilies[] = {
    {"Windows", 206, 551000000, 570999999, unix_date(2018, 10, 2)},
    {"Office2010", 96, 199000000, 217999999, unix_date(2010, 7, 15)},
    {"Office2013", 206, 234000000, 255999999, unix_date(2013, 1, 29)},
    {"Office2016", 206, 437000000, 458999999, unix_date(2015, 9, 22)},
    {"WinChinaGov", 3858, 15000000, 999999999, unix_date(2017, 4, 5)},
    {"Office2019", 206, 666000000, 685999999, unix_date(2018, 9, 24)},
    {"Office2021", 206, 666000000, 685999999, unix_date(2018, 9, 24)},  // = Office2019, see above
    {"Office2024", 206, 666000000, 685999999, unix_date(2018, 9, 24)},  // = Office2019, see above
};

// §9.2 host builds plus 20348 and 26100 (release dates from py-kms's KmsDataBase.xml), newest first.
// 9200 uses 2012-10-26 (vlmcsd's data file has a typo, 2001).
constexpr HostBuild kHostBuilds[] = {
    {26100, 3612, unix_date(2024, 11, 1), true},  {20348, 3612, unix_date(2021, 8, 18), true},
    {17763, 3612, unix_date(2018, 10, 2), true},  {14393, 3612, unix_date(2016, 8, 2), true},
    {9600, 6401, unix_date(2013, 10, 18), true},  {9200, 5426, unix_date(2012, 10, 26), true},
    {7601, 55041, unix_date(2011, 2, 22), false}, {6002, 55041, unix_date(2009, 5, 26), false},
};

// Locale ids accepted in ePIDs: the 158 specific-culture LCIDs vlmcsd draws from (§9.1, "recognised by
// .NET 4.0"), sorted.
constexpr std::uint16_t kKnownLcids[] = {
    1025,  1026,  1027,  1028,  1029,  1030,  1031,  1032,  1033,  1034,  1035,  1036,  1037,  1038,  1039,  1040,
    1041,  1042,  1043,  1044,  1045,  1046,  1048,  1049,  1050,  1051,  1052,  1053,  1054,  1056,  1057,  1058,
    1059,  1060,  1061,  1062,  1063,  1065,  1066,  1067,  1068,  1069,  1071,  1074,  1076,  1077,  1078,  1079,
    1080,  1081,  1082,  1083,  1086,  1087,  1088,  1089,  1091,  1092,  1093,  1094,  1095,  1097,  1098,  1099,
    1100,  1102,  1103,  1104,  1106,  1110,  1111,  1114,  1125,  1131,  1153,  2049,  2052,  2055,  2057,  2058,
    2060,  2064,  2067,  2068,  2070,  2074,  2077,  2092,  2107,  2110,  2115,  2155,  3073,  3076,  3079,  3081,
    3082,  3084,  3098,  3131,  3179,  4097,  4100,  4103,  4105,  4106,  4108,  4122,  4155,  5121,  5124,  5127,
    5129,  5130,  5132,  5146,  5179,  6145,  6153,  6154,  6156,  6170,  6203,  7169,  7177,  7178,  7194,  7227,
    8193,  8201,  8202,  8251,  9217,  9225,  9226,  9275,  10241, 10249, 10250, 11265, 11273, 11274, 12289, 12297,
    12298, 13313, 13321, 13322, 14337, 14346, 15361, 15370, 16385, 16394, 17418, 18442, 19466, 20490,
};
static_assert(std::size(kKnownLcids) == 158);

constexpr std::uint32_t kMaxLcidOrBuild = 65535;  // both are 16-bit values in Windows and vlmcsd
constexpr int kFirstKmsYear = 2006;               // KMS shipped with Windows Vista / Server 2008
constexpr std::uint32_t kFirstKmsBuild = 6000;    // Windows Vista RTM

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

bool is_leap(unsigned y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

// Echoes part of the input in an error message (printable ASCII kept, the rest escaped, cut short).
std::string show(std::string_view s) {
    static constexpr std::size_t kMax = 24;
    std::string out = "\"";
    for (std::size_t i = 0; i < s.size() && i < kMax; ++i) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
            out += static_cast<char>(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        }
    }
    if (s.size() > kMax) out += "...";
    return out + "\"";
}

std::uint32_t digits_value(std::string_view s) {
    std::uint32_t v = 0;
    for (char c : s) v = v * 10 + static_cast<std::uint32_t>(c - '0');
    return v;
}

bool all_digits(std::string_view s) {
    bool all = !s.empty();
    for (char c : s) all &= is_digit(c);  // no early exit: the parts are short, and nearly always digits
    return all;
}

// The release date to assume for a host build: its own, else that of the newest known older build (a
// lower bound), else the oldest known one.
std::int64_t build_release_floor(std::uint32_t build) {
    for (const auto& hb : kHostBuilds)
        if (hb.build <= build) return hb.release_unix;
    return kHostBuilds[std::size(kHostBuilds) - 1].release_unix;
}

std::string iso_date(std::chrono::sys_days d) {
    std::chrono::year_month_day ymd{d};
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                  static_cast<unsigned>(ymd.day()));
    return buf;
}

std::string pad(std::uint32_t v, int width) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%0*u", width, static_cast<unsigned>(v));
    return buf;
}

}  // namespace

// ---- parse / format ---------------------------------------------------------------------------

Result<EpidParts> parse_epid(std::string_view text) {
    // Split into the 8 '-'-separated parts, remembering where each starts (fixed arrays: this runs
    // for every response the analyzer fingerprints).
    std::array<std::string_view, 8> parts;
    std::array<std::size_t, 8> starts{};
    std::size_t count = 0, begin = 0;
    for (;;) {
        const std::size_t dash = std::min(text.find('-', begin), text.size());
        if (count < parts.size()) {
            parts[count] = text.substr(begin, dash - begin);
            starts[count] = begin;
        }
        ++count;
        if (dash == text.size()) break;
        begin = dash + 1;
    }
    if (count != parts.size())
        return ParseError{"epid", 0,
                          "expected 8 '-'-separated parts (PPPPP-GGGGG-KKK-KKKKKK-03-LCID-BUILD.0000-DDDYYYY), got " +
                              std::to_string(count) + " in " + show(text)};

    // The checks are tested first and the error built only when one fails: this runs for every response.
    auto fixed = [&](std::size_t i, std::size_t width, const char* name) -> std::optional<ParseError> {
        if (parts[i].size() == width && all_digits(parts[i])) [[likely]]
            return std::nullopt;
        return ParseError{std::string("epid.") + name, starts[i],
                          "expected " + std::to_string(width) + " digits, got " + show(parts[i])};
    };
    // Unpadded decimal: 1-5 digits, no leading zero (except "0" itself), at most 65535.
    auto unpadded = [&](std::string_view s, std::size_t at, const char* name) -> std::optional<ParseError> {
        if (all_digits(s) && s.size() <= 5 && (s.size() == 1 || s[0] != '0') && digits_value(s) <= kMaxLcidOrBuild)
            [[likely]]
            return std::nullopt;
        return ParseError{std::string("epid.") + name, at,
                          "expected an unpadded decimal number up to 65535, got " + show(s)};
    };

    if (auto e = fixed(0, 5, "platform")) return *e;
    if (auto e = fixed(1, 5, "group")) return *e;
    if (auto e = fixed(2, 3, "key_id")) return *e;
    if (auto e = fixed(3, 6, "key_id")) return *e;
    if (auto e = fixed(4, 2, "channel")) return *e;
    if (auto e = unpadded(parts[5], starts[5], "lcid")) return *e;

    std::string_view build_part = parts[6];
    std::size_t dot = build_part.find('.');
    if (dot == std::string_view::npos)
        return ParseError{"epid.build", starts[6], "expected BUILD.0000, got " + show(build_part)};
    if (auto e = unpadded(build_part.substr(0, dot), starts[6], "build")) return *e;
    if (build_part.substr(dot) != ".0000")
        return ParseError{"epid.build", starts[6] + dot,
                          "expected \".0000\" after the build, got " + show(build_part.substr(dot))};
    if (auto e = fixed(7, 7, "date")) return *e;

    EpidParts p;
    p.platform = digits_value(parts[0]);
    p.group = digits_value(parts[1]);
    p.key_id = digits_value(parts[2]) * 1000000 + digits_value(parts[3]);
    p.channel = digits_value(parts[4]);
    p.lcid = digits_value(parts[5]);
    p.build = digits_value(build_part.substr(0, dot));
    p.day_of_year = static_cast<std::uint16_t>(digits_value(parts[7].substr(0, 3)));
    p.year = static_cast<std::uint16_t>(digits_value(parts[7].substr(3)));
    return p;
}

std::string format_epid(const EpidParts& p) {
    return pad(p.platform, 5) + "-" + pad(p.group, 5) + "-" + pad(p.key_id / 1000000, 3) + "-" +
           pad(p.key_id % 1000000, 6) + "-" + pad(p.channel, 2) + "-" + std::to_string(p.lcid) + "-" +
           std::to_string(p.build) + ".0000-" + pad(p.day_of_year, 3) + pad(p.year, 4);
}

// ---- plausibility -----------------------------------------------------------------------------

std::vector<std::string> epid_anomalies(const EpidParts& p) {
    std::vector<std::string> notes;
    if (p.channel != 3)
        notes.push_back("Channel is " + pad(p.channel, 2) + ", genuine volume-licence ePIDs always use 03.");

    const unsigned days_in_year = is_leap(p.year) ? 366 : 365;
    const bool day_ok = p.day_of_year >= 1 && p.day_of_year <= days_in_year;
    if (!day_ok)
        notes.push_back("Day " + pad(p.day_of_year, 3) + " does not exist in " + pad(p.year, 4) + " (1.." +
                        std::to_string(days_in_year) + ").");

    if (p.build < kFirstKmsBuild) {
        notes.push_back("Host build " + std::to_string(p.build) + " predates KMS hosts (Windows Vista, build 6000).");
    } else if (std::uint32_t want = platform_for_build(p.build); want != p.platform) {
        notes.push_back("Platform " + pad(p.platform, 5) + " does not match host build " + std::to_string(p.build) +
                        " (expected " + pad(want, 5) + ").");
    }

    if (!std::binary_search(std::begin(kKnownLcids), std::end(kKnownLcids), p.lcid))
        notes.push_back("LCID " + std::to_string(p.lcid) + " is not a known Windows locale.");

    if (p.year < kFirstKmsYear) {
        notes.push_back("Year " + pad(p.year, 4) + " is before KMS existed (2006).");
    } else if (day_ok && p.build >= kFirstKmsBuild) {
        using namespace std::chrono;
        const sys_days date = sys_days{year{p.year} / January / 1} + days{p.day_of_year - 1};
        const sys_days release{days{build_release_floor(p.build) / 86400}};
        if (date < release)
            notes.push_back("Date " + iso_date(date) + " is before host build " + std::to_string(p.build) +
                            " was released (" + iso_date(release) + ").");
    }
    return notes;
}

// ---- tables -----------------------------------------------------------------------------------

const CsvlkFamily* csvlk_family(std::string_view ini_name) {
    for (const auto& f : kFamilies)
        if (f.name == ini_name) return &f;
    return nullptr;
}

std::span<const CsvlkFamily> csvlk_families() {
    return kFamilies;
}

std::span<const HostBuild> host_builds() {
    return kHostBuilds;
}

const HostBuild* find_host_build(std::uint32_t build) {
    for (const auto& hb : kHostBuilds)
        if (hb.build == build) return &hb;
    return nullptr;
}

std::uint32_t platform_for_build(std::uint32_t build) {
    if (build >= 10240) return 3612;  // Windows 10/11, Server 2016 and later
    if (build >= 9600) return 6401;   // Windows 8.1 / Server 2012 R2
    if (build >= 9200) return 5426;   // Windows 8 / Server 2012
    return 55041;                     // Vista / 7 / Server 2008 (R2), and anything older
}

const CsvlkFamily& csvlk_for_kms_id(const Guid& kms_id, const ProductTable& table) {
    if (const ProductInfo* p = table.find(kms_id); p && !p->epid_csvlk.empty())
        if (const CsvlkFamily* f = csvlk_family(p->epid_csvlk)) return *f;
    return kFamilies[0];  // vlmcsd answers unknown KMS IDs with the Windows CSVLK's ePID
}

// ---- generation -------------------------------------------------------------------------------

std::string generate_epid(const CsvlkFamily& f, std::uint32_t host_build, std::uint32_t lcid, FileTime now,
                          RandomSource& rng) {
    EpidParts p;
    p.platform = platform_for_build(host_build);
    p.group = f.group;
    p.key_id = f.max_key_id > f.min_key_id
                   ? static_cast<std::uint32_t>(rng.uniform(f.min_key_id, std::uint64_t{f.max_key_id} - 1))
                   : f.min_key_id;
    p.channel = 3;
    p.lcid = lcid;
    p.build = host_build;

    const std::int64_t lo = std::max(f.release_unix, build_release_floor(host_build));
    const std::int64_t hi = now.unix_seconds();
    std::int64_t t = lo;
    if (hi > lo) t = lo + static_cast<std::int64_t>(rng.uniform(0, static_cast<std::uint64_t>(hi - lo)));

    using namespace std::chrono;
    const sys_days day{days{t / 86400 - (t % 86400 < 0 ? 1 : 0)}};
    const year_month_day ymd{day};
    p.year = static_cast<std::uint16_t>(static_cast<int>(ymd.year()));
    p.day_of_year = static_cast<std::uint16_t>((day - sys_days{ymd.year() / January / 1}).count() + 1);
    return format_epid(p);
}

// ---- HwId -------------------------------------------------------------------------------------

std::optional<HwId> HwId::parse(std::string_view hex16) {
    if (hex16.size() != 16) return std::nullopt;
    HwId id;
    for (std::size_t i = 0; i < 16; ++i) {
        char c = hex16[i];
        int v;
        if (c >= '0' && c <= '9')
            v = c - '0';
        else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v = c - 'A' + 10;
        else
            return std::nullopt;
        id.bytes[i / 2] = static_cast<std::uint8_t>(id.bytes[i / 2] << 4 | v);
    }
    return id;
}

void HwId::format(char* out) const {
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (auto b : bytes) {
        *out++ = kHex[b >> 4];
        *out++ = kHex[b & 15];
    }
}

std::string HwId::to_string() const {
    std::string out(kTextSize, '\0');
    format(out.data());
    return out;
}

}  // namespace kmscope
