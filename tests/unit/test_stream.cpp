// Stream framing and fragment reassembly: caps, poisoning, and chunk independence.
#include <gtest/gtest.h>

#include "kmscope/stream.hpp"
#include "sheet_vectors.hpp"
#include "test_util.hpp"

namespace kmscope {
namespace {

using test::hex;

TEST(StreamFramer, SplitsCoalescedPdusAndKeepsOffsets) {
    Bytes all;
    std::vector<std::size_t> sizes;
    for (const auto& p : test::sheet::kSessionC)
        if (p.from == 'C') {
            auto b = hex(p.hex);
            sizes.push_back(b.size());
            all.insert(all.end(), b.begin(), b.end());
        }
    rpc::StreamFramer f;
    f.feed(ByteView(all).first(10));
    EXPECT_FALSE(f.next());
    f.feed(ByteView(all).subspan(10));
    std::uint64_t offset = 0;
    for (auto n : sizes) {
        auto frame = f.next();
        ASSERT_TRUE(frame);
        EXPECT_EQ(frame->bytes.size(), n);
        EXPECT_EQ(frame->stream_offset, offset);
        offset += n;
    }
    EXPECT_FALSE(f.next());
    EXPECT_EQ(f.buffered(), 0u);
    EXPECT_FALSE(f.error());
}

// A long-lived connection (kms-replay serve) must not pin the memory of one large PDU: once every byte
// fed has been returned, a buffer over kKeptCapacity is given back; a small one is kept for reuse.
TEST(StreamFramer, GivesALargeBufferBackOnceConsumed) {
    Bytes big = hex(test::sheet::kSessionC[4].hex);  // a 292-byte request, grown to 60 KB below
    const std::size_t stub = 60000;
    big.resize(big.size() + stub, 0);
    big[8] = static_cast<std::uint8_t>(big.size() & 0xff);
    big[9] = static_cast<std::uint8_t>(big.size() >> 8);
    rpc::StreamFramer f;
    f.feed(ByteView(big).first(100));
    EXPECT_FALSE(f.next());
    f.feed(ByteView(big).subspan(100));
    EXPECT_GE(f.retained(), big.size());
    auto frame = f.next();
    ASSERT_TRUE(frame);
    EXPECT_EQ(frame->bytes.size(), big.size());
    EXPECT_EQ(f.buffered(), 0u);
    EXPECT_EQ(f.retained(), 0u);

    Bytes small = hex(test::sheet::kSessionC[0].hex);
    f.feed(small);
    f.feed(ByteView(small).first(10));  // and the start of the next one
    ASSERT_TRUE(f.next());
    EXPECT_EQ(f.buffered(), 10u);  // a partial PDU keeps its buffer
    f.feed(ByteView(small).subspan(10));
    auto second = f.next();
    ASSERT_TRUE(second);
    EXPECT_EQ(second->stream_offset, big.size() + small.size());
    EXPECT_GT(f.retained(), 0u);  // small buffers are reused
    EXPECT_LE(f.retained(), rpc::StreamFramer::kKeptCapacity);
}

TEST(StreamFramer, PoisonedByNonRpcAndByOversizedPdus) {
    rpc::StreamFramer http;
    std::string get = "GET / HTTP/1.1\r\n\r\n";
    http.feed(ByteView(reinterpret_cast<const std::uint8_t*>(get.data()), get.size()));
    EXPECT_FALSE(http.next());
    ASSERT_TRUE(http.error());
    EXPECT_EQ(http.error()->field, "rpc_vers");

    rpc::Limits small;
    small.max_pdu_size = 200;
    rpc::StreamFramer f(small);
    f.feed(hex(test::sheet::kSessionC[4].hex));  // a 292-byte request
    EXPECT_FALSE(f.next());
    ASSERT_TRUE(f.error());
    EXPECT_NE(f.error()->message.find("exceeds the limit of 200"), std::string::npos);

    rpc::StreamFramer tiny;
    Bytes hdr = hex("05000003100000000800000002000000");  // frag_length 8 < 16
    tiny.feed(hdr);
    EXPECT_FALSE(tiny.next());
    EXPECT_EQ(tiny.error()->field, "frag_length");
}

rpc::Pdu parse_owned(const Bytes& b) {
    return *rpc::parse_pdu(b);
}

TEST(FragmentAssembler, CapsFragmentsAndSize) {
    rpc::Limits limits;
    limits.max_fragments = 3;
    rpc::FragmentAssembler a(limits);
    Bytes stub(10, 0xAB);
    auto first = rpc::build_request(rpc::flag::kFirstFrag, 9, 0, 0, stub);
    auto middle = rpc::build_request(0, 9, 0, 0, stub);
    EXPECT_FALSE(a.add(parse_owned(first), first)->has_value());
    EXPECT_FALSE(a.add(parse_owned(middle), middle)->has_value());
    EXPECT_FALSE(a.add(parse_owned(middle), middle)->has_value());
    auto over = a.add(parse_owned(middle), middle);
    ASSERT_FALSE(over);
    EXPECT_NE(over.error().message.find("exceeds the reassembly limits"), std::string::npos);
    EXPECT_EQ(a.pending(), 0u);

    auto orphan = a.add(parse_owned(middle), middle);
    ASSERT_FALSE(orphan);
    EXPECT_NE(orphan.error().message.find("without a FIRST_FRAG"), std::string::npos);

    rpc::Limits bytes_cap;
    bytes_cap.max_reassembled_stub = 15;
    rpc::FragmentAssembler b(bytes_cap);
    EXPECT_TRUE(b.add(parse_owned(first), first));
    EXPECT_FALSE(b.add(parse_owned(middle), middle));
}

TEST(FragmentAssembler, JoinsStubsInOrder) {
    rpc::FragmentAssembler a;
    auto f1 = rpc::build_request(rpc::flag::kFirstFrag, 4, 1, 0, hex("0102"));
    auto f2 = rpc::build_request(rpc::flag::kLastFrag, 4, 1, 0, hex("0304"));
    EXPECT_FALSE(a.add(parse_owned(f1), f1)->has_value());
    auto whole = a.add(parse_owned(f2), f2);
    ASSERT_TRUE(whole && whole->has_value());
    auto pdu = rpc::parse_pdu(**whole);
    ASSERT_TRUE(pdu);
    EXPECT_EQ(pdu->header.flags & rpc::flag::kFirstLast, rpc::flag::kFirstLast);
    EXPECT_EQ(to_hex(std::get<rpc::RequestBody>(pdu->body).stub), "01020304");
    EXPECT_EQ(std::get<rpc::RequestBody>(pdu->body).context_id, 1);
}

// The framer's zero-copy path: the view points into its buffer with the header it parsed, stays valid
// until the next call, and a drained large buffer is given back at that next call, not under the view.
TEST(StreamFramer, ViewsCarryTheParsedHeaderAndStayValidUntilTheNextCall) {
    Bytes big = hex(test::sheet::kSessionC[4].hex);
    big.resize(big.size() + 40000, 0x5A);
    big[8] = static_cast<std::uint8_t>(big.size() & 0xff);
    big[9] = static_cast<std::uint8_t>(big.size() >> 8);
    rpc::StreamFramer f;
    f.feed(big);
    auto view = f.next_view();
    ASSERT_TRUE(view);
    EXPECT_EQ(view->header.frag_length, big.size());
    EXPECT_EQ(view->header.call_id, rpc::parse_header(big)->call_id);
    EXPECT_EQ(view->stream_offset, 0u);
    EXPECT_GE(f.retained(), big.size());  // still behind the view
    EXPECT_TRUE(std::equal(view->bytes.begin(), view->bytes.end(), big.begin(), big.end()));
    auto pdu = rpc::parse_pdu(view->header, view->bytes);
    ASSERT_TRUE(pdu);
    EXPECT_EQ(pdu->header.call_id, view->header.call_id);
    EXPECT_FALSE(f.next_view());
    EXPECT_EQ(f.retained(), 0u);  // given back at the next call
    Bytes small = hex(test::sheet::kSessionC[0].hex);
    f.feed(small);
    auto second = f.next_view();
    ASSERT_TRUE(second);
    EXPECT_EQ(second->stream_offset, big.size());
    EXPECT_EQ(to_hex(second->bytes), to_hex(small));
}

// A lent chunk is framed where it lies; keep() copies only the PDU it cuts, so the chunk may go at once.
TEST(StreamFramer, LentChunksAreFramedInPlaceAndOnlyTheirCutPduIsKept) {
    const Bytes first = hex(test::sheet::kSessionC[0].hex), second = hex(test::sheet::kSessionC[4].hex);
    Bytes chunk = first;
    chunk.insert(chunk.end(), second.begin(), second.begin() + 30);  // a whole PDU and the start of the next
    rpc::StreamFramer f;
    f.lend(chunk);
    auto view = f.next_view();
    ASSERT_TRUE(view);
    EXPECT_EQ(view->bytes.data(), chunk.data());  // not copied
    EXPECT_EQ(view->bytes.size(), first.size());
    EXPECT_FALSE(f.next_view());
    EXPECT_EQ(f.buffered(), 30u);
    EXPECT_EQ(f.retained(), 0u);
    f.keep();
    EXPECT_EQ(f.buffered(), 30u);
    EXPECT_GE(f.retained(), 30u);
    std::fill(chunk.begin(), chunk.end(), 0xEE);  // the caller's bytes are gone
    Bytes rest(second.begin() + 30, second.end());
    f.lend(rest);  // bytes are buffered: this one is copied behind them
    auto whole = f.next_view();
    ASSERT_TRUE(whole);
    EXPECT_EQ(whole->stream_offset, first.size());
    EXPECT_EQ(to_hex(whole->bytes), to_hex(second));
    f.keep();
    EXPECT_EQ(f.buffered(), 0u);
    EXPECT_EQ(f.total_fed(), first.size() + second.size());
    // Drained again: the next lent chunk is framed in place.
    f.lend(second);
    auto again = f.next_view();
    ASSERT_TRUE(again);
    EXPECT_EQ(again->bytes.data(), second.data());
    EXPECT_EQ(again->stream_offset, first.size() + second.size());
    f.keep();
    EXPECT_EQ(f.buffered(), 0u);
}

// A single-fragment call is handed on as it is; only several fragments are joined (into the assembler).
TEST(FragmentAssembler, JoinsOnlyWhenThereAreSeveralFragments) {
    rpc::FragmentAssembler a;
    auto single = rpc::build_request(rpc::flag::kFirstLast, 3, 0, 0, hex("0a0b"));
    auto one = a.add_view(parse_owned(single), single);
    ASSERT_TRUE(one && one->has_value());
    EXPECT_FALSE((*one)->joined);
    EXPECT_EQ((*one)->bytes.data(), single.data());  // the caller's bytes, not a copy
    auto f1 = rpc::build_request(rpc::flag::kFirstFrag, 4, 1, 0, hex("0102"));
    auto f2 = rpc::build_request(rpc::flag::kLastFrag, 4, 1, 0, hex("0304"));
    EXPECT_FALSE(a.add_view(parse_owned(f1), f1)->has_value());
    auto whole = a.add_view(parse_owned(f2), f2);
    ASSERT_TRUE(whole && whole->has_value());
    EXPECT_TRUE((*whole)->joined);
    auto pdu = rpc::parse_pdu((*whole)->bytes);
    ASSERT_TRUE(pdu);
    EXPECT_EQ(to_hex(std::get<rpc::RequestBody>(pdu->body).stub), "01020304");
}

TEST(BindParsing, CapsContextItemsAndTransferSyntaxes) {
    rpc::BindBody body;
    for (std::uint16_t i = 0; i < 20; ++i) body.contexts.push_back({i, rpc::kms_interface(), {rpc::ndr32_syntax()}});
    auto bind = rpc::build_bind(rpc::PduType::Bind, 3, 2, body);
    auto parsed = rpc::parse_pdu(bind);
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.error().field, "n_context_elem");
    // Several transfer syntaxes in one item are read properly (not assumed to be one).
    rpc::BindBody multi;
    multi.contexts.push_back({0, rpc::kms_interface(), {rpc::ndr64_syntax(), rpc::ndr32_syntax()}});
    multi.contexts.push_back({1, rpc::kms_interface(), {rpc::btfn_syntax(3)}});
    auto b2 = rpc::build_bind(rpc::PduType::Bind, 3, 2, multi);
    auto p2 = rpc::parse_pdu(b2);
    ASSERT_TRUE(p2);
    const auto& got = std::get<rpc::BindBody>(p2->body);
    ASSERT_EQ(got.contexts.size(), 2u);
    EXPECT_EQ(got.contexts[0].transfer.size(), 2u);
    EXPECT_EQ(got.contexts[1].context_id, 1);
}

}  // namespace
}  // namespace kmscope
