// --format json: one JSON object per line, written by RapidJSON's streaming Writer into a buffer that is
// reused from record to record (building a DOM per record cost more than everything else together).
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cassert>
#include <cstdint>
#include <cstring>

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

// RapidJSON's Writer with keys, and the strings record_fields.hpp knows to be plain, copied as they are.
// Keys are record_fields.hpp's literals; plain strings are the tool's own (GUIDs, times, HRESULTs,
// addresses, names from the core's tables), printable ASCII without quote or backslash. The escape
// scan over them was a tenth of kms-analyze's time on a KMS-only capture; it stays for every value
// that comes from a capture. Keys, plain strings and integers (73 per exchange) also reserve their
// separator with their bytes, in one step, where Writer's Prefix() reserves it on its own; they are
// inlined into their callers, so that where the length is a constant (a key written where it is named)
// the copy is a few moves.
class LineWriter : public rapidjson::Writer<rapidjson::StringBuffer> {
public:
    using Writer::Writer;
    [[gnu::always_inline]] bool Key(const char* name, rapidjson::SizeType size, bool = false) {
        return PlainString(name, size);
    }
    [[gnu::always_inline]] bool PlainString(const char* s, rapidjson::SizeType size) {
        assert(is_plain_text({s, size}));
        char* out = open_value(size + 2);
        out[0] = '"';
        copy_short(out + 1, s, size);
        out[size + 1] = '"';
        return EndValue(true);
    }
    bool Uint64(std::uint64_t v) {
        constexpr std::size_t kMaxDigits = 20;
        char* out = open_value(kMaxDigits);
        const char* end = rapidjson::internal::u64toa(v, out);
        os_->Pop(kMaxDigits - static_cast<std::size_t>(end - out));  // the room not used
        return EndValue(true);
    }

private:
    // Prefix()'s work (the separator before this value, and the value counted) and room for `size`
    // bytes after the separator.
    [[gnu::always_inline]] char* open_value(std::size_t size) {
        if (level_stack_.Empty()) {  // a value at the root: not one kms-analyze writes
            Prefix(rapidjson::kStringType);
            return os_->Push(size);
        }
        Level* level = level_stack_.Top<Level>();
        const std::size_t before = level->valueCount++;
        if (before == 0) return os_->Push(size);
        char* out = os_->Push(size + 1);
        out[0] = level->inArray || before % 2 == 0 ? ',' : ':';
        return out + 1;
    }
};

class JsonLines final : public Printer {
public:
    JsonLines(const ProductTable& products, std::FILE* out) : products_(products), out_(out) {}
    void print(const Record& record) override {
        buffer_.Clear();
        writer_.Reset(buffer_);
        fields::write_record(writer_, record, products_);
        buffer_.Put('\n');
        std::fwrite(buffer_.GetString(), 1, buffer_.GetSize(), out_);
    }
    void alert(const Alert& a, const Record& record) override {
        buffer_.Clear();
        writer_.Reset(buffer_);
        fields::write_alert(writer_, a, record);
        buffer_.Put('\n');
        std::fwrite(buffer_.GetString(), 1, buffer_.GetSize(), out_);
    }

private:
    const ProductTable& products_;
    std::FILE* out_;
    rapidjson::StringBuffer buffer_;
    LineWriter writer_;
};

}  // namespace

std::unique_ptr<Printer> make_json_printer(const ProductTable& products, std::FILE* out) {
    return std::make_unique<JsonLines>(products, out);
}

}  // namespace kmscope::analyzer
