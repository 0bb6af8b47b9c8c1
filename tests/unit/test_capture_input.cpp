// The capture library's own readers: PcapReader (both byte orders, micro- and nanosecond files, the old
// length order and the "modified" header, bounded records), PcapngReader (a link type, time resolution
// and offset per interface, both byte orders, several sections, bounded blocks), InputWindow (views across
// its refills, through a pipe) and FileInput (gzip inflated whatever the kind of
// file, damage reported where it is, the bytes before it kept).
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <csignal>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "file_input.hpp"
#include "input_window.hpp"
#include "pcap_reader.hpp"
#include "pcapng_reader.hpp"

using namespace kmscope;
using namespace kmscope::capture;

namespace {

// ------------------------------------------------------------------ building pcapng files

struct Builder {
    bool big = false;
    std::string out;
    void u16(std::uint16_t v) {
        for (int i = 0; i < 2; ++i) out.push_back(static_cast<char>(big ? v >> (8 * (1 - i)) : v >> (8 * i)));
    }
    void u32(std::uint32_t v) {
        for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(big ? v >> (8 * (3 - i)) : v >> (8 * i)));
    }
    void u64(std::uint64_t v) {
        for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(big ? v >> (8 * (7 - i)) : v >> (8 * i)));
    }
    void block(std::uint32_t type, const std::string& body) {
        std::string padded = body;
        while (padded.size() % 4) padded.push_back('\0');
        u32(type);
        u32(static_cast<std::uint32_t>(padded.size() + 12));
        out += padded;
        u32(static_cast<std::uint32_t>(padded.size() + 12));
    }
    std::string body(const std::function<void(Builder&)>& f) const {
        Builder b;
        b.big = big;
        f(b);
        return b.out;
    }
    void section() {
        block(0x0A0D0D0A, body([](Builder& b) {
                  b.u32(0x1A2B3C4D);
                  b.u16(1);
                  b.u16(0);
                  b.u64(~0ull);
              }));
    }
    // An interface; tsresol < 0: none given.
    void interface(std::uint16_t link, int tsresol = -1, std::int64_t tsoffset = 0) {
        block(1, body([&](Builder& b) {
                  b.u16(link);
                  b.u16(0);
                  b.u32(0);
                  if (tsresol >= 0) {
                      b.u16(9);
                      b.u16(1);
                      b.out += std::string(1, static_cast<char>(tsresol)) + std::string(3, '\0');
                  }
                  if (tsoffset) {
                      b.u16(14);
                      b.u16(8);
                      b.u64(static_cast<std::uint64_t>(tsoffset));
                  }
                  b.u16(0);
                  b.u16(0);
              }));
    }
    void packet(std::uint32_t iface, std::uint64_t units, const std::string& data) {
        block(6, body([&](Builder& b) {
                  b.u32(iface);
                  b.u32(static_cast<std::uint32_t>(units >> 32));
                  b.u32(static_cast<std::uint32_t>(units));
                  b.u32(static_cast<std::uint32_t>(data.size()));
                  b.u32(static_cast<std::uint32_t>(data.size()));
                  b.out += data;
              }));
    }
};

// A descriptor reading a copy of `bytes` (owned by the FileInput it is given to).
int memfd_of(const std::string& bytes) {
    int fd = memfd_create("capture-reader", MFD_CLOEXEC);
    EXPECT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    lseek(fd, 0, SEEK_SET);
    return fd;
}

struct Read {
    std::vector<PcapngReader::Packet> packets;
    std::vector<std::string> data;
    PcapngReader::Status last = PcapngReader::Status::End;
    std::string error;
    std::uint64_t error_offset = 0;
};

Read read_all(const std::string& bytes) {
    FileInput in(memfd_of(bytes));
    InputWindow window(in);
    PcapngReader r(window);
    Read out;
    PcapngReader::Packet p;
    for (int guard = 0; guard < 1000; ++guard) {
        out.last = r.next(p);
        if (out.last != PcapngReader::Status::Packet) break;
        out.packets.push_back(p);
        out.data.emplace_back(reinterpret_cast<const char*>(p.data.data()), p.data.size());
    }
    out.error = r.error();
    out.error_offset = r.error_offset();
    return out;
}

std::string mixed(bool big) {
    Builder b;
    b.big = big;
    b.section();
    b.interface(1, 9, 10);  // Ethernet, nanoseconds, +10 s
    b.interface(276);       // SLL2, microseconds (the default)
    b.block(0x00000BAD, "custom block, skipped");
    b.packet(0, 1'700'000'000'123'456'789ull, "eth-frame");
    b.packet(1, 1'700'000'001'000'001ull, "sll2-frame");
    b.block(3, b.body([](Builder& x) {  // a simple packet block: interface 0, no time stamp
        x.u32(6);
        x.out += "simple";
    }));
    return b.out;
}

TEST(PcapngReader, KeepsALinkTypeAndATimeResolutionPerInterface) {
    for (bool big : {false, true}) {
        Read r = read_all(mixed(big));
        ASSERT_EQ(r.last, PcapngReader::Status::End) << r.error;
        ASSERT_EQ(r.packets.size(), 3u);
        EXPECT_EQ(r.packets[0].link_type, 1);
        EXPECT_EQ(r.data[0], "eth-frame");
        // 1,700,000,000.123456789 s + 10 s offset, in 100 ns ticks (the last 89 ns dropped).
        EXPECT_EQ(r.packets[0].time.ticks, FileTime::from_unix(1'700'000'010).ticks + 1'234'567);
        EXPECT_EQ(r.packets[1].link_type, 276);
        EXPECT_EQ(r.data[1], "sll2-frame");
        EXPECT_EQ(r.packets[1].time.ticks, FileTime::from_unix(1'700'000'001).ticks + 10);
        EXPECT_EQ(r.packets[2].link_type, 1);
        EXPECT_EQ(r.data[2], "simple");
        EXPECT_EQ(r.packets[2].time.ticks, FileTime::from_unix(0).ticks);
    }
}

TEST(PcapngReader, InterfacesAreNumberedAgainInEverySection) {
    Builder b;
    b.section();
    b.interface(1);
    b.interface(276);
    b.packet(1, 0, "first");
    b.section();
    b.interface(101);
    b.packet(0, 0, "second");
    const std::size_t bad_at = b.out.size();
    b.packet(1, 0, "on an interface of the first section");
    Read r = read_all(b.out);
    ASSERT_EQ(r.packets.size(), 2u);
    EXPECT_EQ(r.packets[0].link_type, 276);
    EXPECT_EQ(r.packets[1].link_type, 101);
    EXPECT_EQ(r.last, PcapngReader::Status::Error);
    EXPECT_EQ(r.error, "a packet on interface 1, which was not described");
    EXPECT_EQ(r.error_offset, bad_at);
}

TEST(PcapngReader, DamageIsAnErrorAtItsBlock) {
    const std::string good = mixed(false);
    // Cut anywhere inside the last block: the packets before it, then an error at that block.
    Builder b;
    b.section();
    b.interface(1);
    const std::size_t last = b.out.size();
    b.packet(0, 0, "0123456789");
    const std::string whole = b.out;
    for (std::size_t cut = last + 1; cut < whole.size(); ++cut) {
        Read r = read_all(whole.substr(0, cut));
        EXPECT_EQ(r.last, PcapngReader::Status::Error) << cut;
        EXPECT_EQ(r.error_offset, last) << cut;
        EXPECT_NE(r.error.find("truncated"), std::string::npos) << r.error;
    }
    // A length beyond the 16 MiB bound is refused before anything is allocated for it.
    std::string huge = whole;
    huge[last + 4] = 0, huge[last + 5] = 0, huge[last + 6] = 0, huge[last + 7] = 0x10;  // 256 MiB
    Read r = read_all(huge);
    EXPECT_EQ(r.last, PcapngReader::Status::Error);
    EXPECT_EQ(r.error, "bad length 268435456 of a block of type 6");
    // Trailing length different from the leading one.
    std::string odd = whole;
    odd[odd.size() - 4] ^= 4;
    r = read_all(odd);
    EXPECT_EQ(r.error, "the lengths of a block of type 6 differ");
    // A captured length past the block.
    std::string over = whole;
    over[last + 8 + 12] = 100;
    r = read_all(over);
    EXPECT_EQ(r.error, "a captured length runs past its block");
    // No section header first.
    r = read_all(good.substr(28));
    EXPECT_EQ(r.error, "no section header block");
    // Nothing at all is a clean end.
    EXPECT_EQ(read_all("").last, PcapngReader::Status::End);
}

// ------------------------------------------------------------------ PcapReader and InputWindow

struct PcapFile {
    bool big = false;
    bool nano = false;
    bool modified = false;
    std::uint16_t minor = 4;
    bool swap_lengths = false;  // caplen and len written in the other order (versions 2.2 and 2.3)
    std::string out;
    std::uint32_t snaplen = 65535;
    std::uint16_t major = 2;
    void u32(std::uint32_t v) {
        for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(big ? v >> (8 * (3 - i)) : v >> (8 * i)));
    }
    void u16(std::uint16_t v) {
        for (int i = 0; i < 2; ++i) out.push_back(static_cast<char>(big ? v >> (8 * (1 - i)) : v >> (8 * i)));
    }
    PcapFile& header(std::uint32_t link) {
        u32(modified ? 0xA1B2CD34 : nano ? 0xA1B23C4D : 0xA1B2C3D4);
        u16(major);
        u16(minor);
        u32(0);
        u32(0);
        u32(snaplen);
        u32(link);
        return *this;
    }
    PcapFile& packet(std::uint32_t sec, std::uint32_t frac, const std::string& data, std::uint32_t wire = 0) {
        const auto caplen = static_cast<std::uint32_t>(data.size());
        const std::uint32_t len = std::max(wire, caplen);
        u32(sec);
        u32(frac);
        u32(swap_lengths ? len : caplen);
        u32(swap_lengths ? caplen : len);
        if (modified) out += std::string(8, '\x07');  // ifindex, protocol, packet type, padding
        out += data;
        return *this;
    }
};

struct PcapRead {
    bool opened = false;
    int link = 0;
    std::vector<PcapReader::Packet> packets;
    std::vector<std::string> data;
    PcapReader::Status last = PcapReader::Status::End;
    std::string error;
    std::uint64_t error_offset = 0;
};

PcapRead read_pcap(int fd) {
    FileInput in(fd);
    InputWindow window(in);
    PcapReader r(window);
    PcapRead out;
    out.opened = r.open();
    out.link = r.link_type();
    PcapReader::Packet p;
    for (int guard = 0; out.opened && guard < 100000; ++guard) {
        out.last = r.next(p);
        if (out.last != PcapReader::Status::Packet) break;
        out.packets.push_back(p);
        out.data.emplace_back(reinterpret_cast<const char*>(p.data.data()), p.data.size());
    }
    out.error = r.error();
    out.error_offset = r.error_offset();
    return out;
}

PcapRead read_pcap(const std::string& bytes) {
    return read_pcap(memfd_of(bytes));
}

TEST(PcapReader, EveryHeaderVariantGivesTheSamePackets) {
    for (bool big : {false, true})
        for (bool nano : {false, true})
            for (bool modified : {false, true})
                for (std::uint16_t minor : {4, 3, 2}) {
                    if (modified && nano) continue;  // no such magic
                    PcapFile f{big, nano, modified, minor, minor < 4, {}};
                    f.header(1).packet(1'700'000'000, nano ? 123'456'789 : 123'456, "first", 1514);
                    f.packet(1'700'000'001, nano ? 100 : 1, "second");
                    // 2.3 files may have either order: a record whose caplen is not above len is as written.
                    if (minor == 3) {
                        f.swap_lengths = false;
                        f.packet(1'700'000'002, 0, "third", 60);
                    }
                    const std::string what = std::to_string(big) + std::to_string(nano) + std::to_string(modified) +
                                             "/2." + std::to_string(minor);
                    PcapRead r = read_pcap(f.out);
                    ASSERT_TRUE(r.opened) << what << ": " << r.error;
                    EXPECT_EQ(r.link, 1) << what;
                    EXPECT_EQ(r.last, PcapReader::Status::End) << what << ": " << r.error;
                    ASSERT_EQ(r.packets.size(), minor == 3 ? 3u : 2u) << what;
                    EXPECT_EQ(r.data[0], "first") << what;
                    EXPECT_EQ(r.data[1], "second") << what;
                    EXPECT_EQ(r.packets[0].time.ticks,
                              FileTime::from_unix(1'700'000'000).ticks + 1'234'560 + (nano ? 7 : 0))
                        << what;
                    EXPECT_EQ(r.packets[1].time.ticks, FileTime::from_unix(1'700'000'001).ticks + (nano ? 1 : 10))
                        << what;
                    if (minor == 3) {
                        EXPECT_EQ(r.data[2], "third") << what;
                    }
                }
}

TEST(PcapReader, DamageIsAnErrorAtItsRecord) {
    PcapFile f;
    f.header(276).packet(1, 0, "first");
    const std::size_t last = f.out.size();
    f.packet(2, 0, "0123456789");
    const std::string whole = f.out;
    for (std::size_t cut = last + 1; cut < whole.size(); ++cut) {
        PcapRead r = read_pcap(whole.substr(0, cut));
        ASSERT_TRUE(r.opened);
        EXPECT_EQ(r.link, 276);
        ASSERT_EQ(r.packets.size(), 1u) << cut;
        EXPECT_EQ(r.last, PcapReader::Status::Error) << cut;
        EXPECT_EQ(r.error_offset, last) << cut;
        const std::string want =
            cut < last + 16
                ? "truncated dump file; tried to read 16 header bytes, only got " + std::to_string(cut - last)
                : "truncated dump file; tried to read 10 captured bytes, only got " + std::to_string(cut - last - 16);
        EXPECT_EQ(r.error, want);
    }
    // A captured length beyond libpcap's bound is refused before anything is read for it.
    std::string huge = whole;
    huge[last + 8] = 0, huge[last + 9] = 0, huge[last + 10] = 0x10, huge[last + 11] = 0;  // 1 MiB
    PcapRead r = read_pcap(huge);
    EXPECT_EQ(r.last, PcapReader::Status::Error);
    EXPECT_EQ(r.error, "invalid packet capture length 1048576, bigger than snaplen of 65535");
    EXPECT_EQ(r.error_offset, last);
    // Headers, in libpcap's words: not pcap, cut short, versions before 2 and after 2.4 (but 543.0);
    // a header alone is an empty file.
    EXPECT_EQ(read_pcap("GIF89a, not a capture").error, "unknown file format");
    EXPECT_EQ(read_pcap("").error, "truncated dump file; tried to read 4 file header bytes, only got 0");
    EXPECT_EQ(read_pcap(whole.substr(0, 3)).error,
              "truncated dump file; tried to read 4 file header bytes, only got 3");
    r = read_pcap(whole.substr(0, 10));
    EXPECT_FALSE(r.opened);
    EXPECT_EQ(r.error, "truncated dump file; tried to read 24 file header bytes, only got 10");
    std::string v3 = whole;
    v3[4] = 3;
    EXPECT_EQ(read_pcap(v3).error, "unsupported pcap savefile version 3.4");
    std::string v25 = whole;
    v25[6] = 5;
    EXPECT_EQ(read_pcap(v25).error, "unsupported pcap savefile version 2.5");
    std::string v1 = whole;
    v1[4] = 1;
    EXPECT_EQ(read_pcap(v1).error, "archaic pcap savefile format");
    r = read_pcap(whole.substr(0, 24));
    EXPECT_TRUE(r.opened);
    EXPECT_TRUE(r.packets.empty());
    EXPECT_EQ(r.last, PcapReader::Status::End);
}

// What libpcap does with lengths: a record longer than the file's snapshot length keeps the first
// snapshot bytes (Kuznetzov's Ethernet files add the 14-byte header to it); a 2.2 file always has the
// lengths in the old order, a 2.3 file only when they look swapped, a DG/UX 543.0 file always.
TEST(PcapReader, LengthsAsLibpcapReadsThem) {
    PcapFile snap;
    snap.snaplen = 4;
    snap.header(1).packet(1, 0, "0123456789").packet(2, 0, "ab");
    PcapRead r = read_pcap(snap.out);
    EXPECT_EQ(r.last, PcapReader::Status::End) << r.error;
    EXPECT_EQ(r.data, (std::vector<std::string>{"0123", "ab"}));

    PcapFile kuz;
    kuz.modified = true;
    kuz.snaplen = 4;
    kuz.header(1).packet(1, 0, std::string(20, 'k'));
    r = read_pcap(kuz.out);
    ASSERT_EQ(r.data.size(), 1u);
    EXPECT_EQ(r.data[0], std::string(18, 'k'));  // 4 + 14

    // Length fields written as 5 then 10: 2.2 and 543.0 swap them whatever they say (a caplen of 10),
    // 2.3 keeps them as written since 5 <= 10 (a caplen of 5).
    for (std::uint16_t major : {2, 543}) {
        PcapFile old;
        old.major = major;
        old.minor = major == 2 ? 2 : 0;
        old.header(1);
        old.u32(1), old.u32(0), old.u32(5), old.u32(10);
        old.out += "tenletters";
        r = read_pcap(old.out);
        EXPECT_EQ(r.last, PcapReader::Status::End) << major << ": " << r.error;
        ASSERT_EQ(r.data.size(), 1u) << major;
        EXPECT_EQ(r.data[0], "tenletters");
    }
    PcapFile v23;
    v23.minor = 3;
    v23.header(1);
    v23.u32(1), v23.u32(0), v23.u32(5), v23.u32(10);
    v23.out += "fives";
    r = read_pcap(v23.out);
    ASSERT_EQ(r.data.size(), 1u);
    EXPECT_EQ(r.data[0], "fives");
}

TEST(InputWindow, GrowsForAViewLargerThanItsBuffer) {
    std::string bytes(5 << 20, '\0');
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 131 % 251);
    FileInput in(memfd_of(bytes));
    InputWindow w(in);
    const ByteView small = w.take(10);
    ASSERT_EQ(small.size(), 10u);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(small.data()), 10), bytes.substr(0, 10));
    const ByteView big = w.take(3 << 20);  // more than the 2 MiB first buffer holds
    ASSERT_EQ(big.size(), std::size_t{3} << 20);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(big.data()), big.size()), bytes.substr(10, 3 << 20));
    const ByteView peeked = w.peek(1 << 20);
    const ByteView rest = w.take(5 << 20);  // fewer at the end
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(rest.data()), rest.size()), bytes.substr(10 + (3 << 20)));
    EXPECT_EQ(peeked.size(), std::size_t{1} << 20);
    EXPECT_EQ(w.offset(), bytes.size());
    EXPECT_TRUE(w.take(1).empty());
}

TEST(InputWindow, ViewsStayWholeAcrossRefillsAndThroughAPipe) {
    // Records of every size up to the largest pcap allows, so that views straddle the 1 MiB refills; read
    // from a file, then through a pipe that hands them out in small, odd pieces.
    PcapFile f;
    f.snaplen = PcapReader::kMaxCaptureLength;
    f.header(1);
    std::vector<std::string> want;
    for (std::uint32_t i = 0; i < 64; ++i) {
        const std::size_t size = i == 40 ? PcapReader::kMaxCaptureLength : (i * 7919u) % 70000u;
        std::string data(size, '\0');
        for (std::size_t k = 0; k < size; ++k) data[k] = static_cast<char>('a' + (k * 31 + i) % 26);
        f.packet(i, 0, data);
        want.push_back(data);
    }
    PcapRead r = read_pcap(f.out);
    EXPECT_EQ(r.last, PcapReader::Status::End) << r.error;
    EXPECT_EQ(r.data, want);

    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    // A reader that stops early closes its end: the writer must get EPIPE, not a signal that ends the run.
    auto* old_handler = std::signal(SIGPIPE, SIG_IGN);
    std::thread writer([&] {
        for (std::size_t at = 0; at < f.out.size();) {
            const std::size_t n = std::min<std::size_t>(at % 3 == 0 ? 4093 : 17, f.out.size() - at);
            if (write(fds[1], f.out.data() + at, n) != static_cast<ssize_t>(n)) break;
            at += n;
        }
        close(fds[1]);
    });
    PcapRead p = read_pcap(fds[0]);
    writer.join();
    std::signal(SIGPIPE, old_handler);
    EXPECT_EQ(p.last, PcapReader::Status::End) << p.error;
    EXPECT_EQ(p.data, want);
}

// ------------------------------------------------------------------ FileInput

std::string gzip_of(const std::string& data) {
    z_stream z{};
    EXPECT_EQ(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    std::string out(deflateBound(&z, data.size()) + 64, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    z.avail_in = static_cast<uInt>(data.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
    out.resize(z.total_out);
    deflateEnd(&z);
    return out;
}

// Everything FileInput hands out, in reads of `chunk` bytes, and whether it ended in a failure.
std::pair<std::string, bool> drain(FileInput& in, std::size_t chunk = 4096) {
    std::string out;
    std::vector<char> buf(chunk);
    for (int guard = 0; guard < 100000; ++guard) {
        long n = in.read(buf.data(), buf.size());
        if (n < 0) return {out, true};
        if (n == 0) return {out, false};
        out.append(buf.data(), static_cast<std::size_t>(n));
    }
    ADD_FAILURE() << "no end";
    return {out, false};
}

std::string sample(std::size_t n) {
    std::string s;
    for (std::size_t i = 0; s.size() < n; ++i) s += "packet " + std::to_string(i * 7919 % 100003) + ";";
    return s;
}

TEST(FileInput, PlainAndGzipGiveTheSameBytesAndPeekConsumesNothing) {
    const std::string data = sample(300000);
    for (const std::string& file : {data, gzip_of(data), gzip_of(data.substr(0, 1000)) + gzip_of(data.substr(1000))}) {
        FileInput in(memfd_of(file));
        EXPECT_EQ(in.peek(4), data.substr(0, 4));
        EXPECT_EQ(in.position(), 0u);
        auto [got, failed] = drain(in, 777);
        EXPECT_FALSE(failed) << (in.failure() ? in.failure()->reason : "");
        EXPECT_EQ(got, data);
        EXPECT_EQ(in.position(), data.size());
        EXPECT_EQ(in.file_position(), file.size());
    }
    // Bytes after the last member are ignored, as gzread does.
    FileInput in(memfd_of(gzip_of(data) + "trailing garbage"));
    auto [got, failed] = drain(in);
    EXPECT_FALSE(failed);
    EXPECT_EQ(got, data);
}

TEST(FileInput, DamageIsReportedWhereZlibFindsItAfterTheBytesBeforeIt) {
    const std::string data = sample(2 << 20);
    const std::string gz = gzip_of(data);
    // The CRC: every byte comes out, then the failure at the trailer.
    std::string bad = gz;
    bad[bad.size() - 8] ^= 0x01;
    FileInput crc(memfd_of(bad));
    auto [got, failed] = drain(crc, 1 << 20);
    EXPECT_TRUE(failed);
    EXPECT_EQ(got, data);
    ASSERT_TRUE(crc.failure());
    EXPECT_EQ(crc.failure()->reason, "gzip: incorrect data check");
    EXPECT_GE(crc.failure()->file_offset, gz.size() - 8);
    EXPECT_LE(crc.failure()->file_offset, gz.size());
    EXPECT_EQ(crc.failure()->offset, data.size());
    // No trailer.
    FileInput cut(memfd_of(gz.substr(0, gz.size() - 8)));
    std::tie(got, failed) = drain(cut, 1 << 20);
    EXPECT_TRUE(failed);
    EXPECT_EQ(got, data);
    EXPECT_EQ(cut.failure()->file_offset, gz.size() - 8);
    EXPECT_EQ(cut.failure()->reason, "gzip: unexpected end of file (compressed data or trailer missing)");
    // Cut in the middle: a prefix of the data, then the failure at the end of the file.
    FileInput half(memfd_of(gz.substr(0, gz.size() / 2)));
    std::tie(got, failed) = drain(half, 1 << 20);
    EXPECT_TRUE(failed);
    EXPECT_GT(got.size(), 0u);
    EXPECT_EQ(got, data.substr(0, got.size()));
    EXPECT_EQ(half.failure()->file_offset, gz.size() / 2);
    EXPECT_EQ(half.failure()->offset, got.size());
    // Read errors after a failure stay failures.
    char c;
    EXPECT_EQ(half.read(&c, 1), -1);
}

TEST(FileInput, GzipThroughAPipe) {
    const std::string data = sample(200000);
    const std::string gz = gzip_of(data);
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    std::thread writer([&] {
        // The first byte alone (the magic arrives split), then pieces of 1000 bytes.
        for (std::size_t at = 0; at < gz.size();) {
            const std::size_t n = at == 0 ? 1 : std::min<std::size_t>(1000, gz.size() - at);
            EXPECT_EQ(write(fds[1], gz.data() + at, n), static_cast<ssize_t>(n));
            at += n;
        }
        close(fds[1]);
    });
    FileInput in(fds[0]);
    auto [got, failed] = drain(in);
    writer.join();
    EXPECT_TRUE(in.gzip());
    EXPECT_FALSE(failed);
    EXPECT_EQ(got, data);
}

}  // namespace
