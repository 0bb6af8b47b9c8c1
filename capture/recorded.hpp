// A capture as recorded connections: the PDUs of every DCE/RPC connection, per direction, in the order
// the reassembler delivers them (sequence order, retransmissions and overlaps dropped, each direction
// after the bytes of the other that it answers), with their times. This is the reassembler's second
// sink, beside the conversations kms-analyze reads: kms-replay check, send and serve --from replay what
// it returns, so they accept exactly the captures kms-analyze accepts and fail on the same read errors.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "kmscope/conversation.hpp"
#include "packet_source.hpp"
#include "tcp_split.hpp"

namespace kmscope::capture {

/// One PDU as it was seen.
struct RecordedPdu {
    Direction direction = Direction::ToServer;
    FileTime time;
    Bytes bytes;
};

/// One TCP connection that carried DCE/RPC.
struct RecordedConnection {
    std::uint64_t stream = 0;  // kms-analyze's "stream": 0-based order of appearance among the TCP connections
    Endpoint client, server;
    std::vector<RecordedPdu> pdus;
    std::uint64_t missing = 0;  // bytes the capture does not have (gaps), both directions
};

/// What a capture holds, and why reading it stopped early if it did.
struct RecordedCapture {
    std::vector<RecordedConnection> connections;  // in order of appearance
    /// Empty when the whole file was read; otherwise the same text kms-analyze prints ("FILE: at byte N
    /// (after packet K): reason", or "FILE: reason" when it could not be opened). The connections read
    /// before the damage are kept.
    std::string error;
};

/// Reads a capture ("-" is standard input) and returns every connection that carried DCE/RPC PDUs.
/// Never throws for input problems: they are in `error`.
RecordedCapture read_capture(const std::string& path, TcpLimits limits = {});

/// The same, for callers that want all or nothing: throws std::runtime_error with the read error.
std::vector<RecordedConnection> read_connections(const std::string& path);

}  // namespace kmscope::capture
