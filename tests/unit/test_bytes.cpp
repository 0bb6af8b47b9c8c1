// Byte-level helpers: fail-closed reading with field and offset, GUID layout, FILETIME, UTF-16LE.
#include <gtest/gtest.h>

#include <cstdio>
#include <ctime>

#include "kmscope/bytes.hpp"
#include "test_util.hpp"

namespace kmscope {
namespace {

TEST(Reader, ReadsLittleEndianAndTracksAbsoluteOffsets) {
    Bytes b = test::hex("0102 03040506 0708090a0b0c0d0e");
    Reader r(b, 100);
    EXPECT_EQ(r.u16le("a"), 0x0201);
    EXPECT_EQ(r.u32le("b"), 0x06050403u);
    EXPECT_EQ(r.offset(), 106u);
    EXPECT_EQ(r.u64le("c"), 0x0e0d0c0b0a090807ull);
    EXPECT_EQ(r.remaining(), 0u);
    EXPECT_TRUE(r.ok());
}

TEST(Reader, FailsClosedNamingFieldAndOffset) {
    Bytes b = test::hex("010203");
    Reader r(b, 40);
    EXPECT_EQ(r.u16le("first"), 0x0201);
    EXPECT_EQ(r.u32le("frag_length"), 0u);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error()->field, "frag_length");
    EXPECT_EQ(r.error()->offset, 42u);
    EXPECT_EQ(r.error()->to_string(), "frag_length at offset 42: truncated (needs 4 bytes, 1 left)");
    // Sticky: later reads return zero and keep the first error, even when bytes would be there.
    EXPECT_EQ(r.u8("later"), 0);
    EXPECT_EQ(r.error()->field, "frag_length");
    EXPECT_TRUE(r.bytes(1, "x").empty());
    r.fail("semantic", "ignored");
    EXPECT_EQ(r.error()->field, "frag_length");
}

TEST(Reader, HugeLengthsDoNotOverflow) {
    Bytes b(8);
    Reader r(b);
    r.skip(4, "a");
    EXPECT_TRUE(r.bytes(SIZE_MAX, "huge").empty());
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.error()->offset, 4u);
}

TEST(Guid, MicrosoftLayout) {
    auto g = Guid::parse("55c92734-d682-4d71-983e-d6ec3f16059f");
    ASSERT_TRUE(g);
    EXPECT_EQ(to_hex(g->wire), "3427c95582d6714d983ed6ec3f16059f");
    EXPECT_EQ(g->to_string(), "55c92734-d682-4d71-983e-d6ec3f16059f");
    EXPECT_EQ(Guid::parse("{55C92734-D682-4D71-983E-D6EC3F16059F}"), g);
    EXPECT_EQ(Guid::from_wire(test::hex("3427c95582d6714d983ed6ec3f16059f")), *g);
    EXPECT_FALSE(Guid::parse("55c92734-d682-4d71-983e-d6ec3f16059"));
    EXPECT_FALSE(Guid::parse("55c92734_d682-4d71-983e-d6ec3f16059f"));
    EXPECT_FALSE(Guid::parse("55c92734-d682-4d71-983e-d6ec3f16059g"));
    EXPECT_TRUE(Guid{}.is_nil());
    EXPECT_FALSE(g->is_nil());
}

// The calendar arithmetic agrees with the C library's gmtime_r over the whole FILETIME range.
TEST(FileTime, IsoMatchesGmtime) {
    std::uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 200000; ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;  // xorshift: fixed sequence, no seed to manage
        const FileTime t{i % 2 ? x : x % 5000000000000000000ull};
        const std::time_t secs = static_cast<std::time_t>(t.unix_seconds());
        std::tm tm{};
        ASSERT_NE(gmtime_r(&secs, &tm), nullptr);
        char expected[64];
        std::size_t n = std::strftime(expected, sizeof expected, "%Y-%m-%dT%H:%M:%S", &tm);
        if (t.ticks % 10000000)
            n += std::snprintf(expected + n, sizeof expected - n, ".%07llu",
                               static_cast<unsigned long long>(t.ticks % 10000000));
        expected[n++] = 'Z';
        ASSERT_EQ(t.to_iso8601(), std::string(expected, n)) << t.ticks;
    }
}

TEST(FileTime, ConversionsAndIso) {
    FileTime t{0x01D7657AB62CD55Cull};
    EXPECT_EQ(t.to_iso8601(), "2021-06-20T02:19:34.7525980Z");
    EXPECT_EQ(t.unix_seconds(), 1624155574);
    EXPECT_EQ(FileTime::from_unix(0).ticks, 116444736000000000ull);
    EXPECT_EQ(FileTime::from_unix(1624155574).to_iso8601(), "2021-06-20T02:19:34Z");
    EXPECT_EQ(FileTime{0}.to_iso8601(), "1601-01-01T00:00:00Z");
    EXPECT_EQ(FileTime{UINT64_MAX}.to_iso8601(), "60056-05-28T05:36:10.9551615Z");   // far future still prints
    EXPECT_EQ(FileTime::from_unix(951782400).to_iso8601(), "2000-02-29T00:00:00Z");  // leap day of a 400-year
    EXPECT_EQ(FileTime::from_unix(4107456000).to_iso8601(), "2100-02-28T00:00:00Z");
    EXPECT_EQ(FileTime::from_unix(4107456000 + 86400).to_iso8601(), "2100-03-01T00:00:00Z");  // 2100 is not leap
    // Out-of-range Unix times saturate (pcapng time stamps are 64-bit and attacker-controlled).
    EXPECT_EQ(FileTime::from_unix(INT64_MAX).ticks, UINT64_MAX);
    EXPECT_EQ(FileTime::from_unix(18458388547309).ticks, UINT64_MAX);
    EXPECT_EQ(FileTime::from_unix(INT64_MIN).ticks, 0u);
    EXPECT_EQ(FileTime::from_unix(-11644473600).ticks, 0u);
    EXPECT_EQ(FileTime::from_unix(-11644473599).ticks, 10000000u);
}

// The converter reads four ASCII units at a time: a NUL, or a unit that is not ASCII, at any place of
// texts of any length must end that fast path where a unit-by-unit reading (below) would.
std::string utf16_unit_by_unit(const Bytes& b, bool stop_at_nul) {
    std::string out;
    for (std::size_t i = 0; i + 1 < b.size(); i += 2) {
        const unsigned u = b[i] | b[i + 1] << 8;
        if (u == 0 && stop_at_nul) break;
        if (u < 0x80)
            out += static_cast<char>(u);
        else if (u < 0x800)
            out += {static_cast<char>(0xC0 | u >> 6), static_cast<char>(0x80 | (u & 0x3F))};
        else if (u >= 0xD800 && u <= 0xDFFF)
            out += "\xEF\xBF\xBD";  // lone surrogates only, in these texts
        else
            out += {static_cast<char>(0xE0 | u >> 12), static_cast<char>(0x80 | (u >> 6 & 0x3F)),
                    static_cast<char>(0x80 | (u & 0x3F))};
    }
    return out;
}

TEST(Utf16, FastPathEndsWhereAUnitByUnitReadingWould) {
    for (unsigned odd : {0x0u, 0x7Fu, 0x80u, 0xFFu, 0x100u, 0x4100u, 0x20ACu, 0xD83Du, 0xDE00u}) {
        for (std::size_t len = 1; len <= 13; ++len) {
            for (std::size_t at = 0; at < len; ++at) {
                Bytes b;
                for (std::size_t i = 0; i < len; ++i) {
                    const unsigned u = i == at ? odd : 'a' + static_cast<unsigned>(i);
                    b.push_back(static_cast<std::uint8_t>(u & 0xFF));
                    b.push_back(static_cast<std::uint8_t>(u >> 8));
                }
                for (bool stop : {true, false}) {
                    SCOPED_TRACE(to_hex(b) + (stop ? " stop at NUL" : " whole"));
                    ASSERT_EQ(utf16le_to_utf8(b, stop), utf16_unit_by_unit(b, stop));
                }
            }
        }
    }
}

TEST(Utf16, RoundTripsAndRepairs) {
    EXPECT_EQ(utf16le_to_utf8(test::hex("5400450053005400")), "TEST");
    EXPECT_EQ(utf16le_to_utf8(test::hex("41000000420043")), "A");  // stops at the NUL
    EXPECT_EQ(utf16le_to_utf8(test::hex("41000000420043"), false), std::string("A\0B", 3) + "");
    EXPECT_EQ(utf16le_to_utf8(test::hex("3dd800de")), "\xF0\x9F\x98\x80");  // surrogate pair
    EXPECT_EQ(utf16le_to_utf8(test::hex("3dd84100")),
              "\xEF\xBF\xBD"
              "A");                                                 // lone high surrogate
    EXPECT_EQ(utf16le_to_utf8(test::hex("00de")), "\xEF\xBF\xBD");  // lone low surrogate
    EXPECT_EQ(utf16le_to_utf8(test::hex("410042")), "A");           // odd trailing byte
    EXPECT_EQ(utf16le_to_utf8(test::hex("4100c4004200")),
              "A\xC3\x84"
              "B");                                                  // ASCII, then not: the general path
    EXPECT_EQ(utf16le_to_utf8(test::hex("41004101")), "A\xC5\x81");  // a high byte that is not zero
    EXPECT_EQ(utf16le_to_utf8(test::hex("")), "");
    EXPECT_EQ(to_hex(utf8_to_utf16le("Ä€😀")), "c400ac203dd800de");
    EXPECT_EQ(to_hex(utf8_to_utf16le("\xC3")), "fdff");                  // truncated sequence
    EXPECT_EQ(to_hex(utf8_to_utf16le("\xC0\x80")), "fdfffdff");          // overlong NUL: one U+FFFD per byte
    EXPECT_EQ(to_hex(utf8_to_utf16le("\xED\xA0\x80")), "fdfffdfffdff");  // encoded surrogate
}

TEST(Utf8, ValidatesAndSanitizes) {
    EXPECT_TRUE(is_valid_utf8(""));
    EXPECT_TRUE(is_valid_utf8("B\xC3\xBCro \xF0\x9F\x98\x80"));  // Büro 😀
    EXPECT_FALSE(is_valid_utf8("\xC3"));                         // truncated
    EXPECT_FALSE(is_valid_utf8("\xC0\x80"));                     // overlong
    EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));                 // surrogate
    EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));             // above U+10FFFF
    EXPECT_EQ(sanitize_utf8("B\xC3\xBCro"), "B\xC3\xBCro");
    EXPECT_EQ(sanitize_utf8("a\xFF"
                            "b"),
              "a\xEF\xBF\xBD"
              "b");
    EXPECT_EQ(sanitize_utf8("\xC0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // one U+FFFD per bad byte
    EXPECT_TRUE(is_valid_utf8(sanitize_utf8("\xE2\x82")));
}

TEST(Hex, ParsesAndRejects) {
    EXPECT_EQ(from_hex("0a 0B\n"), (Bytes{0x0a, 0x0b}));
    EXPECT_FALSE(from_hex("abc"));
    EXPECT_FALSE(from_hex("zz"));
    EXPECT_EQ(to_hex(Bytes{0xde, 0xad}), "dead");
}

TEST(Writer, WritesAndPatches) {
    Writer w;
    w.u8(1);
    w.u16le(0x0302);
    w.u32le(0);
    w.align(8);
    w.patch_u32le(3, 0xddccbbaa);
    w.u64le(0x0807060504030201ull);
    EXPECT_EQ(to_hex(w.buffer()), "010203aabbccdd000102030405060708");
}

}  // namespace
}  // namespace kmscope
