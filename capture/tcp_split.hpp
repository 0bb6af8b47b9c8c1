// TCP reassembly: segments of each connection are put back in sequence order (out-of-order segments
// held, retransmissions and overlaps trimmed, first copy wins), delivered to that connection's
// Conversation in causal order (a segment that acknowledges bytes of the other direction not yet seen
// waits for them), and holes that cannot be filled become gaps. Connections end on FIN in both
// directions, RST, idle eviction or the end of the capture. Memory is bounded: a cap on connections,
// on bytes held per connection and in total, and connections that are not DCE/RPC are dropped to a
// few bytes of state.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "closed_flows.hpp"
#include "flow_index.hpp"
#include "kmscope/conversation.hpp"
#include "packet_source.hpp"

namespace kmscope::capture {

/// Bounds of the reassembler.
struct TcpLimits {
    std::size_t max_connections = 16384;           // open connections; the least recently seen go first
    std::uint64_t idle_ticks = 600ull * 10000000;  // capture time without a segment before eviction
    std::size_t max_held_bytes = 256 * 1024;       // out-of-order bytes held per connection
    std::size_t max_held_segments = 1024;          // out-of-order segments held per connection
    std::size_t max_total_held_bytes = 32u << 20;  // out-of-order bytes held across connections
};

/// One TCP connection and its conversation.
struct TcpConnection {
    std::uint64_t index = 0;  // 1-based, in order of appearance
    Endpoint client, server;
    FileTime first_seen, last_seen;
    Conversation conversation;
    struct Held {
        std::uint32_t seq = 0;
        bool has_ack = false;
        std::uint32_t ack = 0;
        FileTime time;
        Bytes data;
    };
    struct Half {
        bool have_seq = false;
        std::uint32_t next_seq = 0;  // next byte expected
        bool fin = false;
        std::uint32_t fin_seq = 0;        // sequence number of the FIN
        std::uint64_t bytes = 0;          // payload bytes delivered to the conversation
        std::uint64_t segments = 0;       // segments with payload
        std::uint64_t retransmitted = 0;  // payload bytes seen twice
        std::uint64_t missing = 0;        // bytes declared missing (gaps)
        std::vector<Held> held;           // out-of-order segments
        std::size_t held_bytes = 0;
    } to_server, to_client;
    bool syn_seen = false;
    bool synack_seen = false;
    bool reset = false;
    bool ignored = false;  // not DCE/RPC: no more bytes are delivered
    bool finished = false;
    EndReason end_reason = EndReason::EndOfCapture;
};

/// Splits segments into connections, reassembles them and feeds their conversations.
class TcpSplit {
public:
    using EventSink = std::function<void(const TcpConnection&, std::vector<Event>&&)>;
    using EndSink = std::function<void(const TcpConnection&)>;
    using IgnoreSink = std::function<void(const TcpConnection&)>;
    using ByteSink = std::function<void(const TcpConnection&, Direction, FileTime, ByteView)>;
    using GapSink = std::function<void(const TcpConnection&, Direction, FileTime, std::uint64_t missing)>;
    explicit TcpSplit(EventSink sink, TcpLimits limits = {}) : sink_(std::move(sink)), limits_(limits) {}
    // Not copied or moved: the recency order points into the map's entries.
    TcpSplit(const TcpSplit&) = delete;
    TcpSplit& operator=(const TcpSplit&) = delete;
    /// Called once per connection after its last events, just before it is forgotten.
    void on_end(EndSink sink) { end_sink_ = std::move(sink); }
    /// Called when a connection turns out not to be DCE/RPC: from then on its payload bytes are never read
    /// (only their count), so a reader may hand over segments of it without copying their bytes.
    void on_ignore(IgnoreSink sink) { ignore_sink_ = std::move(sink); }
    /// The second sink: every chunk of bytes exactly as it is fed to the connection's conversation (in
    /// sequence and causal order, each byte once), and every hole declared a gap, for readers that keep the
    /// stream itself (the recorded connections of kms-replay).
    void on_bytes(ByteSink bytes, GapSink gaps) {
        byte_sink_ = std::move(bytes);
        gap_sink_ = std::move(gaps);
    }
    /// Adds one segment.
    void add(const TcpSegment& seg);
    /// Ends every open connection (end of capture), in order of appearance.
    void finish();
    /// Connections seen so far.
    std::uint64_t connections() const { return next_index_ - 1; }
    /// Connections currently open.
    std::size_t open_connections() const { return open_.size(); }
    /// Connections ended early because of the connection cap.
    std::uint64_t evicted() const { return evicted_; }

private:
    using Key = FlowKey;
    using KeyHash = FlowKeyHash;
    // An open connection, linked into the recency order in place (entries never move): one list node
    // allocated and spliced per connection and packet cost more than the two pointers.
    struct Entry {
        Key key;
        std::uint64_t hash = 0;  // KeyHash of key
        TcpConnection conn;
        Entry* newer = nullptr;
        Entry* older = nullptr;
    };
    void hold(TcpConnection& c, TcpConnection::Half& h, const TcpSegment& seg, ByteView data);
    void pump(TcpConnection& c, bool force);
    bool deliver_front(TcpConnection& c, Direction d, bool ignore_ack);
    void deliver(TcpConnection& c, Direction d, FileTime t, ByteView bytes);
    void gap(TcpConnection& c, Direction d, FileTime t, std::uint64_t missing);
    void sink_events(TcpConnection& c);
    void end(TcpConnection& c, FileTime t, EndReason why);
    void erase(Entry& e);
    void link_newest(Entry& e);
    void unlink(Entry& e);
    void sweep(FileTime now);
    EventSink sink_;
    EndSink end_sink_;
    IgnoreSink ignore_sink_;
    ByteSink byte_sink_;
    GapSink gap_sink_;
    TcpLimits limits_;
    FlowIndex<Entry> open_;
    ClosedFlows closed_{limits_.max_connections};
    Entry* newest_ = nullptr;  // the most recently seen open connection
    Entry* oldest_ = nullptr;  // the least recently seen: the first to go at the cap
    std::uint64_t next_index_ = 1;
    std::uint64_t evicted_ = 0;
    std::size_t total_held_ = 0;
    std::uint64_t since_sweep_ = 0;
    std::vector<Event> events_;  // handed to the sink; its buffer goes back and forth with the conversations'
};

}  // namespace kmscope::capture
