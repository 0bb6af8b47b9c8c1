#include "kmscope/products.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "kmscope/epid.hpp"

namespace kmscope {

namespace {

// ---- Small text helpers -----------------------------------------------------------------------

bool is_blank(char c) {
    return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
    return s;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

// Quotes a value for an error message; non-printable bytes are escaped and long values cut short.
std::string quoted(std::string_view s) {
    static constexpr std::size_t kMax = 48;
    std::string out = "\"";
    for (std::size_t i = 0; i < s.size() && i < kMax; ++i) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c >= 0x20 && c < 0x7F) {
            out += static_cast<char>(c);
        } else {
            static constexpr char kHex[] = "0123456789abcdef";
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 15];
        }
    }
    if (s.size() > kMax) out += "...";
    out += '"';
    return out;
}

// ---- RFC 4180 reader --------------------------------------------------------------------------

struct CsvRecord {
    std::size_t line = 0;    // physical line the record starts on (1-based)
    std::size_t offset = 0;  // byte offset of the record's first character
    std::vector<std::string> fields;
};

struct CsvProblem {
    std::size_t line = 0;
    std::size_t offset = 0;
    std::string message;
};

// Splits RFC 4180 text into records. Accepts CRLF or LF line ends, quoted fields (with doubled quotes,
// commas and line breaks inside), blanks around fields (trimmed when unquoted), a UTF-8 BOM, and blank
// lines (skipped). Rejects a quote inside an unquoted field, text after a closing quote, a stray CR and
// an unterminated quoted field.
class CsvReader {
public:
    explicit CsvReader(std::string_view text) : s_(text) {
        if (s_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = 3;
    }

    // Reads the next non-blank record; false at end of input or on error (then problem() is set).
    bool next(CsvRecord& rec) {
        for (;;) {
            if (pos_ >= s_.size()) return false;
            // Skip blank lines (only blanks before the line end).
            std::size_t p = pos_;
            while (p < s_.size() && is_blank(s_[p])) ++p;
            if (p >= s_.size()) return false;
            if (s_[p] == '\n' || (s_[p] == '\r' && p + 1 < s_.size() && s_[p + 1] == '\n')) {
                pos_ = p + (s_[p] == '\r' ? 2 : 1);
                ++line_;
                continue;
            }
            break;
        }
        rec = CsvRecord{line_, pos_, {}};
        for (;;) {
            std::string field;
            if (!read_field(field)) return false;
            rec.fields.push_back(std::move(field));
            if (pos_ >= s_.size()) return true;
            char c = s_[pos_];
            if (c == ',') {
                ++pos_;
                continue;
            }
            // read_field() stops only at ',', a line end or the end of input.
            pos_ += (c == '\r') ? 2 : 1;
            ++line_;
            return true;
        }
    }

    const std::optional<CsvProblem>& problem() const { return problem_; }

private:
    bool fail(std::string message) {
        problem_ = CsvProblem{line_, pos_, std::move(message)};
        return false;
    }

    bool at_line_end(std::size_t p) const {
        return p < s_.size() && (s_[p] == '\n' || (s_[p] == '\r' && p + 1 < s_.size() && s_[p + 1] == '\n'));
    }

    bool read_field(std::string& out) {
        std::size_t p = pos_;
        while (p < s_.size() && is_blank(s_[p])) ++p;
        if (p < s_.size() && s_[p] == '"') {
            const std::size_t open_line = line_;
            pos_ = p + 1;
            for (;;) {
                if (pos_ >= s_.size()) {
                    line_ = open_line;
                    return fail("unterminated quoted field (opened on line " + std::to_string(open_line) + ")");
                }
                char c = s_[pos_++];
                if (c == '"') {
                    if (pos_ < s_.size() && s_[pos_] == '"') {
                        out += '"';
                        ++pos_;
                        continue;
                    }
                    break;
                }
                if (c == '\n') ++line_;
                out += c;
            }
            while (pos_ < s_.size() && is_blank(s_[pos_])) ++pos_;
            if (pos_ < s_.size() && s_[pos_] != ',' && !at_line_end(pos_))
                return fail("unexpected text after a closing quote");
            return true;
        }
        const std::size_t start = pos_;
        while (pos_ < s_.size() && s_[pos_] != ',' && s_[pos_] != '\n') {
            if (s_[pos_] == '"') return fail("quote inside an unquoted field (quote the whole field)");
            if (s_[pos_] == '\r') {
                if (at_line_end(pos_)) break;
                return fail("carriage return not followed by a line feed");
            }
            ++pos_;
        }
        out = std::string(trim(s_.substr(start, pos_ - start)));
        return true;
    }

    std::string_view s_;
    std::size_t pos_ = 0;
    std::size_t line_ = 1;
    std::optional<CsvProblem> problem_;
};

// ---- Column handling --------------------------------------------------------------------------

enum Column { kKind, kGuid, kName, kAppGuid, kKmsGuid, kNPolicy, kProtocol, kEpidCsvlk, kGvlk, kSource, kColumns };
constexpr std::array<std::string_view, kColumns> kColumnNames = {
    "kind", "guid", "name", "app_guid", "kms_guid", "n_policy", "protocol", "epid_csvlk", "gvlk", "source"};
constexpr int kMaxNPolicy = 1000;  // vlmcsd refuses larger N policies

std::optional<ProductKind> parse_kind(std::string_view s) {
    std::string k = lower(s);
    if (k == "app") return ProductKind::App;
    if (k == "kms") return ProductKind::Kms;
    if (k == "sku") return ProductKind::Sku;
    return std::nullopt;
}

// Non-negative decimal without sign or leading zeros, at most `max`.
std::optional<int> parse_small_int(std::string_view s, int max) {
    if (s.empty() || s.size() > 9 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
    int v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + (c - '0');
    }
    if (v > max) return std::nullopt;
    return v;
}

// A GVLK "XXXXX-XXXXX-XXXXX-XXXXX-XXXXX" (letters and digits), returned upper-case.
std::optional<std::string> parse_gvlk(std::string_view s) {
    if (s.size() != 29) return std::nullopt;
    std::string out(s);
    for (std::size_t i = 0; i < out.size(); ++i) {
        char& c = out[i];
        if (i % 6 == 5) {
            if (c != '-') return std::nullopt;
            continue;
        }
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return std::nullopt;
    }
    return out;
}

ProductInfo from_builtin(const detail::BuiltinProductRow& r, bool& ok) {
    ProductInfo info;
    auto kind = parse_kind(r.kind);
    auto guid = Guid::parse(r.guid);
    ok = kind.has_value() && guid.has_value();
    if (!ok) return info;
    info.kind = *kind;
    info.guid = *guid;
    info.name = r.name;
    if (*r.app_guid) info.app = Guid::parse(r.app_guid);
    if (*r.kms_guid) info.kms = Guid::parse(r.kms_guid);
    info.n_policy = r.n_policy;
    info.protocol = r.protocol;
    info.epid_csvlk = r.epid_csvlk;
    info.gvlk = r.gvlk;
    return info;
}

}  // namespace

// ---- ProductTable -----------------------------------------------------------------------------

const ProductTable& ProductTable::builtin() {
    static const ProductTable table = [] {
        ProductTable t;
        t.rows_.reserve(detail::kBuiltinProductCount);
        for (std::size_t i = 0; i < detail::kBuiltinProductCount; ++i) {
            bool ok = false;
            ProductInfo info = from_builtin(detail::kBuiltinProducts[i], ok);
            if (ok) t.upsert(std::move(info));  // gen_products.py has validated every row already
        }
        return t;
    }();
    return table;
}

ProductTable ProductTable::with_builtin() {
    return builtin();
}

const ProductInfo* ProductTable::find(const Guid& g) const {
    auto it = index_.find(g);
    return it == index_.end() ? nullptr : &rows_[it->second];
}

std::string ProductTable::name_or_guid(const Guid& g) const {
    const ProductInfo* p = find(g);
    return p ? p->name : g.to_string();
}

void ProductTable::upsert(ProductInfo info) {
    auto it = index_.find(info.guid);
    if (it != index_.end()) {
        rows_[it->second] = std::move(info);
        return;
    }
    index_.emplace(info.guid, rows_.size());
    rows_.push_back(std::move(info));
}

Result<std::size_t> ProductTable::merge_csv_text(std::string_view csv) {
    return merge_csv(csv, "csv");
}

Result<std::size_t> ProductTable::merge_csv_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return ParseError{path, 0, std::string("cannot open: ") + std::strerror(errno)};
    std::ostringstream buf;
    buf << in.rdbuf();
    if (in.bad()) return ParseError{path, 0, "read error"};
    return merge_csv(buf.str(), path);
}

Result<std::size_t> ProductTable::merge_csv(std::string_view csv, std::string_view origin) {
    auto error = [&](std::size_t line, std::size_t offset, std::string message) {
        return ParseError{std::string(origin) + ":" + std::to_string(line), offset, std::move(message)};
    };

    CsvReader reader(csv);
    CsvRecord header;
    if (!reader.next(header)) {
        if (const auto& p = reader.problem()) return error(p->line, p->offset, p->message);
        return error(1, 0, "empty input, expected a header row with at least kind,guid,name");
    }

    // Map header names to columns; every name must be known and appear once.
    std::array<int, kColumns> where;
    where.fill(-1);
    for (std::size_t i = 0; i < header.fields.size(); ++i) {
        std::string name = lower(header.fields[i]);
        auto it = std::find(kColumnNames.begin(), kColumnNames.end(), name);
        if (it == kColumnNames.end())
            return error(header.line, header.offset,
                         "header: unknown column " + quoted(header.fields[i]) +
                             " (known: kind,guid,name,app_guid,kms_guid,n_policy,protocol,epid_csvlk,gvlk,source)");
        auto col = static_cast<std::size_t>(std::distance(kColumnNames.begin(), it));
        if (where[col] >= 0) return error(header.line, header.offset, "header: column " + name + " appears twice");
        where[col] = static_cast<int>(i);
    }
    for (Column required : {kKind, kGuid, kName})
        if (where[required] < 0)
            return error(header.line, header.offset,
                         "header: required column " + std::string(kColumnNames[required]) + " is missing");

    struct Parsed {
        ProductInfo info;
        std::size_t line;
    };
    std::vector<Parsed> parsed;
    std::unordered_map<Guid, std::size_t, GuidHash> seen;  // guid -> line

    CsvRecord rec;
    while (reader.next(rec)) {
        if (rec.fields.size() != header.fields.size())
            return error(rec.line, rec.offset,
                         "expected " + std::to_string(header.fields.size()) + " fields, got " +
                             std::to_string(rec.fields.size()));
        auto has = [&](Column c) { return where[c] >= 0; };
        auto field = [&](Column c) -> const std::string& { return rec.fields[static_cast<std::size_t>(where[c])]; };
        auto bad = [&](Column c, std::string what) {
            return error(rec.line, rec.offset, std::string(kColumnNames[c]) + ": " + what);
        };

        auto guid = Guid::parse(field(kGuid));
        if (!guid) return bad(kGuid, "malformed GUID " + quoted(field(kGuid)));
        if (auto [it, inserted] = seen.emplace(*guid, rec.line); !inserted)
            return bad(kGuid,
                       "duplicate GUID " + guid->to_string() + " (first on line " + std::to_string(it->second) + ")");

        // Start from the existing row so that columns absent from the header keep their values.
        const ProductInfo* existing = find(*guid);
        ProductInfo info = existing ? *existing : ProductInfo{};
        info.guid = *guid;

        auto kind = parse_kind(field(kKind));
        if (!kind) return bad(kKind, "unknown kind " + quoted(field(kKind)) + " (expected app, kms or sku)");
        info.kind = *kind;

        if (field(kName).empty()) return bad(kName, "missing");
        info.name = field(kName);

        for (Column c : {kAppGuid, kKmsGuid}) {
            if (!has(c)) continue;
            std::optional<Guid>& dst = (c == kAppGuid) ? info.app : info.kms;
            if (field(c).empty()) {
                dst.reset();
                continue;
            }
            dst = Guid::parse(field(c));
            if (!dst) return bad(c, "malformed GUID " + quoted(field(c)));
        }
        if (has(kNPolicy)) {
            info.n_policy = 0;
            if (!field(kNPolicy).empty()) {
                auto v = parse_small_int(field(kNPolicy), kMaxNPolicy);
                if (!v)
                    return bad(kNPolicy,
                               quoted(field(kNPolicy)) + " is not an integer in 0.." + std::to_string(kMaxNPolicy));
                info.n_policy = *v;
            }
        }
        if (has(kProtocol)) {
            info.protocol = 0;
            if (!field(kProtocol).empty()) {
                auto v = parse_small_int(field(kProtocol), 6);
                if (!v || *v < 4) return bad(kProtocol, quoted(field(kProtocol)) + " is not 4, 5 or 6");
                info.protocol = *v;
            }
        }
        if (has(kEpidCsvlk)) {
            const std::string& v = field(kEpidCsvlk);
            if (!v.empty() && !csvlk_family(v)) {
                std::string known;
                for (const auto& f : csvlk_families()) known += (known.empty() ? "" : ", ") + std::string(f.name);
                return bad(kEpidCsvlk, "unknown CSVLK family " + quoted(v) + " (known: " + known + ")");
            }
            info.epid_csvlk = v;
        }
        if (has(kGvlk)) {
            const std::string& v = field(kGvlk);
            info.gvlk.clear();
            if (!v.empty()) {
                auto key = parse_gvlk(v);
                if (!key) return bad(kGvlk, "malformed key " + quoted(v) + " (expected XXXXX-XXXXX-XXXXX-XXXXX-XXXXX)");
                info.gvlk = *key;
            }
        }
        parsed.push_back(Parsed{std::move(info), rec.line});
    }
    if (const auto& p = reader.problem()) return error(p->line, p->offset, p->message);

    for (auto& p : parsed) upsert(std::move(p.info));
    return parsed.size();
}

std::string_view product_kind_name(ProductKind kind) {
    switch (kind) {
        case ProductKind::App:
            return "app";
        case ProductKind::Kms:
            return "kms";
        case ProductKind::Sku:
            return "sku";
    }
    return "unknown";
}

std::string_view license_status_name(std::uint32_t status) {
    static constexpr std::string_view kNames[] = {"Unlicensed",        "Licensed",     "OOB grace",     "OOT grace",
                                                  "Non-genuine grace", "Notification", "Extended grace"};
    return status < std::size(kNames) ? kNames[status] : "Unknown";
}

}  // namespace kmscope
