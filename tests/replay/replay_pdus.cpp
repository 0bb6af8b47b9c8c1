// Test helper: prints the PDUs of every recorded connection of a capture, one per line:
// "<connection> <C|S> <hex>", so that the network tests can send real PDUs and mutate them.
#include <iostream>

#include "recorded.hpp"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: replay_pdus CAPTURE\n";
        return 2;
    }
    auto capture = kmscope::capture::read_capture(argv[1]);
    if (!capture.error.empty()) {
        std::cerr << "replay_pdus: " << capture.error << "\n";
        return 2;
    }
    const auto& conns = capture.connections;
    for (std::size_t i = 0; i < conns.size(); ++i)
        for (const auto& p : conns[i].pdus)
            std::cout << i << ' ' << (p.direction == kmscope::Direction::ToServer ? 'C' : 'S') << ' '
                      << kmscope::to_hex(p.bytes) << '\n';
    return 0;
}
