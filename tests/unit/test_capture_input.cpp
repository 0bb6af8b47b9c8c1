// The capture library's own readers: PcapngReader (a link type, time resolution and offset per interface,
// both byte orders, several sections, bounded blocks) and FileInput (gzip inflated whatever the kind of
// file, damage reported where it is, the bytes before it kept).
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "file_input.hpp"
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

// A FILE* over a copy of `bytes` (closed by the caller).
std::FILE* file_of(const std::string& bytes) {
    std::FILE* f = tmpfile();
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::rewind(f);
    return f;
}

struct Read {
    std::vector<PcapngReader::Packet> packets;
    std::vector<std::string> data;
    PcapngReader::Status last = PcapngReader::Status::End;
    std::string error;
    std::uint64_t error_offset = 0;
};

Read read_all(const std::string& bytes) {
    std::FILE* f = file_of(bytes);
    PcapngReader r(f);
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
    std::fclose(f);
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

// ------------------------------------------------------------------ FileInput

// A descriptor reading `bytes` (a memfd, or a pipe fed by a writer thread for pipes).
int fd_of(const std::string& bytes) {
    int fd = memfd_create("capture-input", MFD_CLOEXEC);
    EXPECT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    lseek(fd, 0, SEEK_SET);
    return fd;
}

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
        FileInput in(fd_of(file));
        EXPECT_EQ(in.peek(4), data.substr(0, 4));
        EXPECT_EQ(in.position(), 0u);
        auto [got, failed] = drain(in, 777);
        EXPECT_FALSE(failed) << (in.failure() ? in.failure()->reason : "");
        EXPECT_EQ(got, data);
        EXPECT_EQ(in.position(), data.size());
        EXPECT_EQ(in.file_position(), file.size());
    }
    // Bytes after the last member are ignored, as gzread does.
    FileInput in(fd_of(gzip_of(data) + "trailing garbage"));
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
    FileInput crc(fd_of(bad));
    auto [got, failed] = drain(crc, 1 << 20);
    EXPECT_TRUE(failed);
    EXPECT_EQ(got, data);
    ASSERT_TRUE(crc.failure());
    EXPECT_EQ(crc.failure()->reason, "gzip: incorrect data check");
    EXPECT_GE(crc.failure()->file_offset, gz.size() - 8);
    EXPECT_LE(crc.failure()->file_offset, gz.size());
    EXPECT_EQ(crc.failure()->offset, data.size());
    // No trailer.
    FileInput cut(fd_of(gz.substr(0, gz.size() - 8)));
    std::tie(got, failed) = drain(cut, 1 << 20);
    EXPECT_TRUE(failed);
    EXPECT_EQ(got, data);
    EXPECT_EQ(cut.failure()->file_offset, gz.size() - 8);
    EXPECT_EQ(cut.failure()->reason, "gzip: unexpected end of file (compressed data or trailer missing)");
    // Cut in the middle: a prefix of the data, then the failure at the end of the file.
    FileInput half(fd_of(gz.substr(0, gz.size() / 2)));
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
