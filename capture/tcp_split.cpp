#include "tcp_split.hpp"

#include <algorithm>

namespace kmscope::capture {

namespace {

constexpr std::uint16_t kKmsPort = 1688;
constexpr std::uint64_t kSweepEvery = 8192;

bool looks_like_bind(ByteView payload) {
    return payload.size() >= 3 && payload[0] == 5 && payload[1] == 0 &&
           payload[2] == static_cast<std::uint8_t>(rpc::PduType::Bind);
}

std::int32_t rel(std::uint32_t a, std::uint32_t b) {
    return static_cast<std::int32_t>(a - b);
}

TcpConnection::Half& half(TcpConnection& c, Direction d) {
    return d == Direction::ToServer ? c.to_server : c.to_client;
}

Direction other(Direction d) {
    return d == Direction::ToServer ? Direction::ToClient : Direction::ToServer;
}

// How many bytes of `o` an acknowledgement covers beyond what was delivered (FIN counted once).
std::int64_t ack_beyond(std::uint32_t ack, const TcpConnection::Half& o) {
    if (!o.have_seq) return 0;
    std::uint32_t allowed = o.next_seq;
    if (o.fin && o.fin_seq == o.next_seq) ++allowed;
    return rel(ack, allowed);
}

// The held segment nearest to the next expected byte.
std::size_t front_index(const TcpConnection::Half& h) {
    std::size_t best = 0;
    for (std::size_t i = 1; i < h.held.size(); ++i)
        if (rel(h.held[i].seq, h.next_seq) < rel(h.held[best].seq, h.next_seq)) best = i;
    return best;
}

}  // namespace

void TcpSplit::add(const TcpSegment& seg) {
    const Key key = FlowKey::of(seg.src, seg.dst);
    const std::uint64_t hash = KeyHash{}(key);  // once per packet, for the open and the closed flows
    Entry* e = open_.find(key, hash);
    const bool syn = seg.flags & tcpflag::kSyn, ack = seg.flags & tcpflag::kAck;
    if (e && syn && !ack && e->conn.syn_seen && seg.src == e->conn.client) {
        const TcpConnection& old = e->conn;
        if (old.to_server.bytes > 0 || old.to_client.bytes > 0 || old.to_server.fin ||
            seg.seq + 1 != old.to_server.next_seq) {
            // A new SYN on a known 4-tuple: the old connection is over (port reuse).
            end(e->conn, seg.time, EndReason::Closed);
            erase(*e);
            e = nullptr;
        }
    }
    if (e && seg.time.ticks > e->conn.last_seen.ticks + limits_.idle_ticks) {
        // Silent for longer than the idle timeout: that connection is over; this starts another.
        end(e->conn, e->conn.last_seen, EndReason::Timeout);
        erase(*e);
        e = nullptr;
    }
    if (!e && !syn) {
        const auto closed = closed_.find(key, hash);
        if (closed && seg.time.ticks <= closed->ticks + limits_.idle_ticks)
            return;  // the tail of a connection already closed (last ACK, retransmitted FIN)
    }
    if (!e) {
        if (open_.size() >= limits_.max_connections) {
            Entry& victim = *oldest_;
            end(victim.conn, seg.time, EndReason::Timeout);
            erase(victim);
            ++evicted_;
        }
        auto fresh = std::make_unique<Entry>();
        fresh->key = key;
        fresh->hash = hash;
        TcpConnection& c = fresh->conn;
        c.index = next_index_++;
        c.first_seen = seg.time;
        bool src_is_client;
        if (syn)
            src_is_client = !ack;
        else if (looks_like_bind(seg.payload))
            src_is_client = true;
        else if (seg.dst.port == kKmsPort || seg.src.port == kKmsPort)
            src_is_client = seg.dst.port == kKmsPort;
        else
            src_is_client = seg.src.port > seg.dst.port;
        c.client = src_is_client ? seg.src : seg.dst;
        c.server = src_is_client ? seg.dst : seg.src;
        e = &open_.insert(std::move(fresh));
        link_newest(*e);
    } else if (e != newest_) {
        unlink(*e);
        link_newest(*e);
    }
    TcpConnection& c = e->conn;
    if (!c.syn_seen && !c.synack_seen && seg.src == c.server && looks_like_bind(seg.payload) &&
        c.to_server.bytes == 0 && c.to_client.bytes == 0 && c.to_server.held.empty() && c.to_client.held.empty()) {
        // No handshake seen and the roles were guessed wrong: the side that binds is the client.
        std::swap(c.client, c.server);
        std::swap(c.to_server, c.to_client);
    }
    c.last_seen = seg.time;
    const Direction dir = seg.src == c.client ? Direction::ToServer : Direction::ToClient;
    auto& h = half(c, dir);
    const std::uint32_t data_seq = seg.seq + (syn ? 1u : 0u);
    if (syn) {
        if (!ack) c.syn_seen = true;
        if (ack) c.synack_seen = true;
        if (!h.have_seq || h.bytes == 0) {
            h.have_seq = true;
            h.next_seq = data_seq;
        }
    }
    if (seg.flags & tcpflag::kRst) c.reset = true;
    if (seg.flags & tcpflag::kFin) {
        h.fin = true;
        h.fin_seq = data_seq + static_cast<std::uint32_t>(seg.payload.size());
    }
    if (!seg.payload.empty()) {
        ++h.segments;
        if (!c.ignored) {
            if (!h.have_seq) {
                h.have_seq = true;
                h.next_seq = data_seq;
            }
            hold(c, h, seg, seg.payload);
        }
    }
    pump(c, false);
    while (!c.ignored && (c.to_server.held_bytes + c.to_client.held_bytes > limits_.max_held_bytes ||
                          c.to_server.held.size() + c.to_client.held.size() > limits_.max_held_segments ||
                          total_held_ > limits_.max_total_held_bytes)) {
        if (c.to_server.held.empty() && c.to_client.held.empty()) break;
        pump(c, true);  // one forced step: a gap or an early delivery
    }
    sink_events(c);
    if (c.reset || (c.to_server.fin && c.to_client.fin)) {
        end(c, seg.time, c.reset ? EndReason::Reset : EndReason::Closed);
        closed_.remember(key, hash, seg.time);
        erase(*e);
    }
    if (++since_sweep_ >= kSweepEvery) {
        since_sweep_ = 0;
        sweep(seg.time);
    }
}

void TcpSplit::hold(TcpConnection& c, TcpConnection::Half& h, const TcpSegment& seg, ByteView data) {
    const Direction dir = &h == &c.to_server ? Direction::ToServer : Direction::ToClient;
    const std::uint32_t data_seq = seg.seq + ((seg.flags & tcpflag::kSyn) ? 1u : 0u);
    const std::int32_t r = rel(data_seq, h.next_seq);
    if (static_cast<std::int64_t>(r) + static_cast<std::int64_t>(data.size()) <= 0) {
        h.retransmitted += data.size();  // every byte already delivered
        return;
    }
    const bool has_ack = seg.flags & tcpflag::kAck;
    if (h.held.empty() && r <= 0 && !(has_ack && ack_beyond(seg.ack, half(c, other(dir))) > 0)) {
        // Fast path: the next bytes in order, nothing waiting.
        auto skip = static_cast<std::size_t>(-static_cast<std::int64_t>(r));
        h.retransmitted += skip;
        deliver(c, dir, seg.time, data.subspan(skip));
        return;
    }
    h.held.push_back({data_seq, has_ack, seg.ack, seg.time, Bytes(data.begin(), data.end())});
    h.held_bytes += data.size();
    total_held_ += data.size();
}

bool TcpSplit::deliver_front(TcpConnection& c, Direction d, bool ignore_ack) {
    auto& h = half(c, d);
    if (c.ignored || h.held.empty()) return false;
    std::size_t i = front_index(h);
    const std::int32_t r = rel(h.held[i].seq, h.next_seq);
    if (r > 0) return false;  // a hole before it
    auto skip = static_cast<std::size_t>(-static_cast<std::int64_t>(r));
    {
        const auto& f = h.held[i];
        if (skip < f.data.size() && !ignore_ack && f.has_ack && ack_beyond(f.ack, half(c, other(d))) > 0)
            return false;  // it answers bytes of the other direction not seen yet
    }
    TcpConnection::Held seg = std::move(h.held[i]);
    if (i + 1 != h.held.size()) h.held[i] = std::move(h.held.back());
    h.held.pop_back();
    h.held_bytes -= seg.data.size();
    total_held_ -= seg.data.size();
    if (skip >= seg.data.size()) {
        h.retransmitted += seg.data.size();
    } else {
        h.retransmitted += skip;
        deliver(c, d, seg.time, ByteView(seg.data).subspan(skip));
    }
    return true;
}

void TcpSplit::pump(TcpConnection& c, bool force) {
    for (;;) {
        bool progressed = false;
        for (Direction d : {Direction::ToServer, Direction::ToClient})
            while (deliver_front(c, d, false)) progressed = true;
        if (progressed) continue;
        if (!force || c.ignored) return;
        // Forced: take the half whose nearest held segment is oldest and get past what blocks it.
        Direction pick = Direction::ToServer;
        bool found = false;
        FileTime oldest;
        for (Direction d : {Direction::ToServer, Direction::ToClient}) {
            auto& h = half(c, d);
            if (h.held.empty()) continue;
            const auto& f = h.held[front_index(h)];
            if (!found || f.time < oldest) pick = d, oldest = f.time, found = true;
        }
        if (!found) return;
        auto& h = half(c, pick);
        const auto& f = h.held[front_index(h)];
        const std::int32_t r = rel(f.seq, h.next_seq);
        if (r > 0) {
            // Bytes that never came: a gap in this direction.
            gap(c, pick, f.time, static_cast<std::uint64_t>(r));
            h.next_seq = f.seq;
        } else {
            auto& o = half(c, other(pick));
            std::int64_t beyond = f.has_ack ? ack_beyond(f.ack, o) : 0;
            if (beyond > 0 && o.held.empty()) {
                // It acknowledges bytes of the other direction that the capture does not have.
                if (o.fin && o.fin_seq == o.next_seq) --beyond;
                if (beyond > 0) {
                    gap(c, other(pick), f.time, static_cast<std::uint64_t>(beyond));
                    o.next_seq += static_cast<std::uint32_t>(beyond);
                }
                continue;
            }
            if (!deliver_front(c, pick, true)) return;
        }
        sink_events(c);
        return;  // one forced step; the caller decides whether more are needed
    }
}

void TcpSplit::deliver(TcpConnection& c, Direction d, FileTime t, ByteView bytes) {
    if (bytes.empty()) return;
    auto& h = half(c, d);
    h.next_seq += static_cast<std::uint32_t>(bytes.size());
    h.bytes += bytes.size();
    if (byte_sink_) byte_sink_(c, d, t, bytes);
    c.conversation.feed(d, t, bytes);
    if (c.conversation.not_dcerpc() && !c.conversation.is_kms()) {
        c.ignored = true;  // not DCE/RPC: forget what is held, deliver nothing more
        if (ignore_sink_) ignore_sink_(c);
        for (auto* x : {&c.to_server, &c.to_client}) {
            total_held_ -= x->held_bytes;
            x->held_bytes = 0;
            x->held.clear();
            x->held.shrink_to_fit();
        }
    }
}

void TcpSplit::gap(TcpConnection& c, Direction d, FileTime t, std::uint64_t missing) {
    half(c, d).missing += missing;
    if (gap_sink_) gap_sink_(c, d, t, missing);
    c.conversation.gap(d, t, missing);
}

void TcpSplit::sink_events(TcpConnection& c) {
    c.conversation.take_events(events_);
    if (!events_.empty()) sink_(c, std::move(events_));
}

void TcpSplit::end(TcpConnection& c, FileTime t, EndReason why) {
    if (c.finished) return;
    // Deliver what is held, declaring the holes as gaps.
    while (!c.ignored && (!c.to_server.held.empty() || !c.to_client.held.empty())) {
        std::size_t before = c.to_server.held.size() + c.to_client.held.size();
        std::uint64_t missing = c.to_server.missing + c.to_client.missing;
        pump(c, true);
        if (c.to_server.held.size() + c.to_client.held.size() == before &&
            c.to_server.missing + c.to_client.missing == missing)
            break;
    }
    sink_events(c);
    c.finished = true;
    c.end_reason = why;
    c.conversation.finish(t, why);
    sink_events(c);
    for (auto* x : {&c.to_server, &c.to_client}) {
        total_held_ -= x->held_bytes;
        x->held_bytes = 0;
        x->held.clear();
    }
    if (end_sink_) end_sink_(c);
}

void TcpSplit::link_newest(Entry& e) {
    e.newer = nullptr;
    e.older = newest_;
    if (newest_) newest_->newer = &e;
    newest_ = &e;
    if (!oldest_) oldest_ = &e;
}

void TcpSplit::unlink(Entry& e) {
    (e.newer ? e.newer->older : newest_) = e.older;
    (e.older ? e.older->newer : oldest_) = e.newer;
    e.newer = e.older = nullptr;
}

void TcpSplit::erase(Entry& e) {
    unlink(e);
    open_.erase(e);
}

void TcpSplit::sweep(FileTime now) {
    std::vector<Entry*> idle;  // entries never move: erasing one leaves the others where they are
    open_.for_each([&](Entry& e) {
        if (e.conn.last_seen.ticks + limits_.idle_ticks < now.ticks) idle.push_back(&e);
    });
    std::sort(idle.begin(), idle.end(), [](const Entry* a, const Entry* b) { return a->conn.index < b->conn.index; });
    for (Entry* e : idle) {
        end(e->conn, e->conn.last_seen, EndReason::Timeout);
        erase(*e);
    }
}

void TcpSplit::finish() {
    // End connections in order of appearance so that output stays in capture order.
    std::vector<TcpConnection*> all;
    open_.for_each([&](Entry& e) { all.push_back(&e.conn); });
    std::sort(all.begin(), all.end(), [](auto* a, auto* b) { return a->index < b->index; });
    for (auto* c : all) end(*c, c->last_seen, EndReason::EndOfCapture);
    open_.clear();
    newest_ = oldest_ = nullptr;
    closed_.clear();
}

}  // namespace kmscope::capture
