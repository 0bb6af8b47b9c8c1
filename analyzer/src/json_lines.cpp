// --format json: one JSON object per line, written by RapidJSON's streaming Writer into a buffer that is
// reused from record to record (building a DOM per record cost more than everything else together).
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "printer.hpp"
#include "record_fields.hpp"

namespace kmscope::analyzer {

namespace {

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

private:
    const ProductTable& products_;
    std::FILE* out_;
    rapidjson::StringBuffer buffer_;
    rapidjson::Writer<rapidjson::StringBuffer> writer_;
};

}  // namespace

std::unique_ptr<Printer> make_json_printer(const ProductTable& products, std::FILE* out) {
    return std::make_unique<JsonLines>(products, out);
}

}  // namespace kmscope::analyzer
