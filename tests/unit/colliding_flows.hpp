// Flows and hashes for the tests of the capture library's open-addressing tables (ClosedFlows, FlowIndex):
// hashes chosen to collide, so that probe runs are long, wrap around the end of the table, and hold
// several flows that share one hash.
#pragma once

#include <cstdint>

#include "packet_source.hpp"

namespace kmscope::capture::test {

/// Flow number n: distinct numbers give distinct flows.
inline FlowKey flow(std::uint64_t n) {
    FlowKey k;
    k.a.addr[0] = 10, k.a.addr[2] = static_cast<std::uint8_t>(n >> 8), k.a.addr[3] = static_cast<std::uint8_t>(n);
    k.b.addr[0] = 10, k.b.addr[3] = 1;
    k.a.port = static_cast<std::uint16_t>(40000 + (n >> 16));
    k.b.port = 1688;
    return k;
}

/// Every third flow hashed well; the others homed at slot 5 or at the last slot of any table (whose runs
/// wrap to the start), two flows to a hash.
inline std::uint64_t colliding_hash(std::uint64_t n) {
    switch (n % 3) {
        case 0:
            return n * 0x9E3779B97F4A7C15ull;
        case 1:
            return (n / 2) << 40 | 5;
        default:
            return (n / 2) << 40 | 0xFFFFFFFFull;
    }
}

}  // namespace kmscope::capture::test
