// A minimal TCP stream split: segments of each connection, in capture order, are handed to that
// connection's Conversation; retransmitted bytes are dropped and a hole becomes a gap. (Out-of-order
// segments are not reordered: that is the job of the analyzer's full reassembler.)
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "kmscope/conversation.hpp"
#include "packet_source.hpp"

namespace kmscope::capture {

/// One TCP connection and its conversation.
struct TcpConnection {
    std::uint64_t index = 0;  // 1-based, in order of appearance
    Endpoint client, server;
    FileTime first_seen, last_seen;
    Conversation conversation;
    struct Half {
        bool have_seq = false;
        std::uint32_t next_seq = 0;
        bool fin = false;
        std::uint64_t bytes = 0;
    } to_server, to_client;
    bool syn_seen = false;
    bool finished = false;
};

/// Splits segments into connections and feeds their conversations.
class TcpSplit {
public:
    using EventSink = std::function<void(const TcpConnection&, std::vector<Event>&&)>;
    explicit TcpSplit(EventSink sink) : sink_(std::move(sink)) {}
    /// Adds one segment.
    void add(const TcpSegment& seg);
    /// Ends every open connection (end of capture).
    void finish();
    /// Connections seen so far.
    std::uint64_t connections() const { return next_index_ - 1; }

private:
    using Key = std::pair<Endpoint, Endpoint>;
    void end(TcpConnection& c, FileTime t, EndReason why);
    EventSink sink_;
    std::map<Key, std::unique_ptr<TcpConnection>> open_;
    std::uint64_t next_index_ = 1;
};

}  // namespace kmscope::capture
