// PacketSource's open file, shared by the two files that construct a PacketSource (packet_source.cpp
// for files, live_source.cpp for interfaces), which both need the complete type.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>

#include "file_input.hpp"
#include "packet_source.hpp"
#include "pcapng_reader.hpp"

namespace kmscope::capture {

// The open input: a FILE* (stdio's buffering, for libpcap and the pcapng reader) on a cookie that reads
// FileInput, which inflates gzip whatever the kind of file. Live captures have none.
struct PacketSource::Input {
    std::unique_ptr<FileInput> input;
    FILE* file = nullptr;
    std::uint64_t size = 0;                // on-disk size, 0 when unknown
    std::unique_ptr<char[]> buffer;        // stdio's buffer (outlives the FILE: members die after ~PacketSource)
    std::unique_ptr<PcapngReader> pcapng;  // pcapng files; pcap files go through libpcap
};

}  // namespace kmscope::capture
