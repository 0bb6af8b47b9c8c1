// The whole kms-analyze engine on one capture file: the input is written to a memfd and analysed by
// analyzer::Analyzer (reading, reassembly and output threads; --summary) into memory, as JSON lines, CSV or
// the table, chosen by the input's size modulo 3.
// Invariants: the run ends (no thread left waiting); with JSON every line is one JSON object that a second,
// strict parser accepts (valid UTF-8 whatever the capture holds) with a "kind", and the last is the summary,
// whose exchange count is the number of exchange lines; with CSV every row without quotes has as many
// columns as the header; the totals add up (ok + not_ok == exchanges).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "analyzer.hpp"
#include "fuzz_check.hpp"
#include "memfd_input.hpp"

using namespace kmscope;
using namespace kmscope::analyzer;

namespace {

void check_json(std::string_view out, std::uint64_t exchanges) {
    std::uint64_t exchange_lines = 0;
    bool summary_seen = false;
    while (!out.empty()) {
        const auto nl = out.find('\n');
        FUZZ_CHECK(nl != std::string_view::npos);  // every record ends its line
        const std::string line(out.substr(0, nl));
        out.remove_prefix(nl + 1);
        // An independent parser (nlohmann, strict UTF-8) checks what RapidJSON's Writer produced.
        nlohmann::json d;
        try {
            d = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception&) {
            FUZZ_CHECK(!"a line that is not valid JSON");
        }
        FUZZ_CHECK(d.is_object() && d.contains("kind") && d["kind"].is_string());
        const std::string kind = d["kind"];
        FUZZ_CHECK(!summary_seen);  // the summary is the last line
        if (kind == "summary") {
            summary_seen = true;
            FUZZ_CHECK(d["exchanges"].get<std::uint64_t>() == exchange_lines);
        }
        exchange_lines += kind == "exchange";
    }
    FUZZ_CHECK(summary_seen && exchange_lines == exchanges);
}

void check_csv(std::string_view out) {
    std::size_t header_cols = 0;
    bool first = true;
    while (!out.empty()) {
        const auto nl = out.find('\n');
        std::string_view line = out.substr(0, nl);
        out.remove_prefix(nl == std::string_view::npos ? out.size() : nl + 1);
        if (line.empty()) break;  // the text summary follows the rows
        const std::size_t cols = 1 + static_cast<std::size_t>(std::count(line.begin(), line.end(), ','));
        if (first) {
            header_cols = cols;
            first = false;
        } else if (line.find('"') == std::string_view::npos) {
            FUZZ_CHECK(cols == header_cols);
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string& path = memfd_path(data, size);
    char* buffer = nullptr;
    std::size_t length = 0;
    std::FILE* out = open_memstream(&buffer, &length);
    FUZZ_CHECK(out);
    Options opt;
    opt.format = size % 3 == 0 ? Format::Json : size % 3 == 1 ? Format::Csv : Format::Table;
    opt.summary = true;
    if (size % 2 == 0) {  // tiny limits: eviction and forced delivery on the analyzer's path too
        opt.limits.max_connections = 3;
        opt.limits.idle_ticks = 5ull * 10000000;
        opt.limits.max_held_bytes = 2048;
        opt.limits.max_held_segments = 4;
    }
    Totals totals;
    {
        Analyzer analyzer(opt, ProductTable::builtin(), out);
        analyzer.run({path});
        analyzer.finish();
        totals = analyzer.totals();
    }
    std::fclose(out);
    FUZZ_CHECK(totals.ok + totals.not_ok == totals.exchanges);
    const std::string_view text(buffer, length);
    if (opt.format == Format::Json) check_json(text, totals.exchanges);
    if (opt.format == Format::Csv) check_csv(text);
    std::free(buffer);
    return 0;
}
