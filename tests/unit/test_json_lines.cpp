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

// The lines one printer writes for these records.
std::vector<nlohmann::json> printed(const std::vector<Record>& records) {
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
    std::istringstream lines(std::string(data, size));
    std::free(data);
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

}  // namespace
}  // namespace kmscope::analyzer
