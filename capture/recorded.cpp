#include "recorded.hpp"

#include <map>

#include "kmscope/stream.hpp"
#include "tcp_split.hpp"

namespace kmscope::capture {

std::vector<RecordedConnection> read_connections(const std::string& path) {
    struct Conn {
        RecordedConnection out;
        bool client_known = false;
        rpc::StreamFramer to_server, to_client;
        bool bad = false;
    };
    std::map<std::pair<Endpoint, Endpoint>, Conn> conns;
    std::vector<std::pair<Endpoint, Endpoint>> order;
    PacketSource source(path);
    source.for_each_segment([&](const TcpSegment& s) {
        auto key = s.src < s.dst ? std::make_pair(s.src, s.dst) : std::make_pair(s.dst, s.src);
        auto [it, fresh] = conns.try_emplace(key);
        Conn& c = it->second;
        if (fresh) order.push_back(key);
        if (!c.client_known) {
            bool synack = (s.flags & tcpflag::kSyn) && (s.flags & tcpflag::kAck);
            c.out.client = synack ? s.dst : s.src;
            c.out.server = synack ? s.src : s.dst;
            c.client_known = true;
        }
        if (s.payload.empty()) return;
        const Direction d = s.src == c.out.client ? Direction::ToServer : Direction::ToClient;
        auto& framer = d == Direction::ToServer ? c.to_server : c.to_client;
        framer.feed(s.payload);
        while (auto f = framer.next()) c.out.pdus.push_back({d, s.time, std::move(f->bytes)});
        if (framer.error()) c.bad = true;
    });
    std::vector<RecordedConnection> out;
    for (const auto& k : order)
        if (!conns[k].bad && !conns[k].out.pdus.empty()) out.push_back(std::move(conns[k].out));
    return out;
}

}  // namespace kmscope::capture
