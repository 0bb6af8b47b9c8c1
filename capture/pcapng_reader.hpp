// A pcapng reader with a link type per interface. libpcap refuses a file whose interfaces have different
// link types ("an interface has a type 1 different from the type of the first interface": what mergecap
// makes of an SLL2 and an Ethernet capture), which tshark reads; this reader keeps every interface's link
// type, time resolution and offset, and hands out each packet with its own. Blocks: section header
// (either byte order, several sections), interface description, enhanced, simple and obsolete packet
// blocks; every other block is skipped. A block is at most 16 MiB (libpcap's bound), so memory stays
// bounded whatever the lengths say.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "input_window.hpp"
#include "kmscope/bytes.hpp"

namespace kmscope::capture {

class PcapngReader {
public:
    /// Reads from `in` (not owned), which must be at the start of the first section header block. The
    /// packets are views into it, not copies.
    explicit PcapngReader(InputWindow& in) : in_(in) {}

    struct Packet {
        int link_type = 0;
        FileTime time;
        ByteView data;  // valid until the next call
    };
    enum class Status { Packet, End, Error };
    /// The next packet; on Error, error() says why and error_offset() where.
    Status next(Packet& out);
    const std::string& error() const { return error_; }
    /// Offset of the block in which reading failed.
    std::uint64_t error_offset() const { return block_start_; }
    /// True when an interface of the current section has a link type `supported` accepts.
    template <class Pred>
    bool any_interface(Pred supported) const {
        for (const auto& i : interfaces_)
            if (supported(i.link_type)) return true;
        return false;
    }

private:
    struct Interface {
        int link_type = 0;
        std::uint64_t resolution = 1000000;  // time stamp units per second (microseconds by default)
        std::int64_t offset_seconds = 0;
    };
    bool read_block(std::uint32_t& type);
    bool fail(const std::string& why);
    std::uint32_t u32(std::size_t at) const;
    std::uint16_t u16(std::size_t at) const;
    bool section_header();
    bool interface_description();
    FileTime time_of(const Interface& i, std::uint64_t units) const;
    InputWindow& in_;
    bool swapped_ = false;  // section written in the other byte order
    bool in_section_ = false;
    std::vector<Interface> interfaces_;
    ByteView block_;        // the current block after its type and length (a view into in_)
    std::size_t body_ = 0;  // bytes of block_ that are its body (without the trailing length)
    std::uint64_t block_start_ = 0;
    std::string error_;
};

}  // namespace kmscope::capture
