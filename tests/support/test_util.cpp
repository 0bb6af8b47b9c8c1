#include "test_util.hpp"

#include <fstream>
#include <map>

#include "packet_source.hpp"
#include "recorded.hpp"
#include "tcp_split.hpp"

namespace kmscope::test {

Bytes hex(std::string_view text) {
    auto b = from_hex(text);
    EXPECT_TRUE(b.has_value()) << "bad hex in test vector";
    return b.value_or(Bytes{});
}

Guid guid(std::string_view text) {
    auto g = Guid::parse(text);
    EXPECT_TRUE(g.has_value()) << text;
    return g.value_or(Guid{});
}

std::vector<Exchange> CaptureConnection::exchanges() const {
    std::vector<Exchange> out;
    for (const auto& e : events)
        if (auto* x = std::get_if<Exchange>(&e)) out.push_back(*x);
    return out;
}

std::vector<CaptureConnection> analyse_capture(const std::string& path) {
    std::map<std::uint64_t, CaptureConnection> by_index;
    capture::TcpSplit split([&](const capture::TcpConnection& c, std::vector<Event>&& events) {
        auto& cc = by_index[c.index];
        cc.index = c.index;
        cc.client = c.client.to_string();
        cc.server = c.server.to_string();
        cc.is_kms = cc.is_kms || c.conversation.is_kms();
        for (auto& e : events) cc.events.push_back(std::move(e));
    });
    capture::PacketSource source(path);
    bool ok = source.for_each_segment([&](const capture::TcpSegment& s) { split.add(s); });
    EXPECT_TRUE(ok) << source.error();
    split.finish();
    std::vector<CaptureConnection> out;
    for (auto& [i, c] : by_index) out.push_back(std::move(c));
    return out;
}

std::vector<ConnectionPdus> capture_pdus(const std::string& path) {
    std::vector<ConnectionPdus> out;
    for (auto& c : capture::read_connections(path)) {
        ConnectionPdus p;
        for (auto& pdu : c.pdus) p.pdus.emplace_back(pdu.direction, std::move(pdu.bytes));
        out.push_back(std::move(p));
    }
    return out;
}

const nlohmann::json& manifest() {
    static const nlohmann::json m = [] {
        std::ifstream in(capture_path("MANIFEST.json"));
        return nlohmann::json::parse(in);
    }();
    return m;
}

std::vector<std::string> capture_names() {
    std::vector<std::string> names;
    for (const auto& e : manifest()) names.push_back(e.at("file").get<std::string>());
    return names;
}

std::string param_name(const std::string& file) {
    std::string n = file;
    for (auto& c : n)
        if (!isalnum(static_cast<unsigned char>(c))) c = '_';
    return n;
}

std::string capture_path(const std::string& name) {
    return std::string(KMSCOPE_CAPTURES_DIR) + "/" + name;
}

}  // namespace kmscope::test
