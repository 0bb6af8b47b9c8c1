// ePID text, HwId text and the product CSV reader.
// Input: [mode] [rest]; mode % 4:
//   0: rest is ePID text: when parse_epid accepts it, format_epid gives back the same text and parse_epid of
//      that gives the same parts; epid_anomalies never fails;
//   1: rest chooses ePID parts within the documented field ranges: format then parse gives the same parts;
//   2: rest is CSV text merged into a table (empty, or the built-in one when bit 0x10 of mode is set): on error
//      the table is unchanged (all-or-nothing); on success the size grows by at most the merged row count,
//      every row is found by its GUID, and merging the same text again changes nothing;
//   3: rest is HwId text (16 hex digits): parse and to_string round trip, upper-case.
#include <cstdio>
#include <cstdlib>

#include "fuzz_check.hpp"
#include "kmscope/epid.hpp"
#include "kmscope/products.hpp"

using namespace kmscope;

namespace {

void check_epid_text(std::string_view text) {
    auto p = parse_epid(text);
    if (!p) {
        FUZZ_CHECK(p.error().offset <= text.size());
        return;
    }
    FUZZ_CHECK(p->platform <= 99999 && p->group <= 99999 && p->key_id <= 999999999 && p->channel <= 99);
    FUZZ_CHECK(p->lcid <= 65535 && p->build <= 65535 && p->day_of_year <= 999 && p->year <= 9999);
    std::string formatted = format_epid(*p);
    FUZZ_CHECK(formatted == text);
    (void)epid_anomalies(*p);
}

void check_epid_parts(ByteView in) {
    std::uint8_t b[32] = {};
    for (std::size_t i = 0; i < sizeof b && i < in.size(); ++i) b[i] = in[i];
    EpidParts p;
    p.platform = load_u32le(b) % 100000;
    p.group = load_u32le(b + 4) % 100000;
    p.key_id = load_u32le(b + 8) % 1000000000;
    p.channel = load_u32le(b + 12) % 100;
    p.lcid = load_u32le(b + 16) % 65536;
    p.build = load_u32le(b + 20) % 65536;
    p.day_of_year = static_cast<std::uint16_t>(load_u16le(b + 24) % 1000);
    p.year = static_cast<std::uint16_t>(load_u16le(b + 26) % 10000);
    std::string text = format_epid(p);
    auto again = parse_epid(text);
    if (!again) std::fprintf(stderr, "format_epid gave %s: %s\n", text.c_str(), again.error().to_string().c_str());
    FUZZ_CHECK(again.ok() && *again == p);
    (void)epid_anomalies(p);
}

void check_same_rows(const ProductTable& a, const ProductTable& b) {
    FUZZ_CHECK(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) FUZZ_CHECK(a.rows()[i] == b.rows()[i]);
}

void check_csv(std::string_view csv, bool builtin) {
    static const ProductTable empty;
    const ProductTable& before = builtin ? ProductTable::builtin() : empty;
    ProductTable table = before;
    auto merged = table.merge_csv_text(csv);
    if (!merged) {
        check_same_rows(table, before);  // all-or-nothing
        return;
    }
    FUZZ_CHECK(table.size() >= before.size() && table.size() <= before.size() + *merged);
    for (const auto& row : table.rows()) {
        FUZZ_CHECK(table.find(row.guid) == &row);
        FUZZ_CHECK(!row.name.empty());
        FUZZ_CHECK(row.n_policy >= 0 && row.n_policy <= 1000);
        FUZZ_CHECK(row.protocol == 0 || (row.protocol >= 4 && row.protocol <= 6));
        FUZZ_CHECK(row.epid_csvlk.empty() || csvlk_family(row.epid_csvlk));
        FUZZ_CHECK(row.gvlk.empty() || row.gvlk.size() == 29);
        FUZZ_CHECK(table.name_or_guid(row.guid) == row.name);
    }
    ProductTable twice = table;
    auto again = twice.merge_csv_text(csv);
    FUZZ_CHECK(again.ok() && *again == *merged);
    check_same_rows(twice, table);
}

void check_hwid(std::string_view text) {
    auto h = HwId::parse(text);
    if (h) {
        std::string upper(text);
        for (auto& c : upper)
            if (c >= 'a' && c <= 'f') c = static_cast<char>(c - 'a' + 'A');
        FUZZ_CHECK(h->to_string() == upper);
    }
    HwId raw;
    for (std::size_t i = 0; i < raw.bytes.size() && i < text.size(); ++i)
        raw.bytes[i] = static_cast<std::uint8_t>(text[i]);
    auto back = HwId::parse(raw.to_string());
    FUZZ_CHECK(back && *back == raw && raw.to_string().size() == 16);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    switch (data[0] % 4) {
        case 0:
            check_epid_text(text);
            break;
        case 1:
            check_epid_parts(ByteView(data + 1, size - 1));
            break;
        case 2:
            check_csv(text, (data[0] & 0x10) != 0);
            break;
        case 3:
            check_hwid(text);
            break;
    }
    return 0;
}
