// A capture as recorded connections: the PDUs of every DCE/RPC connection, per direction, in capture
// order, with their times. Used to replay recorded sessions (kms-replay send/check) and by tests.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "kmscope/conversation.hpp"
#include "packet_source.hpp"

namespace kmscope::capture {

/// One PDU as it was seen.
struct RecordedPdu {
    Direction direction = Direction::ToServer;
    FileTime time;
    Bytes bytes;
};

/// One TCP connection that carried DCE/RPC.
struct RecordedConnection {
    Endpoint client, server;
    std::vector<RecordedPdu> pdus;
};

/// Reads a capture and returns every connection whose both directions frame as DCE/RPC, in order of
/// appearance. Throws std::runtime_error when the file cannot be opened.
std::vector<RecordedConnection> read_connections(const std::string& path);

}  // namespace kmscope::capture
