// --format csv: the JSON record flattened to fixed columns named by their dotted JSON path
// ("request.cmid"). One column set serves every kind of record; a field a record lacks stays empty,
// and an array of strings becomes one cell joined with "; ".
#include <charconv>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "printer.hpp"
#include "record_fields.hpp"

namespace kmscope::analyzer {

namespace {

const std::vector<std::string>& columns() {
    static const std::vector<std::string> cols = [] {
        std::vector<std::string> c;
        for (const char* k : {"kind", "ts", "file", "stream", "client", "server", "call_id", "ndr", "version"})
            c.emplace_back(k);
        for (const char* k : {"cmid", "workstation", "app_id", "application", "sku_id", "product", "kms_id",
                              "kms_product", "license_status", "license_status_name", "n_policy", "client_time",
                              "vm_info", "binding_expiration", "previous_cmid"})
            c.push_back(std::string("request.") + k);
        c.emplace_back("response.epid");
        for (const char* k : {"platform", "group", "key_id", "channel", "lcid", "build", "date"})
            c.push_back(std::string("response.epid_parts.") + k);
        for (const char* k : {"hwid", "count", "activation_interval", "renewal_interval", "hresult", "hresult_name"})
            c.push_back(std::string("response.") + k);
        for (const char* k : {"fault.status", "fault.name", "verdict.ok", "verdict.outcome", "verdict.failed_checks",
                              "server_impl", "latency_ms", "state", "diagnostics"})
            c.emplace_back(k);
        // Added after the first release's columns, so that scripts reading columns by position keep working:
        // the separate address fields, and what connection and DNS rows carry.
        for (const char* k : {"client_ip", "client_port", "server_ip", "server_port", "kms", "client_bytes",
                              "server_bytes", "id", "response", "name", "qtype", "rcode", "answers"})
            c.emplace_back(k);
        return c;
    }();
    return cols;
}

// Receives write_fields()'s calls (RapidJSON's handler interface) and fills the cells of one row.
class CsvRow {
public:
    CsvRow() {
        for (std::size_t i = 0; i < columns().size(); ++i) index_.emplace(columns()[i], i);
        cells_.resize(columns().size());
    }
    void clear() {
        for (auto& c : cells_) c.clear();
        path_.clear();
        key_.clear();
        stack_.clear();
        depth_in_array_ = 0;
        array_column_ = kNone;
    }
    const std::vector<std::string>& cells() const { return cells_; }

    bool StartObject() {
        if (depth_in_array_ > 0) return ++depth_in_array_, item_first_ = true, true;
        stack_.push_back(path_.size());
        if (!key_.empty()) path_ += (path_.empty() ? "" : ".") + key_;
        return true;
    }
    bool EndObject(unsigned = 0) {
        if (depth_in_array_ > 1) return --depth_in_array_, true;
        path_.resize(stack_.back());
        stack_.pop_back();
        return true;
    }
    bool StartArray() {
        ++depth_in_array_;
        array_column_ = column();
        return true;
    }
    bool EndArray(unsigned = 0) {
        --depth_in_array_;
        array_column_ = kNone;
        return true;
    }
    bool Key(const char* s, unsigned n, bool = false) {
        (depth_in_array_ == 0 ? key_ : item_key_).assign(s, n);
        return true;
    }
    bool String(const char* s, unsigned n, bool = false) { return value(std::string_view(s, n)); }
    bool Uint64(std::uint64_t v) { return number(v); }
    bool Bool(bool b) { return value(b ? "true" : "false"); }
    bool Null() { return true; }  // an empty cell
    bool Double(double d) {
        char buf[32];
        auto end = std::to_chars(buf, buf + sizeof buf, d).ptr;
        std::string s(buf, end);
        if (s.find_first_of(".en") == std::string::npos) s += ".0";  // as in the JSON output
        return value(s);
    }

private:
    static constexpr std::size_t kNone = static_cast<std::size_t>(-1);
    std::size_t column() const {
        auto it = index_.find(path_.empty() ? key_ : path_ + "." + key_);
        return it == index_.end() ? kNone : it->second;
    }
    bool number(std::uint64_t v) {
        char buf[24];
        return value(std::string_view(buf, std::to_chars(buf, buf + sizeof buf, v).ptr - buf));
    }
    bool value(std::string_view v) {
        if (depth_in_array_ == 1 && array_column_ != kNone) {
            auto& cell = cells_[array_column_];
            if (!cell.empty()) cell += "; ";
            cell += v;
        } else if (depth_in_array_ == 2 && array_column_ != kNone) {
            // An array of objects (a DNS message's answers): "key=value key=value; key=value ...".
            auto& cell = cells_[array_column_];
            if (!item_first_)
                cell += ' ';
            else if (!cell.empty())
                cell += "; ";
            item_first_ = false;
            cell.append(item_key_).append("=").append(v);
        } else if (depth_in_array_ == 0) {
            if (auto c = column(); c != kNone) cells_[c] = v;
        }
        return true;
    }
    std::unordered_map<std::string, std::size_t> index_;
    std::vector<std::string> cells_;
    std::string path_, key_;
    std::string item_key_;    // the key inside an object in an array
    bool item_first_ = true;  // no value of that object written yet
    std::vector<std::size_t> stack_;  // path_ lengths of the enclosing objects
    int depth_in_array_ = 0;
    std::size_t array_column_ = kNone;
};

void append_cell(std::string& line, const std::string& s) {
    if (s.find_first_of(",\"\r\n") == std::string::npos) {
        line += s;
        return;
    }
    line += '"';
    for (char c : s) {
        if (c == '"') line += '"';
        line += c;
    }
    line += '"';
}

class CsvPrinter final : public Printer {
public:
    CsvPrinter(const ProductTable& products, std::FILE* out) : products_(products), out_(out) {}
    void print(const Record& record) override {
        line_.clear();
        if (!header_done_) {
            header_done_ = true;
            for (const auto& c : columns()) line_ += (line_.empty() ? "" : ",") + c;
            line_ += '\n';
        }
        row_.clear();
        fields::write_record(row_, record, products_);
        bool first = true;
        for (const auto& cell : row_.cells()) {
            if (!first) line_ += ',';
            first = false;
            append_cell(line_, cell);
        }
        line_ += '\n';
        std::fwrite(line_.data(), 1, line_.size(), out_);
    }

private:
    const ProductTable& products_;
    std::FILE* out_;
    bool header_done_ = false;
    CsvRow row_;
    std::string line_;
};

}  // namespace

std::unique_ptr<Printer> make_csv_printer(const ProductTable& products, std::FILE* out) {
    return std::make_unique<CsvPrinter>(products, out);
}

}  // namespace kmscope::analyzer
