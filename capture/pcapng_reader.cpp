#include "pcapng_reader.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace kmscope::capture {

namespace {
constexpr std::uint32_t kSectionHeader = 0x0A0D0D0A, kInterface = 1, kObsoletePacket = 2, kSimplePacket = 3,
                        kEnhancedPacket = 6;
constexpr std::uint32_t kByteOrderMagic = 0x1A2B3C4D;
constexpr std::uint32_t kMaxBlock = 16u << 20;
}  // namespace

bool PcapngReader::fail(const std::string& why) {
    error_ = why;
    return false;
}

std::uint32_t PcapngReader::u32(std::size_t at) const {
    std::uint32_t v;
    std::memcpy(&v, block_.data() + at, 4);
    return swapped_ ? __builtin_bswap32(v) : v;
}

std::uint16_t PcapngReader::u16(std::size_t at) const {
    std::uint16_t v;
    std::memcpy(&v, block_.data() + at, 2);
    return swapped_ ? __builtin_bswap16(v) : v;
}

// Reads one whole block; its body is block_[0, body_). False at the end of the file (error_ empty) or on
// an error (a failure of the input below ends the file here; PacketSource reports it).
bool PcapngReader::read_block(std::uint32_t& type) {
    block_start_ = in_.offset();
    block_ = {};
    const ByteView head = in_.take(8);
    if (head.empty()) return false;  // the end, between blocks
    if (head.size() != 8) return fail("truncated block header");
    std::uint32_t raw_type, raw_len;
    std::memcpy(&raw_type, head.data(), 4);
    std::memcpy(&raw_len, head.data() + 4, 4);
    if (raw_type == kSectionHeader) {
        // A section's byte order is given by its header's byte-order magic, right after the length.
        const ByteView m = in_.peek(4);
        if (m.size() != 4) return fail("truncated section header");
        std::uint32_t magic;
        std::memcpy(&magic, m.data(), 4);
        if (magic == kByteOrderMagic)
            swapped_ = false;
        else if (magic == __builtin_bswap32(kByteOrderMagic))
            swapped_ = true;
        else
            return fail("bad byte-order magic in a section header");
        in_section_ = true;
        type = kSectionHeader;
    } else {
        if (!in_section_) return fail("no section header block");
        type = swapped_ ? __builtin_bswap32(raw_type) : raw_type;
    }
    const std::uint32_t len = swapped_ ? __builtin_bswap32(raw_len) : raw_len;
    const std::uint32_t min_len = type == kSectionHeader ? 28 : 12;
    if (len < min_len || len % 4 || len > kMaxBlock)
        return fail("bad length " + std::to_string(len) + " of a block of type " + std::to_string(type));
    const std::size_t total = len - 8;  // body and trailing length
    const ByteView body = in_.take(total);
    if (body.size() != total) return fail("truncated block of type " + std::to_string(type));
    block_ = body;
    body_ = total - 4;
    if (u32(body_) != len) return fail("the lengths of a block of type " + std::to_string(type) + " differ");
    return true;
}

bool PcapngReader::section_header() {
    // byte-order magic (4), major (2), minor (2), section length (8), options
    if (u16(4) != 1) return fail("unsupported version " + std::to_string(u16(4)) + "." + std::to_string(u16(6)));
    interfaces_.clear();  // interface numbers start again in every section
    return true;
}

bool PcapngReader::interface_description() {
    // link type (2), reserved (2), snap length (4), options
    if (body_ < 8) return fail("short interface description block");
    if (interfaces_.size() >= 65536) return fail("more than 65536 interfaces");
    Interface i;
    i.link_type = u16(0);
    for (std::size_t at = 8; at + 4 <= body_;) {
        const std::uint16_t code = u16(at), len = u16(at + 2);
        const std::size_t value = at + 4;
        if (code == 0) break;  // opt_endofopt
        if (value + len > body_) return fail("an interface option runs past its block");
        if (code == 9 && len >= 1) {  // if_tsresol: 10^-v, or 2^-v with the top bit set
            const std::uint8_t v = block_[value];
            const unsigned e = v & 0x7F;
            if (v & 0x80) {
                if (e > 63) return fail("unsupported time resolution 2^-" + std::to_string(e));
                i.resolution = std::uint64_t{1} << e;
            } else {
                if (e > 19) return fail("unsupported time resolution 10^-" + std::to_string(e));
                i.resolution = 1;
                for (unsigned k = 0; k < e; ++k) i.resolution *= 10;
            }
        } else if (code == 14 && len >= 8) {  // if_tsoffset: seconds added to every time stamp
            std::uint64_t v;
            std::memcpy(&v, block_.data() + value, 8);
            i.offset_seconds = static_cast<std::int64_t>(swapped_ ? __builtin_bswap64(v) : v);
        }
        at = value + (static_cast<std::size_t>(len) + 3) / 4 * 4;
    }
    interfaces_.push_back(i);
    return true;
}

FileTime PcapngReader::time_of(const Interface& i, std::uint64_t units) const {
    // Seconds and nanoseconds as libpcap computes them at nanosecond precision, then 100 ns ticks.
    const std::uint64_t seconds = units / i.resolution, frac = units % i.resolution;
    const auto nanos = static_cast<std::uint64_t>(static_cast<unsigned __int128>(frac) * 1000000000u / i.resolution);
    // Saturating: neither a huge time stamp nor a huge offset may overflow (from_unix saturates too).
    const auto s = static_cast<std::int64_t>(std::min<std::uint64_t>(seconds, std::uint64_t{1} << 62));
    std::int64_t unix_seconds = 0;
    if (__builtin_add_overflow(s, i.offset_seconds, &unix_seconds))
        unix_seconds = i.offset_seconds < 0 ? INT64_MIN : INT64_MAX;
    const FileTime base = FileTime::from_unix(unix_seconds);
    const std::uint64_t add = nanos / 100;
    return FileTime{base.ticks > UINT64_MAX - add ? UINT64_MAX : base.ticks + add};
}

PcapngReader::Status PcapngReader::next(Packet& out) {
    auto bad = [&](const std::string& why) {
        fail(why);
        return Status::Error;
    };
    for (;;) {
        std::uint32_t type = 0;
        error_.clear();
        if (!read_block(type)) return error_.empty() ? Status::End : Status::Error;
        if (type == kSectionHeader) {
            if (!section_header()) return Status::Error;
            continue;
        }
        if (type == kInterface) {
            if (!interface_description()) return Status::Error;
            continue;
        }
        std::uint32_t iface = 0;
        std::size_t caplen = 0, data_at = 0;
        std::uint64_t units = 0;
        bool timed = true;
        if (type == kEnhancedPacket || type == kObsoletePacket) {
            // EPB: interface (4); obsolete: interface (2), drops (2). Then time high (4), time low (4),
            // captured length (4), original length (4), data.
            if (body_ < 20) return bad("short packet block");
            iface = type == kEnhancedPacket ? u32(0) : u16(0);
            units = static_cast<std::uint64_t>(u32(4)) << 32 | u32(8);
            caplen = u32(12);
            data_at = 20;
        } else if (type == kSimplePacket) {
            // Original length (4), data: on interface 0, without a time stamp.
            if (body_ < 4) return bad("short simple packet block");
            caplen = std::min<std::size_t>(u32(0), body_ - 4);
            data_at = 4;
            timed = false;
        } else {
            continue;  // name resolution, statistics, decryption secrets, custom blocks...
        }
        if (caplen > body_ - data_at) return bad("a captured length runs past its block");
        if (iface >= interfaces_.size())
            return bad("a packet on interface " + std::to_string(iface) + ", which was not described");
        const Interface& i = interfaces_[iface];
        out.link_type = i.link_type;
        out.time = timed ? time_of(i, units) : FileTime::from_unix(0);
        out.data = ByteView(block_.data() + data_at, caplen);
        return Status::Packet;
    }
}

}  // namespace kmscope::capture
