// --format json: one JSON object per line, written by RapidJSON's streaming Writer into a buffer that is
// reused from record to record (building a DOM per record cost more than everything else together).
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cassert>
#include <cstring>

#include "plain_text.hpp"
#include "printer.hpp"
#include "record_fields.hpp"

namespace kmscope::analyzer {

namespace {

// RapidJSON's Writer with keys, and the strings record_fields.hpp knows to be plain, copied as they are.
// Keys are record_fields.hpp's literals; plain strings are the tool's own (GUIDs, times, HRESULTs,
// addresses, names from the core's tables), printable ASCII without quote or backslash. The escape
// scan over them was a tenth of kms-analyze's time on a KMS-only capture; it stays for every value
// that comes from a capture.
class LineWriter : public rapidjson::Writer<rapidjson::StringBuffer> {
public:
    using Writer::Writer;
    bool Key(const char* name, rapidjson::SizeType size, bool = false) { return PlainString(name, size); }
    bool PlainString(const char* s, rapidjson::SizeType size) {
        assert(is_plain_text({s, size}));
        Prefix(rapidjson::kStringType);
        char* out = os_->Push(size + 2);
        out[0] = '"';
        std::memcpy(out + 1, s, size);
        out[size + 1] = '"';
        return EndValue(true);
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
