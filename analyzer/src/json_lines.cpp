// --format json: one JSON object per line, written into a buffer that is reused from record to record
// (building a DOM per record cost more than everything else together).
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>

#include "plain_text.hpp"
#include "printer.hpp"
#include "record_fields.hpp"

namespace kmscope::analyzer {

namespace {

// Copies a short string without a call into libc: most keys and values are 2 to 40 bytes, and a
// memcpy call per value was a tenth of the writer's time. Overlapping loads, never past either end.
[[gnu::always_inline]] inline void copy_short(char* out, const char* in, std::size_t n) {
    auto copy16 = [](char* o, const char* i) { std::memcpy(o, i, 16); };  // inlined: a constant size
    if (n >= 16) {
        if (n > 64) return static_cast<void>(std::memcpy(out, in, n));
        copy16(out, in);
        if (n > 32) copy16(out + 16, in + 16), copy16(out + n - 32, in + n - 32);
        copy16(out + n - 16, in + n - 16);
    } else if (n >= 8) {
        std::uint64_t a, b;
        std::memcpy(&a, in, 8), std::memcpy(&b, in + n - 8, 8);
        std::memcpy(out, &a, 8), std::memcpy(out + n - 8, &b, 8);
    } else if (n >= 4) {
        std::uint32_t a, b;
        std::memcpy(&a, in, 4), std::memcpy(&b, in + n - 4, 4);
        std::memcpy(out, &a, 4), std::memcpy(out + n - 4, &b, 4);
    } else if (n > 0) {
        out[0] = in[0], out[n / 2] = in[n / 2], out[n - 1] = in[n - 1];
    }
}

// The writer of one JSON line, with the SAX interface record_fields.hpp calls (RapidJSON's names).
//
// Keys are record_fields.hpp's literals, and plain strings the tool's own (GUIDs, times, HRESULTs,
// addresses, names from the core's tables): printable ASCII without quote or backslash, copied as they are.
// The escape scan over them was a tenth of kms-analyze's time on a KMS-only capture; it stays for every
// value that comes from a capture (String), which RapidJSON's Writer escapes, as it formats doubles.
//
// Why not RapidJSON's Writer for the rest: it keeps a stack of levels and counts every value to choose
// between ',' and ':', and reserves room per value through its own stack. With 73 values per exchange that
// bookkeeping was most of the printing time. Here the only state is the separator owed before the next
// value: none after '{', '[' or a key (which writes its own ':'), ',' after a value. write_fields emits
// objects and arrays properly nested by construction, and the tests parse every line back.
class LineWriter {
public:
    LineWriter() { grow(4096); }
    /// Starts a new line, keeping the buffer.
    void Reset() {
        cur_ = buf_.get();
        sep_ = 0;
    }
    /// The line so far, ended by '\n'.
    std::string_view line() {
        reserve(1);
        *cur_++ = '\n';
        return {buf_.get(), static_cast<std::size_t>(cur_ - buf_.get())};
    }

    bool StartObject() { return open('{'); }
    bool EndObject(rapidjson::SizeType = 0) { return close('}'); }
    bool StartArray() { return open('['); }
    bool EndArray(rapidjson::SizeType = 0) { return close(']'); }
    [[gnu::always_inline]] bool Key(const char* name, rapidjson::SizeType size, bool = false) {
        assert(is_plain_text({name, size}));
        char* out = value(size + 3);
        out[0] = '"';
        copy_short(out + 1, name, size);
        out[size + 1] = '"';
        out[size + 2] = ':';
        cur_ = out + size + 3;
        sep_ = 0;
        return true;
    }
    [[gnu::always_inline]] bool PlainString(const char* s, rapidjson::SizeType size) {
        assert(is_plain_text({s, size}));
        char* out = value(size + 2);
        out[0] = '"';
        copy_short(out + 1, s, size);
        out[size + 1] = '"';
        return done(out + size + 2);
    }
    bool Uint64(std::uint64_t v) {
        constexpr std::size_t kMaxDigits = 20;
        char* out = value(kMaxDigits);
        return done(rapidjson::internal::u64toa(v, out));
    }
    bool Bool(bool b) { return b ? literal("true", 4) : literal("false", 5); }
    bool Null() { return literal("null", 4); }
    /// Text from a capture: escaped as RapidJSON escapes it.
    bool String(const char* s, rapidjson::SizeType size, bool = false) {
        scratch_.Clear();
        rapidjson::Writer<rapidjson::StringBuffer> w(scratch_);
        w.String(s, size);
        return literal(scratch_.GetString(), scratch_.GetSize());
    }
    /// As RapidJSON formats it (shortest round-trip digits).
    bool Double(double d) {
        scratch_.Clear();
        rapidjson::Writer<rapidjson::StringBuffer> w(scratch_);
        if (!w.Double(d)) return literal("null", 4);  // NaN or infinity: no JSON number (never a latency)
        return literal(scratch_.GetString(), scratch_.GetSize());
    }

private:
    // Room for the separator owed and `size` bytes after it; the separator written. Where the value goes.
    [[gnu::always_inline]] char* value(std::size_t size) {
        reserve(size + 1);
        char* out = cur_;
        *out = sep_;  // a 0 written where there is no separator is overwritten by the value
        return out + (sep_ != 0);
    }
    [[gnu::always_inline]] bool done(char* end) {
        cur_ = end;
        sep_ = ',';
        return true;
    }
    bool literal(const char* text, std::size_t size) {
        char* out = value(size);
        std::memcpy(out, text, size);
        return done(out + size);
    }
    bool open(char bracket) {
        char* out = value(1);
        *out = bracket;
        cur_ = out + 1;
        sep_ = 0;
        return true;
    }
    bool close(char bracket) {
        reserve(1);
        *cur_++ = bracket;
        sep_ = ',';
        return true;
    }
    [[gnu::always_inline]] void reserve(std::size_t size) {
        if (static_cast<std::size_t>(end_ - cur_) < size) [[unlikely]]
            grow(size);
    }
    void grow(std::size_t size) {
        const std::size_t used = buf_ ? static_cast<std::size_t>(cur_ - buf_.get()) : 0;
        const std::size_t capacity = std::max(2 * static_cast<std::size_t>(end_ - buf_.get()), used + size);
        auto bigger = std::make_unique<char[]>(capacity);
        if (used) std::memcpy(bigger.get(), buf_.get(), used);
        buf_ = std::move(bigger);
        cur_ = buf_.get() + used;
        end_ = buf_.get() + capacity;
    }
    std::unique_ptr<char[]> buf_;
    char* cur_ = nullptr;
    char* end_ = nullptr;
    char sep_ = 0;                     // before the next value: 0 or ','
    rapidjson::StringBuffer scratch_;  // escaped strings and doubles
};

class JsonLines final : public Printer {
public:
    JsonLines(const ProductTable& products, std::FILE* out) : products_(products), out_(out) {}
    void print(const Record& record) override {
        writer_.Reset();
        fields::write_record(writer_, record, products_);
        write(writer_.line());
    }
    void alert(const Alert& a, const Record& record) override {
        writer_.Reset();
        fields::write_alert(writer_, a, record);
        write(writer_.line());
    }

private:
    void write(std::string_view line) { std::fwrite(line.data(), 1, line.size(), out_); }
    const ProductTable& products_;
    std::FILE* out_;
    LineWriter writer_;
};

}  // namespace

std::unique_ptr<Printer> make_json_printer(const ProductTable& products, std::FILE* out) {
    return std::make_unique<JsonLines>(products, out);
}

}  // namespace kmscope::analyzer
