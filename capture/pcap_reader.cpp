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
    if (h.size() < 4) return fail("unknown file format");
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
    if (major != 2) return fail("unsupported pcap version " + std::to_string(major) + "." + std::to_string(minor));
    lengths_swapped_ = minor < 3 ? 1 : minor == 3 ? 2 : 0;
    link_type_ = static_cast<int>(u32(h.data() + 20) & 0xFFFF);  // the upper bits tell of an FCS
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
    // Signed, as libpcap reads them (a time before 1970 stays one).
    const auto sec = static_cast<std::int32_t>(u32(h.data()));
    const auto frac =
        static_cast<std::uint64_t>(static_cast<std::int64_t>(static_cast<std::int32_t>(u32(h.data() + 4))));
    std::uint32_t caplen = u32(h.data() + 8), len = u32(h.data() + 12);
    if (lengths_swapped_ == 1 || (lengths_swapped_ == 2 && caplen > len)) std::swap(caplen, len);
    if (caplen > kMaxCaptureLength) {
        fail("invalid packet capture length " + std::to_string(caplen) + ", bigger than maximum of " +
             std::to_string(kMaxCaptureLength));
        return Status::Error;
    }
    out.data = in_.take(caplen);
    if (out.data.size() < caplen) {
        fail("truncated dump file; tried to read " + std::to_string(caplen) + " captured bytes, only got " +
             std::to_string(out.data.size()));
        return Status::Error;
    }
    out.time = FileTime{FileTime::from_unix(sec).ticks + (nanoseconds_ ? frac / 100 : frac * 10)};
    return Status::Packet;
}

}  // namespace kmscope::capture
