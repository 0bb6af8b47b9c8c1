// A reader of classic pcap files (libpcap's own format: microsecond and nanosecond magic, either byte
// order, the 2.3/2.2 and DG/UX length-order variants and the Kuznetzov "modified" record header). The packets are
// views into the InputWindow, not copies; libpcap's reader copied every packet twice (stdio, then its
// own buffer), which was a tenth of kms-analyze's time on a KMS capture. Versions, bounds, snapshot
// length and error texts as libpcap's: a record captures at most 256 KiB.
#pragma once

#include <cstdint>
#include <string>

#include "input_window.hpp"

namespace kmscope::capture {

class PcapReader {
public:
    static constexpr std::uint32_t kMaxCaptureLength = 262144;  // libpcap's bound for every link type

    explicit PcapReader(InputWindow& in) : in_(in) {}
    /// Reads the file header; false with error() when it is not a pcap file or is cut short.
    bool open();
    int link_type() const { return link_type_; }

    struct Packet {
        FileTime time;
        ByteView data;  // valid until the next call
    };
    enum class Status { Packet, End, Error };
    /// The next packet; on Error, error() says why and error_offset() where.
    Status next(Packet& out);
    const std::string& error() const { return error_; }
    /// Offset of the record (or header) in which reading failed.
    std::uint64_t error_offset() const { return record_start_; }

private:
    bool fail(std::string why);
    std::uint32_t u32(const std::uint8_t* p) const;
    InputWindow& in_;
    bool swapped_ = false;
    bool nanoseconds_ = false;
    bool modified_ = false;    // Kuznetzov's patched tcpdump: 8 more bytes per record header
    int lengths_swapped_ = 0;  // version 2.2 and earlier: 1 (always), 2.3: 2 (when caplen > len)
    int link_type_ = 0;
    std::uint32_t snapshot_ = kMaxCaptureLength;  // the file's snapshot length, as libpcap adjusts it
    std::uint64_t record_start_ = 0;
    std::string error_;
};

}  // namespace kmscope::capture
