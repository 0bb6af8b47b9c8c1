// PacketSource's open file, shared by the two files that construct a PacketSource (packet_source.cpp
// for files, live_source.cpp for interfaces), which both need the complete type.
#pragma once

#include <cstdint>
#include <memory>

#include "file_input.hpp"
#include "input_window.hpp"
#include "packet_source.hpp"
#include "pcap_reader.hpp"
#include "pcapng_reader.hpp"

namespace kmscope::capture {

// The open input: FileInput (which inflates gzip whatever the kind of file) read through one InputWindow by
// the reader of its format. Live captures have none.
struct PacketSource::Input {
    std::unique_ptr<FileInput> input;
    std::unique_ptr<InputWindow> window;
    std::unique_ptr<PcapReader> pcap;      // pcap files
    std::unique_ptr<PcapngReader> pcapng;  // pcapng files
    std::uint64_t size = 0;                // on-disk size, 0 when unknown
};

}  // namespace kmscope::capture
