#include "test_util.hpp"

#include <map>

#include "kmscope/stream.hpp"
#include "packet_source.hpp"
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
    struct Conn {
        ConnectionPdus out;
        capture::Endpoint client;
        rpc::StreamFramer to_server, to_client;
        bool bad = false;
    };
    std::map<std::pair<capture::Endpoint, capture::Endpoint>, Conn> conns;
    std::vector<std::pair<capture::Endpoint, capture::Endpoint>> order;
    capture::PacketSource source(path);
    source.for_each_segment([&](const capture::TcpSegment& s) {
        auto key = s.src < s.dst ? std::make_pair(s.src, s.dst) : std::make_pair(s.dst, s.src);
        auto [it, fresh] = conns.try_emplace(key);
        Conn& c = it->second;
        if (fresh) {
            order.push_back(key);
            c.client = (s.flags & capture::tcpflag::kSyn) && (s.flags & capture::tcpflag::kAck) ? s.dst : s.src;
        }
        if (s.payload.empty()) return;
        const Direction d = s.src == c.client ? Direction::ToServer : Direction::ToClient;
        auto& framer = d == Direction::ToServer ? c.to_server : c.to_client;
        framer.feed(s.payload);
        while (auto f = framer.next()) c.out.pdus.emplace_back(d, std::move(f->bytes));
        if (framer.error()) c.bad = true;
    });
    std::vector<ConnectionPdus> out;
    for (const auto& k : order)
        if (!conns[k].bad && !conns[k].out.pdus.empty()) out.push_back(std::move(conns[k].out));
    return out;
}

std::string capture_path(const std::string& name) {
    return std::string(KMSCOPE_CAPTURES_DIR) + "/" + name;
}

}  // namespace kmscope::test
