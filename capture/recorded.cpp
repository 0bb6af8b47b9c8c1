#include "recorded.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <stdexcept>

#include "kmscope/stream.hpp"

namespace kmscope::capture {

namespace {

// After a gap, framing resumes with the first delivered chunk that begins with a well-formed header of a
// PDU type KMS uses (the conversation model's rule, so both sinks cut the stream at the same place).
bool starts_pdu(ByteView bytes) {
    if (bytes.size() < rpc::kHeaderSize) return false;
    auto h = rpc::parse_header(bytes.first(rpc::kHeaderSize));
    return h && rpc::kms_pdu_type(h->ptype);
}

struct Side {
    rpc::StreamFramer framer;
    bool resync = false;  // bytes were lost: waiting for a chunk that starts a PDU
    bool bad = false;     // not DCE/RPC from here on
};

struct Recording {
    RecordedConnection out;
    Side to_server, to_client;
    Side& side(Direction d) { return d == Direction::ToServer ? to_server : to_client; }
};

}  // namespace

RecordedCapture read_capture(const std::string& path, TcpLimits limits) {
    RecordedCapture result;
    std::map<std::uint64_t, Recording> open;  // by connection index
    std::vector<std::pair<std::uint64_t, RecordedConnection>> done;
    auto recording = [&](const TcpConnection& c) -> Recording& {
        auto [it, fresh] = open.try_emplace(c.index);
        if (fresh) {
            it->second.out.stream = c.index - 1;
            it->second.out.client = c.client;
            it->second.out.server = c.server;
        }
        return it->second;
    };
    // The conversations run too: they decide which connections are not DCE/RPC (TcpSplit then stops
    // delivering their bytes), exactly as for kms-analyze. Their events are not needed here.
    TcpSplit split([](const TcpConnection&, std::vector<Event>&&) {}, limits);
    split.on_bytes(
        [&](const TcpConnection& c, Direction d, FileTime t, ByteView bytes) {
            Recording& r = recording(c);
            Side& s = r.side(d);
            if (s.bad) return;
            if (s.resync) {
                if (!starts_pdu(bytes)) return;  // still inside a PDU whose start was lost
                s.resync = false;
                s.framer.restart(s.framer.total_fed());
            }
            s.framer.feed(bytes);
            while (auto f = s.framer.next()) r.out.pdus.push_back({d, t, std::move(f->bytes)});
            if (s.framer.error()) s.bad = true;
        },
        [&](const TcpConnection& c, Direction d, FileTime, std::uint64_t missing) {
            Recording& r = recording(c);
            r.out.missing += missing;
            Side& s = r.side(d);
            if (!s.bad) s.resync = true;  // the partial PDU before the hole is lost with it
        });
    split.on_end([&](const TcpConnection& c) {
        auto it = open.find(c.index);
        if (it == open.end()) return;
        if (!c.ignored && !it->second.out.pdus.empty()) done.emplace_back(c.index, std::move(it->second.out));
        open.erase(it);
    });
    std::unique_ptr<PacketSource> source;
    try {
        source = std::make_unique<PacketSource>(path);
    } catch (const std::exception& e) {
        result.error = e.what();
        return result;
    }
    if (!source->for_each_segment([&](const TcpSegment& s) { split.add(s); })) result.error = source->error();
    split.finish();
    std::sort(done.begin(), done.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    result.connections.reserve(done.size());
    for (auto& [index, conn] : done) result.connections.push_back(std::move(conn));
    return result;
}

std::vector<RecordedConnection> read_connections(const std::string& path) {
    RecordedCapture c = read_capture(path);
    if (!c.error.empty()) throw std::runtime_error(c.error);
    return std::move(c.connections);
}

}  // namespace kmscope::capture
