// The Community ID against the specification's published vectors (Corelight's community-id-spec):
// TCP and UDP over IPv4, TCP over IPv6, each in both directions.
#include <gtest/gtest.h>

#include "community_id.hpp"

namespace kmscope::capture {
namespace {

std::string id(const char* src, std::uint16_t sport, const char* dst, std::uint16_t dport, std::uint8_t proto) {
    auto a = endpoint_from_text(src, sport), b = endpoint_from_text(dst, dport);
    EXPECT_TRUE(a && b);
    return community_id(*a, *b, proto);
}

TEST(CommunityId, PublishedVectorsInBothDirections) {
    EXPECT_EQ(id("128.232.110.120", 34855, "66.35.250.204", 80, kIpProtoTcp), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
    EXPECT_EQ(id("66.35.250.204", 80, "128.232.110.120", 34855, kIpProtoTcp), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
    EXPECT_EQ(id("192.168.1.52", 54585, "8.8.8.8", 53, kIpProtoUdp), "1:d/FP5EW3wiY1vCndhwleRRKHowQ=");
    EXPECT_EQ(id("8.8.8.8", 53, "192.168.1.52", 54585, kIpProtoUdp), "1:d/FP5EW3wiY1vCndhwleRRKHowQ=");
    EXPECT_EQ(id("2001:470:e5bf:dead:4957:2174:e82c:4887", 63943, "2607:f8b0:400c:c03::1a", 25, kIpProtoTcp),
              "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=");
    EXPECT_EQ(id("2607:f8b0:400c:c03::1a", 25, "2001:470:e5bf:dead:4957:2174:e82c:4887", 63943, kIpProtoTcp),
              "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=");
}

TEST(CommunityId, SeedAndProtocolChangeTheId) {
    auto a = *endpoint_from_text("10.0.0.5", 49152), b = *endpoint_from_text("10.0.0.1", 1688);
    EXPECT_NE(community_id(a, b, kIpProtoTcp), community_id(a, b, kIpProtoTcp, 1));
    EXPECT_NE(community_id(a, b, kIpProtoTcp), community_id(a, b, kIpProtoUdp));
}

TEST(CommunityId, EndpointFromText) {
    EXPECT_FALSE(endpoint_from_text("10.0.0.256", 1));
    EXPECT_FALSE(endpoint_from_text("[::1]", 1));
    auto v6 = endpoint_from_text("::1", 1688);
    ASSERT_TRUE(v6);
    EXPECT_TRUE(v6->v6);
    EXPECT_EQ(v6->addr[15], 1);
    EXPECT_EQ(v6->port, 1688);
}

// Endpoint's text (written by hand, six times per connection): dotted IPv4, RFC 5952 IPv6 (lower case,
// the longest run of two or more zero groups compressed, the first of equal runs, a single zero group
// kept), brackets only around an IPv6 address followed by a port.
TEST(CommunityId, EndpointTextRoundTrips) {
    const std::pair<const char*, const char*> cases[] = {
        {"10.0.0.5", "10.0.0.5:1688"},
        {"0.0.0.0", "0.0.0.0:1688"},
        {"255.255.255.255", "255.255.255.255:1688"},
        {"::1", "[::1]:1688"},
        {"::", "[::]:1688"},
        {"2001:db8::1", "[2001:db8::1]:1688"},
        {"2001:0DB8:0:1:1:1:1:1", "[2001:db8:0:1:1:1:1:1]:1688"},
        {"fe80:0:0:1:0:0:1:0", "[fe80::1:0:0:1:0]:1688"},
        {"1:0:0:2:0:0:0:3", "[1:0:0:2::3]:1688"},
        {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:1688"},
        {"abcd::", "[abcd::]:1688"},
    };
    for (const auto& [text, shown] : cases) {
        auto e = endpoint_from_text(text, 1688);
        ASSERT_TRUE(e) << text;
        EXPECT_EQ(e->to_string(), shown);
        const std::string s = shown;
        const std::string address = e->v6 ? s.substr(1, s.rfind(']') - 1) : s.substr(0, s.rfind(':'));
        EXPECT_EQ(e->address_string(), address);
        EXPECT_EQ(Endpoint::address_in(e->to_string(), e->v6), address);
        EXPECT_EQ(endpoint_from_text(address, 1688), e) << text;
    }
    auto high = *endpoint_from_text("10.0.0.5", 65535);
    EXPECT_EQ(high.to_string(), "10.0.0.5:65535");
    high.port = 0;
    EXPECT_EQ(high.to_string(), "10.0.0.5:0");
}

}  // namespace
}  // namespace kmscope::capture
