// kms-analyze's JSON fast path (analyzer/src/plain_text.hpp): text is copied without escaping only when
// every byte is printable ASCII other than quote and backslash; anything else goes through the escaper.
#include <gtest/gtest.h>

#include <string>

#include "plain_text.hpp"

using kmscope::analyzer::is_plain_text;

namespace {
bool plain_byte(unsigned char c) {
    return c >= 0x20 && c <= 0x7E && c != '"' && c != '\\';
}
}  // namespace

TEST(PlainText, NamesAddressesAndEmptyArePlain) {
    EXPECT_TRUE(is_plain_text(""));
    EXPECT_TRUE(is_plain_text("Windows 10/11 Enterprise LTSC 2019"));
    EXPECT_TRUE(is_plain_text("[2001:db8::1]:1688"));
    EXPECT_TRUE(is_plain_text(" !#$%&'()*+,-./0123456789:;<=>?@[]^_`{|}~"));
}

// Every byte value at every position of strings of 1 to 24 bytes (the word loop and the tail), against
// the byte-by-byte rule.
TEST(PlainText, EveryByteAtEveryPositionAgreesWithTheByteRule) {
    for (std::size_t len = 1; len <= 24; ++len)
        for (std::size_t at = 0; at < len; ++at)
            for (int c = 0; c < 256; ++c) {
                std::string s(len, 'a');
                s[at] = static_cast<char>(c);
                ASSERT_EQ(is_plain_text(s), plain_byte(static_cast<unsigned char>(c)))
                    << "length " << len << ", byte 0x" << std::hex << c << " at " << std::dec << at;
            }
}

// Neighbours of the excluded values, all in one word, must not hide or fake each other.
TEST(PlainText, BoundaryBytesTogetherInOneWord) {
    EXPECT_TRUE(is_plain_text(std::string("\x20\x21\x23\x5B\x5D\x7E\x20\x7E", 8)));
    EXPECT_FALSE(is_plain_text(std::string("\x20\x21\x22\x5B\x5D\x7E\x20\x7E", 8)));
    EXPECT_FALSE(is_plain_text(std::string("\x20\x21\x23\x5B\x5D\x7E\x20\x7F", 8)));
    EXPECT_FALSE(is_plain_text(std::string("\x1F\x21\x23\x5B\x5D\x7E\x20\x7E", 8)));
    EXPECT_FALSE(is_plain_text(std::string("\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF", 8)));
    EXPECT_FALSE(is_plain_text(std::string("B\xC3\xBCro-PC1", 9)));
}
