#include "kmscope/bytes.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace kmscope {

std::string ParseError::to_string() const {
    return field + " at offset " + std::to_string(offset) + ": " + message;
}

// ---- Guid -------------------------------------------------------------------------------------

namespace {
int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
}  // namespace

std::optional<Guid> Guid::parse(std::string_view text) {
    if (text.size() == 38 && text.front() == '{' && text.back() == '}') text = text.substr(1, 36);
    if (text.size() != 36) return std::nullopt;
    // Text order of the 16 bytes; the first three groups are little-endian on the wire.
    std::array<std::uint8_t, 16> be{};
    std::size_t n = 0;
    for (std::size_t i = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (text[i] != '-') return std::nullopt;
            ++i;
            continue;
        }
        int hi = hex_value(text[i]), lo = hex_value(text[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        be[n++] = static_cast<std::uint8_t>(hi << 4 | lo);
        i += 2;
    }
    Guid g;
    static constexpr int order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
    for (int i = 0; i < 16; ++i) g.wire[i] = be[order[i]];
    return g;
}

Guid Guid::from_wire(ByteView bytes) {
    Guid g;
    if (!bytes.empty()) std::memcpy(g.wire.data(), bytes.data(), std::min<std::size_t>(16, bytes.size()));
    return g;
}

void Guid::format(char* out) const {
    // By hand rather than snprintf: the analyzer formats several GUIDs per exchange.
    // Two hex digits per byte from one table, and the dashes at fixed places of the 36 characters.
    static constexpr auto kPairs = [] {
        std::array<char, 512> t{};
        constexpr char hex[] = "0123456789abcdef";
        for (std::size_t b = 0; b < 256; ++b) t[2 * b] = hex[b >> 4], t[2 * b + 1] = hex[b & 15];
        return t;
    }();
    static constexpr std::uint8_t kOrder[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
    static constexpr std::uint8_t kAt[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
    for (std::size_t i = 0; i < 16; ++i) std::memcpy(out + kAt[i], &kPairs[2 * wire[kOrder[i]]], 2);
    out[8] = out[13] = out[18] = out[23] = '-';
}

std::string Guid::to_string() const {
    std::string s(kTextSize, '\0');
    format(s.data());
    return s;
}

bool Guid::is_nil() const {
    for (auto b : wire)
        if (b) return false;
    return true;
}

std::size_t GuidHash::operator()(const Guid& g) const noexcept {
    return static_cast<std::size_t>(load_u64le(g.wire.data()) * 0x9E3779B97F4A7C15ull ^ load_u64le(g.wire.data() + 8));
}

// ---- FileTime ---------------------------------------------------------------------------------

namespace {
constexpr std::int64_t kFileTimeEpochOffset = 11644473600;  // seconds from 1601-01-01 to 1970-01-01
constexpr std::int64_t kTicksPerSecond = 10000000;
}  // namespace

FileTime FileTime::from_unix(std::int64_t unix_seconds) {
    // Saturates instead of overflowing: capture files can carry any 64-bit time stamp.
    constexpr std::int64_t kMaxSeconds = static_cast<std::int64_t>(UINT64_MAX / kTicksPerSecond) - kFileTimeEpochOffset;
    if (unix_seconds <= -kFileTimeEpochOffset) return FileTime{0};
    if (unix_seconds >= kMaxSeconds) return FileTime{UINT64_MAX};
    return FileTime{static_cast<std::uint64_t>(unix_seconds + kFileTimeEpochOffset) * kTicksPerSecond};
}

std::int64_t FileTime::unix_seconds() const {
    return static_cast<std::int64_t>(ticks / kTicksPerSecond) - kFileTimeEpochOffset;
}

namespace {
// Writes `v` (below 10^Width) as exactly Width decimal digits; returns the end. A constant width lets the
// compiler turn each division into a multiplication: several times per exchange printed.
template <int Width>
char* put_digits(char* out, std::uint64_t v) {
    for (int i = Width - 1; i >= 0; --i) {
        out[i] = static_cast<char>('0' + v % 10);
        v /= 10;
    }
    return out + Width;
}
}  // namespace

std::size_t FileTime::format_iso8601(char* out) const {
    // Proleptic Gregorian calendar from a day count (H. Hinnant's civil_from_days) instead of
    // gmtime_r + strftime: exact for every FILETIME, and cheap enough for several per exchange.
    const std::uint64_t secs = ticks / kTicksPerSecond;
    const std::uint64_t sod = secs % 86400;
    // Days since 0000-03-01 (1601-01-01 is day 584694): every FILETIME is non-negative here.
    const std::uint64_t z = secs / 86400 + 584694;
    const std::uint64_t era = z / 146097, doe = z % 146097;
    const std::uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const std::uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const std::uint64_t mp = (5 * doy + 2) / 153;
    const std::uint64_t day = doy - (153 * mp + 2) / 5 + 1;
    const std::uint64_t month = mp < 10 ? mp + 3 : mp - 9;
    const std::uint64_t year = era * 400 + yoe + (month <= 2 ? 1 : 0);
    // The largest 64-bit FILETIME falls in year 60056: five digits from year 10000 on, four (zero-padded)
    // before.
    char* p = year >= 10000 ? put_digits<5>(out, year) : put_digits<4>(out, year);
    *p++ = '-';
    p = put_digits<2>(p, month);
    *p++ = '-';
    p = put_digits<2>(p, day);
    *p++ = 'T';
    p = put_digits<2>(p, sod / 3600);
    *p++ = ':';
    p = put_digits<2>(p, sod / 60 % 60);
    *p++ = ':';
    p = put_digits<2>(p, sod % 60);
    if (const auto frac = ticks % kTicksPerSecond) {
        *p++ = '.';
        p = put_digits<7>(p, frac);
    }
    *p++ = 'Z';
    return static_cast<std::size_t>(p - out);
}

std::string FileTime::to_iso8601() const {
    char buf[kIso8601MaxSize];
    return std::string(buf, format_iso8601(buf));
}

// ---- Reader -----------------------------------------------------------------------------------

bool Reader::fail_need(std::size_t n, std::string_view field) {
    if (error_) return false;
    error_ = ParseError{std::string(field), offset(),
                        "truncated (needs " + std::to_string(n) + " bytes, " + std::to_string(remaining()) + " left)"};
    return false;
}

void Reader::fail(std::string_view field, std::string message) {
    if (!error_) error_ = ParseError{std::string(field), offset(), std::move(message)};
}

// ---- Writer -----------------------------------------------------------------------------------

void Writer::u16le(std::uint16_t v) {
    out_.push_back(static_cast<std::uint8_t>(v));
    out_.push_back(static_cast<std::uint8_t>(v >> 8));
}
void Writer::u32le(std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void Writer::u64le(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void Writer::align(std::size_t alignment) {
    while (out_.size() % alignment) out_.push_back(0);
}
void Writer::patch_u16le(std::size_t at, std::uint16_t v) {
    out_.at(at) = static_cast<std::uint8_t>(v);
    out_.at(at + 1) = static_cast<std::uint8_t>(v >> 8);
}
void Writer::patch_u32le(std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out_.at(at + i) = static_cast<std::uint8_t>(v >> (8 * i));
}

// ---- UTF-16 / UTF-8 ---------------------------------------------------------------------------

namespace {
void append_utf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}
constexpr char32_t kReplacement = 0xFFFD;
}  // namespace

std::string utf16le_to_utf8(ByteView bytes, bool stop_at_nul) {
    const std::size_t units = bytes.size() / 2;
    // Workstation names and ePIDs are ASCII: the units up to the NUL, copied byte for byte, without a
    // push_back per character (once per record printed).
    std::size_t ascii = 0;
    // Four units at a time while all four are below 0x80 (and not NUL, when that ends the text).
    for (; ascii + 4 <= units; ascii += 4) {
        const std::uint64_t w = load_u64le(bytes.data() + 2 * ascii);  // unit i in bits 16i to 16i+15
        if (w & 0xFF80FF80FF80FF80ull) break;
        if (stop_at_nul && ((w - 0x0001000100010001ull) & 0x8000800080008000ull)) break;  // a unit is 0
    }
    while (ascii < units && bytes[2 * ascii + 1] == 0 && bytes[2 * ascii] < 0x80 && (bytes[2 * ascii] || !stop_at_nul))
        ++ascii;
    if (ascii == units || (stop_at_nul && bytes[2 * ascii] == 0 && bytes[2 * ascii + 1] == 0)) {
        std::string out(ascii, '\0');
        for (std::size_t i = 0; i < ascii; ++i) out[i] = static_cast<char>(bytes[2 * i]);
        return out;
    }
    std::string out;
    out.reserve(units);  // mostly one byte per unit
    for (std::size_t i = 0; i < units; ++i) {
        char32_t u = static_cast<char32_t>(bytes[2 * i] | bytes[2 * i + 1] << 8);
        if (u == 0 && stop_at_nul) break;
        if (u < 0x80) {
            out.push_back(static_cast<char>(u));
            continue;
        }
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (i + 1 < units) {
                char32_t lo = load_u16le(bytes.data() + 2 * (i + 1));
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    append_utf8(out, 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00));
                    ++i;
                    continue;
                }
            }
            append_utf8(out, kReplacement);
        } else if (u >= 0xDC00 && u <= 0xDFFF) {
            append_utf8(out, kReplacement);
        } else {
            append_utf8(out, u);
        }
    }
    return out;
}

namespace {
// Decodes the UTF-8 sequence at text[i]: its code point and length, or nullopt (one bad byte to
// replace) for a malformed, overlong, surrogate or out-of-range sequence.
std::optional<std::pair<char32_t, std::size_t>> next_utf8(std::string_view text, std::size_t i) {
    auto c = static_cast<unsigned char>(text[i]);
    char32_t cp;
    std::size_t len;
    if (c < 0x80) return std::pair<char32_t, std::size_t>{c, 1};
    if ((c & 0xE0) == 0xC0) {
        cp = c & 0x1F, len = 2;
    } else if ((c & 0xF0) == 0xE0) {
        cp = c & 0x0F, len = 3;
    } else if ((c & 0xF8) == 0xF0) {
        cp = c & 0x07, len = 4;
    } else {
        return std::nullopt;
    }
    if (i + len > text.size()) return std::nullopt;
    for (std::size_t k = 1; k < len; ++k) {
        auto cc = static_cast<unsigned char>(text[i + k]);
        if ((cc & 0xC0) != 0x80) return std::nullopt;
        cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr char32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
    return std::pair{cp, len};
}
}  // namespace

Bytes utf8_to_utf16le(std::string_view text) {
    Bytes out;
    auto put = [&](char32_t u) {
        out.push_back(static_cast<std::uint8_t>(u));
        out.push_back(static_cast<std::uint8_t>(u >> 8));
    };
    std::size_t i = 0;
    while (i < text.size()) {
        auto next = next_utf8(text, i);
        if (!next) {
            put(kReplacement);
            ++i;
            continue;
        }
        auto [cp, len] = *next;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            put(0xD800 + (cp >> 10));
            put(0xDC00 + (cp & 0x3FF));
        } else {
            put(cp);
        }
        i += len;
    }
    return out;
}

bool is_valid_utf8(std::string_view text) {
    // Eight ASCII bytes at a time first: nearly every string kms-analyze prints is ASCII.
    std::size_t i = 0;
    for (std::uint64_t w; i + 8 <= text.size(); i += 8) {
        std::memcpy(&w, text.data() + i, 8);
        if (w & 0x8080808080808080ull) break;
    }
    while (i < text.size()) {
        if (static_cast<unsigned char>(text[i]) < 0x80) {
            ++i;
            continue;
        }
        auto next = next_utf8(text, i);
        if (!next) return false;
        i += next->second;
    }
    return true;
}

std::string sanitize_utf8(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
        auto next = next_utf8(text, i);
        if (!next) {
            append_utf8(out, kReplacement);
            ++i;
            continue;
        }
        out.append(text.substr(i, next->second));
        i += next->second;
    }
    return out;
}

// ---- hex --------------------------------------------------------------------------------------

std::string to_hex(ByteView bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (auto b : bytes) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

std::optional<Bytes> from_hex(std::string_view text) {
    Bytes out;
    int hi = -1;
    for (char c : text) {
        if (c == ' ' || c == '\n' || c == '\t' || c == '\r') continue;
        int v = hex_value(c);
        if (v < 0) return std::nullopt;
        if (hi < 0) {
            hi = v;
        } else {
            out.push_back(static_cast<std::uint8_t>(hi << 4 | v));
            hi = -1;
        }
    }
    if (hi >= 0) return std::nullopt;
    return out;
}

bool equal_bytes(ByteView a, ByteView b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

}  // namespace kmscope
