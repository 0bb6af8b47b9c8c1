// Byte-level building blocks shared by every layer: bounds-checked little-endian reading that fails
// closed with a diagnostic naming the field and offset, writing, GUIDs in Microsoft layout, FILETIME,
// UTF-16LE <-> UTF-8 and hex.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace kmscope {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

/// A parse failure: which field, at which absolute offset, and why.
struct ParseError {
    std::string field;
    std::size_t offset = 0;
    std::string message;
    /// Human-readable form, e.g. "frag_length at offset 8: truncated (needs 2 bytes, 1 left)".
    std::string to_string() const;
};

/// Either a value or the ParseError that prevented it.
template <class T>
class Result {
public:
    Result(T value) : v_(std::move(value)) {}
    Result(ParseError error) : v_(std::move(error)) {}
    /// True when a value is held.
    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    /// The value; only valid when ok().
    T& value() { return std::get<0>(v_); }
    const T& value() const { return std::get<0>(v_); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() { return value(); }
    const T& operator*() const { return value(); }
    /// The error; only valid when !ok().
    const ParseError& error() const { return std::get<1>(v_); }

private:
    std::variant<T, ParseError> v_;
};

/// A GUID, stored as its 16 wire bytes in Microsoft layout (Data1..3 little-endian, Data4 raw).
struct Guid {
    std::array<std::uint8_t, 16> wire{};

    /// Parses "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (optionally in braces, any case).
    static std::optional<Guid> parse(std::string_view text);
    /// Builds a GUID from 16 wire bytes (must be exactly 16).
    static Guid from_wire(ByteView bytes);
    /// Characters of the canonical text form.
    static constexpr std::size_t kTextSize = 36;
    /// Lower-case canonical text form.
    std::string to_string() const;
    /// Writes the canonical text form (kTextSize characters, no terminator) to `out`, without allocating.
    void format(char* out) const;
    /// True for the all-zero GUID.
    bool is_nil() const;
    auto operator<=>(const Guid&) const = default;
};

/// Hash functor so GUIDs can key unordered containers.
struct GuidHash {
    std::size_t operator()(const Guid& g) const noexcept;
};

/// Windows FILETIME: 100-ns intervals since 1601-01-01 UTC.
struct FileTime {
    std::uint64_t ticks = 0;

    /// Converts Unix seconds to FILETIME (saturating at 1601-01-01 and at the largest FILETIME).
    static FileTime from_unix(std::int64_t unix_seconds);
    /// Seconds since 1970 (floor), possibly negative for pre-1970 values.
    std::int64_t unix_seconds() const;
    /// ISO 8601 UTC, e.g. "2021-06-20T02:19:34.7525980Z" (fraction only when non-zero).
    std::string to_iso8601() const;
    /// Longest to_iso8601() text (a five-digit year, a fraction and the "Z").
    static constexpr std::size_t kIso8601MaxSize = 32;
    /// Writes to_iso8601()'s text to `out` (at least kIso8601MaxSize bytes) without allocating; returns its length.
    std::size_t format_iso8601(char* out) const;
    auto operator<=>(const FileTime&) const = default;
};

/// Sticky, bounds-checked little-endian reader (fails closed: after the first error every read
/// returns zero/empty and the first error is kept).
class Reader {
public:
    /// Reads `data`; `base_offset` is added to positions in diagnostics (absolute offsets).
    explicit Reader(ByteView data, std::size_t base_offset = 0) : data_(data), base_(base_offset) {}

    // The field readers run for every field of every PDU: they are defined below, inline.
    /// Reads one byte (0 after a failure).
    std::uint8_t u8(std::string_view field);
    /// Reads a little-endian u16 (0 after a failure).
    std::uint16_t u16le(std::string_view field);
    /// Reads a little-endian u32 (0 after a failure).
    std::uint32_t u32le(std::string_view field);
    /// Reads a little-endian u64 (0 after a failure).
    std::uint64_t u64le(std::string_view field);
    /// Reads a 16-byte GUID in Microsoft layout (nil after a failure).
    Guid guid(std::string_view field);
    /// Next n bytes as a view into the input (empty on failure).
    ByteView bytes(std::size_t n, std::string_view field);
    /// Advances n bytes.
    void skip(std::size_t n, std::string_view field);
    /// Records a semantic failure at the current offset (first failure wins).
    void fail(std::string_view field, std::string message);

    /// True while no read has failed.
    bool ok() const { return !error_.has_value(); }
    /// The first failure, if any.
    const std::optional<ParseError>& error() const { return error_; }
    /// Absolute offset of the next byte.
    std::size_t offset() const { return base_ + pos_; }
    /// Offset relative to the start of this reader's data.
    std::size_t position() const { return pos_; }
    /// Bytes not yet consumed.
    std::size_t remaining() const { return data_.size() - pos_; }
    /// Everything not yet consumed.
    ByteView rest() const { return data_.subspan(pos_); }

private:
    // The check runs for every field of every PDU, so its common case is inline; the error path is not.
    bool need(std::size_t n, std::string_view field) {
        if (!error_ && n <= data_.size() - pos_) [[likely]]
            return true;
        return fail_need(n, field);
    }
    bool fail_need(std::size_t n, std::string_view field);
    ByteView data_;
    std::size_t base_ = 0;
    std::size_t pos_ = 0;
    std::optional<ParseError> error_;
};

/// Little-endian loads from raw memory (caller guarantees the length).
inline std::uint16_t load_u16le(const std::uint8_t* p) {
    return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
inline std::uint32_t load_u32le(const std::uint8_t* p) {
    return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
           (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
inline std::uint64_t load_u64le(const std::uint8_t* p) {
    return static_cast<std::uint64_t>(load_u32le(p)) | (static_cast<std::uint64_t>(load_u32le(p + 4)) << 32);
}

inline std::uint8_t Reader::u8(std::string_view field) {
    if (!need(1, field)) return 0;
    return data_[pos_++];
}
inline std::uint16_t Reader::u16le(std::string_view field) {
    if (!need(2, field)) return 0;
    const auto v = load_u16le(data_.data() + pos_);
    pos_ += 2;
    return v;
}
inline std::uint32_t Reader::u32le(std::string_view field) {
    if (!need(4, field)) return 0;
    const auto v = load_u32le(data_.data() + pos_);
    pos_ += 4;
    return v;
}
inline std::uint64_t Reader::u64le(std::string_view field) {
    if (!need(8, field)) return 0;
    const auto v = load_u64le(data_.data() + pos_);
    pos_ += 8;
    return v;
}
inline Guid Reader::guid(std::string_view field) {
    Guid g;
    if (!need(16, field)) return g;
    for (std::size_t i = 0; i < 16; ++i) g.wire[i] = data_[pos_ + i];
    pos_ += 16;
    return g;
}
inline ByteView Reader::bytes(std::size_t n, std::string_view field) {
    if (!need(n, field)) return {};
    const auto v = data_.subspan(pos_, n);
    pos_ += n;
    return v;
}
inline void Reader::skip(std::size_t n, std::string_view field) {
    if (need(n, field)) pos_ += n;
}

/// Appends little-endian values to a byte vector.
class Writer {
public:
    /// Appends one byte.
    void u8(std::uint8_t v) { out_.push_back(v); }
    /// Appends a little-endian u16.
    void u16le(std::uint16_t v);
    /// Appends a little-endian u32.
    void u32le(std::uint32_t v);
    /// Appends a little-endian u64.
    void u64le(std::uint64_t v);
    /// Appends a GUID's 16 wire bytes.
    void guid(const Guid& g) { bytes(g.wire); }
    /// Appends raw bytes.
    void bytes(ByteView b) { out_.insert(out_.end(), b.begin(), b.end()); }
    /// Appends n zero bytes.
    void zeros(std::size_t n) { out_.insert(out_.end(), n, 0); }
    /// Pads with zeros until size() is a multiple of `alignment`.
    void align(std::size_t alignment);
    /// Overwrites a u16/u32 at an earlier position (for length fields).
    void patch_u16le(std::size_t at, std::uint16_t v);
    /// Overwrites a u32 at an earlier position.
    void patch_u32le(std::size_t at, std::uint32_t v);
    /// Bytes written so far.
    std::size_t size() const { return out_.size(); }
    /// The buffer being written.
    Bytes& buffer() { return out_; }
    /// Moves the written bytes out.
    Bytes take() { return std::move(out_); }

private:
    Bytes out_;
};

/// Decodes UTF-16LE to UTF-8; stops at the first NUL code unit when `stop_at_nul`; invalid
/// surrogates become U+FFFD; a trailing odd byte is ignored.
std::string utf16le_to_utf8(ByteView bytes, bool stop_at_nul = true);
/// Encodes UTF-8 as UTF-16LE (no terminator); invalid UTF-8 sequences become U+FFFD.
Bytes utf8_to_utf16le(std::string_view text);
/// True when `text` is well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF).
bool is_valid_utf8(std::string_view text);
/// The text with every byte that does not start a well-formed UTF-8 sequence replaced by U+FFFD.
std::string sanitize_utf8(std::string_view text);

/// Lower-case hex of the bytes, no separators.
std::string to_hex(ByteView bytes);
/// Parses hex (whitespace ignored); nullopt on odd length or a non-hex character.
std::optional<Bytes> from_hex(std::string_view text);

/// True when both views hold the same bytes (constant-time not needed: all keys are public).
bool equal_bytes(ByteView a, ByteView b);

}  // namespace kmscope
