#include "tcp_split.hpp"

namespace kmscope::capture {

namespace {
constexpr std::uint16_t kKmsPort = 1688;

bool looks_like_bind(ByteView payload) {
    return payload.size() >= 3 && payload[0] == 5 && payload[1] == 0 && payload[2] == 11;
}
}  // namespace

void TcpSplit::add(const TcpSegment& seg) {
    Key key = seg.src < seg.dst ? Key{seg.src, seg.dst} : Key{seg.dst, seg.src};
    auto it = open_.find(key);
    const bool syn = seg.flags & tcpflag::kSyn, ack = seg.flags & tcpflag::kAck;
    if (it != open_.end() && syn && !ack && it->second->syn_seen) {
        // A new SYN on a known 4-tuple: the old connection is over (port reuse).
        end(*it->second, seg.time, EndReason::Closed);
        open_.erase(it);
        it = open_.end();
    }
    if (it == open_.end()) {
        auto c = std::make_unique<TcpConnection>();
        c->index = next_index_++;
        c->first_seen = seg.time;
        bool src_is_client;
        if (syn)
            src_is_client = !ack;
        else if (looks_like_bind(seg.payload))
            src_is_client = true;
        else if (seg.dst.port == kKmsPort || seg.src.port == kKmsPort)
            src_is_client = seg.dst.port == kKmsPort;
        else
            src_is_client = seg.src.port > seg.dst.port;
        c->client = src_is_client ? seg.src : seg.dst;
        c->server = src_is_client ? seg.dst : seg.src;
        it = open_.emplace(key, std::move(c)).first;
    }
    TcpConnection& c = *it->second;
    c.last_seen = seg.time;
    const bool to_server = seg.src == c.client;
    auto& half = to_server ? c.to_server : c.to_client;
    const Direction dir = to_server ? Direction::ToServer : Direction::ToClient;
    if (syn) {
        c.syn_seen = true;
        half.have_seq = true;
        half.next_seq = seg.seq + 1;
    }
    if (!seg.payload.empty()) {
        ByteView data = seg.payload;
        if (!half.have_seq) {
            half.have_seq = true;
            half.next_seq = seg.seq;
        }
        auto delta = static_cast<std::int32_t>(seg.seq - half.next_seq);
        if (delta > 0) {
            c.conversation.gap(dir, seg.time, static_cast<std::uint64_t>(delta));
            half.next_seq = seg.seq;
        } else if (delta < 0) {
            auto overlap = static_cast<std::size_t>(-static_cast<std::int64_t>(delta));
            data = overlap >= data.size() ? ByteView{} : data.subspan(overlap);  // retransmission
        }
        if (!data.empty()) {
            c.conversation.feed(dir, seg.time, data);
            half.next_seq += static_cast<std::uint32_t>(data.size());
            half.bytes += data.size();
        }
    }
    if (seg.flags & tcpflag::kFin) half.fin = true;
    auto events = c.conversation.take_events();
    if (!events.empty()) sink_(c, std::move(events));
    if (seg.flags & tcpflag::kRst) {
        end(c, seg.time, EndReason::Reset);
        open_.erase(it);
    } else if (c.to_server.fin && c.to_client.fin) {
        end(c, seg.time, EndReason::Closed);
        open_.erase(it);
    }
}

void TcpSplit::end(TcpConnection& c, FileTime t, EndReason why) {
    if (c.finished) return;
    c.finished = true;
    c.conversation.finish(t, why);
    auto events = c.conversation.take_events();
    if (!events.empty()) sink_(c, std::move(events));
}

void TcpSplit::finish() {
    // End connections in order of appearance so that output stays in capture order.
    std::vector<TcpConnection*> all;
    for (auto& [k, c] : open_) all.push_back(c.get());
    std::sort(all.begin(), all.end(), [](auto* a, auto* b) { return a->index < b->index; });
    for (auto* c : all) end(*c, c->last_seen, EndReason::EndOfCapture);
    open_.clear();
}

}  // namespace kmscope::capture
