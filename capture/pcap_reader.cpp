#include "pcap_reader.hpp"

#include <cstring>
#include <utility>

namespace kmscope::capture {

namespace {
constexpr std::uint32_t kMicro = 0xA1B2C3D4, kNano = 0xA1B23C4D, kModified = 0xA1B2CD34;
constexpr std::size_t kFileHeader = 24, kRecordHeader = 16, kModifiedExtra = 8;
}  // namespace

bool PcapReader::fail(std::string why) {
    error_ = std::move(why);
    return false;
}

std::uint32_t PcapReader::u32(const std::uint8_t* p) const {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return swapped_ ? __builtin_bswap32(v) : v;
}

bool PcapReader::open() {
    record_start_ = 0;
    const ByteView h = in_.take(kFileHeader);
    if (h.size() < 4)
        return fail("truncated dump file; tried to read 4 file header bytes, only got " + std::to_string(h.size()));
    std::uint32_t magic;
    std::memcpy(&magic, h.data(), 4);
    for (bool swap : {false, true}) {
        const std::uint32_t m = swap ? __builtin_bswap32(magic) : magic;
        if (m == kMicro || m == kNano || m == kModified) {
            swapped_ = swap;
            nanoseconds_ = m == kNano;
            modified_ = m == kModified;
            break;
        }
        if (swap) return fail("unknown file format");
    }
    if (h.size() < kFileHeader)
        return fail("truncated dump file; tried to read " + std::to_string(kFileHeader) +
                    " file header bytes, only got " + std::to_string(h.size()));
    std::uint16_t major, minor;
    std::memcpy(&major, h.data() + 4, 2);
    std::memcpy(&minor, h.data() + 6, 2);
    if (swapped_) major = __builtin_bswap16(major), minor = __builtin_bswap16(minor);
    // As libpcap: versions 2.0 to 2.4, and 543.0 (DG/UX tcpdump, lengths in the old order).
    if (major < 2) return fail("archaic pcap savefile format");
    if (!((major == 2 && minor <= 4) || (major == 543 && minor == 0)))
        return fail("unsupported pcap savefile version " + std::to_string(major) + "." + std::to_string(minor));
    lengths_swapped_ = major == 543 || minor < 3 ? 1 : minor == 3 ? 2 : 0;
    link_type_ = static_cast<int>(u32(h.data() + 20) & 0xFFFF);  // the upper bits tell of an FCS
    // The snapshot length, adjusted as libpcap does: none or an absurd one is the largest; Kuznetzov's
    // patched tcpdump left the 14-byte Ethernet header out of it.
    snapshot_ = u32(h.data() + 16);
    if (snapshot_ == 0 || snapshot_ > kMaxCaptureLength) snapshot_ = kMaxCaptureLength;
    if (modified_ && link_type_ == 1) snapshot_ += 14;
    return true;
}

PcapReader::Status PcapReader::next(Packet& out) {
    record_start_ = in_.offset();
    const std::size_t header = kRecordHeader + (modified_ ? kModifiedExtra : 0);
    const ByteView h = in_.take(header);
    if (h.empty()) return Status::End;
    if (h.size() < header) {
        fail("truncated dump file; tried to read " + std::to_string(header) + " header bytes, only got " +
             std::to_string(h.size()));
        return Status::Error;
    }
    // Signed, as libpcap reads them (a time before 1970 stays one; a negative fraction counts back).
    const auto sec = static_cast<std::int32_t>(u32(h.data()));
    const std::int64_t frac = static_cast<std::int32_t>(u32(h.data() + 4));
    std::uint32_t caplen = u32(h.data() + 8), len = u32(h.data() + 12);
    if (lengths_swapped_ == 1 || (lengths_swapped_ == 2 && caplen > len)) std::swap(caplen, len);
    // Larger than the snapshot length: a valid record of a file whose header understates it (Solaris 2.3's
    // bufmod did), of which libpcap keeps the first snapshot bytes; larger than any link type allows: damage.
    if (caplen > snapshot_ && caplen > kMaxCaptureLength) {
        fail("invalid packet capture length " + std::to_string(caplen) + ", bigger than snaplen of " +
             std::to_string(snapshot_));
        return Status::Error;
    }
    out.data = in_.take(caplen);
    if (out.data.size() < caplen) {
        fail("truncated dump file; tried to read " + std::to_string(caplen) + " captured bytes, only got " +
             std::to_string(out.data.size()));
        return Status::Error;
    }
    if (caplen > snapshot_) out.data = out.data.first(snapshot_);
    const std::int64_t ticks = nanoseconds_ ? frac / 100 : frac * 10;
    out.time = FileTime{FileTime::from_unix(sec).ticks + static_cast<std::uint64_t>(ticks)};  // modulo 2^64
    return Status::Packet;
}

}  // namespace kmscope::capture
