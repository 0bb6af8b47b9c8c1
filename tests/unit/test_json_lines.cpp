// kms-analyze's JSON lines writer copies plain text and integers into its buffer itself, with their
// separators (json_lines.cpp), instead of through RapidJSON's per-value path. Every length of text, each
// copy branch's edges, and integers up to the largest must come out as the JSON a parser reads back.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "kmscope/products.hpp"
#include "printer.hpp"

namespace kmscope::analyzer {
namespace {

// What one printer writes for these records.
std::string printed_text(const std::vector<Record>& records) {
    char* data = nullptr;
    std::size_t size = 0;
    std::FILE* out = open_memstream(&data, &size);
    {
        const ProductTable products = ProductTable::with_builtin();
        auto printer = make_json_printer(products, out);
        for (const auto& r : records) printer->print(r);
        printer->finish();
    }
    std::fclose(out);
    std::string text(data, size);
    std::free(data);
    return text;
}

// Its lines, parsed.
std::vector<nlohmann::json> printed(const std::vector<Record>& records) {
    std::istringstream lines(printed_text(records));
    std::vector<nlohmann::json> parsed;
    for (std::string line; std::getline(lines, line);) parsed.push_back(nlohmann::json::parse(line));
    return parsed;
}

TEST(JsonLines, PlainTextOfEveryLengthAndIntegersReadBack) {
    const std::string file = "capture.pcap";
    std::vector<Record> records;
    std::vector<std::string> names;
    for (std::size_t len = 0; len <= 140; ++len) {
        std::string name;
        for (std::size_t i = 0; i < len; ++i) name += static_cast<char>('!' + (i * 7 + len) % 90);
        std::replace_if(
            name.begin(), name.end(), [](char ch) { return ch == '"' || ch == '\\'; }, 'x');  // plain
        names.push_back(name);
        DnsRecord d;
        d.file = &file;
        d.client = "10.0.0." + std::to_string(len) + ":53";
        d.message.id = static_cast<std::uint16_t>(len * 461);
        d.message.name = name;
        d.message.answers.push_back(
            {name, static_cast<std::uint16_t>(len), 0, 65535, static_cast<std::uint32_t>(0xFFFFFFFFu - len)});
        records.emplace_back(std::move(d));
    }
    ConnectionRecord c;
    c.file = &file;
    c.client_bytes = UINT64_MAX;
    c.server_bytes = 0;
    c.stream = 1234567890123ull;
    c.diagnostics = {"", "a", "ab", "abc", "a \"quoted\" one", std::string(65, 'x')};
    records.emplace_back(std::move(c));

    const auto lines = printed(records);
    ASSERT_EQ(lines.size(), records.size());
    for (std::size_t len = 0; len <= 140; ++len) {
        SCOPED_TRACE(len);
        const auto& j = lines[len];
        EXPECT_EQ(j["kind"], "dns");
        EXPECT_EQ(j["name"], names[len]);
        EXPECT_EQ(j["id"], len * 461 % 65536);
        EXPECT_EQ(j["client"], "10.0.0." + std::to_string(len) + ":53");
        ASSERT_EQ(j["answers"].size(), 1u);
        EXPECT_EQ(j["answers"][0]["target"], names[len]);
        EXPECT_EQ(j["answers"][0]["port"], len);
        EXPECT_EQ(j["answers"][0]["priority"], 0);
        EXPECT_EQ(j["answers"][0]["weight"], 65535);
        EXPECT_EQ(j["answers"][0]["ttl"], 0xFFFFFFFFu - len);
    }
    const auto& j = lines.back();
    EXPECT_EQ(j["kind"], "connection");
    EXPECT_EQ(j["client_bytes"].get<std::uint64_t>(), UINT64_MAX);
    EXPECT_EQ(j["server_bytes"], 0);
    EXPECT_EQ(j["stream"].get<std::uint64_t>(), 1234567890123ull);
    EXPECT_EQ(j["diagnostics"], nlohmann::json({"", "a", "ab", "abc", "a \"quoted\" one", std::string(65, 'x')}));
}

// Text from a capture is escaped, and nesting and separators hold in the shapes a record takes (empty and
// filled arrays, booleans): the whole line is compared, as a script reading it byte for byte would see it.
TEST(JsonLines, EscapesCaptureTextAndWritesEveryShapeExactly) {
    const std::string file = std::string("a \"b\" \\ c\x01\x1f\t\n\xc3\xa9 \xff.pcap");
    ConnectionRecord c;
    c.file = &file;
    c.client = "10.0.0.1:49152";
    c.client_ip = "10.0.0.1";
    c.client_port = 49152;
    c.server = "10.0.0.2:1688";
    c.server_ip = "10.0.0.2";
    c.server_port = 1688;
    c.state = "reset";
    c.kms = true;
    std::vector<Record> records;
    records.emplace_back(c);
    c.diagnostics = {"x\"y", ""};
    records.emplace_back(c);
    const std::string text = printed_text(records);
    const std::string head = R"({"kind":"connection","ts":"1601-01-01T00:00:00Z","file":"a \"b\" \\ c\u0001\u001F\t\n)"
                             "\xc3\xa9 \xef\xbf\xbd"
                             R"(.pcap",)";  // UTF-8 kept; invalid bytes become U+FFFD
    const std::string ends =
        R"("client":"10.0.0.1:49152","client_ip":"10.0.0.1","client_port":49152,"server":"10.0.0.2:1688","server_ip":"10.0.0.2","server_port":1688,"state":"reset","kms":true,"client_bytes":0,"server_bytes":0,"diagnostics":)";
    EXPECT_EQ(text,
              head + R"("stream":0,)" + ends + "[]}\n" + head + R"("stream":0,)" + ends + R"(["x\"y",""]})" + "\n");
}

// A latency is a double: it must read back as the value the record holds, to the microsecond.
TEST(JsonLines, LatencyReadsBackToTheMicrosecond) {
    const std::string file = "capture.pcap";
    std::vector<Record> records;
    for (std::uint64_t ticks : {0ull, 1ull, 5870ull, 10000ull, 123456789ull}) {
        ExchangeRecord r;
        r.file = &file;
        r.x.request_time = FileTime{1000};
        r.x.response_time = FileTime{1000 + ticks};
        records.emplace_back(std::move(r));
    }
    const auto lines = printed(records);
    ASSERT_EQ(lines.size(), 5u);
    EXPECT_EQ(lines[0]["latency_ms"].get<double>(), 0.0);
    EXPECT_EQ(lines[1]["latency_ms"].get<double>(), 0.0);  // 0.1 us rounds to 0
    EXPECT_EQ(lines[2]["latency_ms"].get<double>(), 0.587);
    EXPECT_EQ(lines[3]["latency_ms"].get<double>(), 1.0);
    EXPECT_EQ(lines[4]["latency_ms"].get<double>(), 12345.679);
    for (const auto& j : lines) {
        EXPECT_TRUE(j["request"].is_null());
        EXPECT_EQ(j["verdict"]["failed_checks"], nlohmann::json::array());
        EXPECT_EQ(j["diagnostics"], nlohmann::json::array());
    }
}

}  // namespace
}  // namespace kmscope::analyzer
