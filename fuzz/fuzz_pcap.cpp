// The pcap-to-events path: the input is written to a memfd and read with PacketSource (PcapReader or
// PcapngReader, plain or gzip), every TCP segment goes through TcpSplit (reassembly) into Conversations, then
// finish(); the same file also goes through read_capture() (the recorded-connections sink of the same reassembler,
// which must report the same read error). The input is
// also given to decode_packet() / decode_udp_packet() directly for every supported link type, since most inputs
// never make it through the readers. Inputs whose size is a multiple of 4 use tiny TcpLimits (eviction, forced
// delivery, idle timeouts).
// Invariants: PacketSource either fails to open (runtime_error) or delivers segments with increasing frame
// numbers, skipped <= packets, progress in [0, 1]; every event batch belongs to a connection numbered
// 1..connections() that has not ended yet; every connection ends exactly once (on_end), finished and with no
// pending request, and after finish() all of them have ended; the conversations got no more bytes than the
// segments carried; recorded connections hold only whole, well-formed PDUs; decode_* return views inside
// their input.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>

#include "fuzz_check.hpp"
#include "kmscope/dcerpc.hpp"
#include "memfd_input.hpp"
#include "packet_source.hpp"
#include "recorded.hpp"
#include "tcp_split.hpp"

using namespace kmscope;
using namespace kmscope::capture;

namespace {

bool inside(ByteView inner, ByteView outer) {
    return inner.empty() ||
           (inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size());
}

void check_file(const std::uint8_t* data, std::size_t size) {
    const std::string& path = memfd_path(data, size);
    std::unique_ptr<PacketSource> source;
    try {
        source = std::make_unique<PacketSource>(path);
    } catch (const std::runtime_error&) {
        return;  // not a capture the readers can open
    }
    TcpLimits limits;
    if (size % 4 == 0) {
        limits.max_connections = 3;
        limits.idle_ticks = 5ull * 10000000;
        limits.max_held_bytes = 2048;
        limits.max_held_segments = 4;
        limits.max_total_held_bytes = 4096;
    }
    std::uint64_t segment_bytes = 0, last_frame = 0;
    std::set<std::uint64_t> ended;
    TcpSplit* split_ptr = nullptr;
    TcpSplit split(
        [&](const TcpConnection& c, std::vector<Event>&& events) {
            FUZZ_CHECK(!events.empty());
            FUZZ_CHECK(c.index >= 1 && c.index <= split_ptr->connections());
            FUZZ_CHECK(!ended.count(c.index));
            for (const Event& ev : events)
                if (const auto* e = std::get_if<Exchange>(&ev)) FUZZ_CHECK(e->request_time || e->response_time);
        },
        limits);
    split_ptr = &split;
    split.on_end([&](const TcpConnection& c) {
        FUZZ_CHECK(c.index >= 1 && c.index <= split.connections());
        FUZZ_CHECK(ended.insert(c.index).second);  // once
        FUZZ_CHECK(c.finished && c.conversation.pending_requests() == 0);
        FUZZ_CHECK(c.to_server.held.empty() && c.to_client.held.empty());
        FUZZ_CHECK(c.to_server.bytes + c.to_client.bytes <= segment_bytes);
    });
    source->set_udp_handler([&](const UdpDatagram& d) { FUZZ_CHECK(d.frame == source->packets()); });
    const bool complete = source->for_each_segment([&](const TcpSegment& seg) {
        FUZZ_CHECK(seg.frame > last_frame && seg.frame == source->packets());
        last_frame = seg.frame;
        segment_bytes += seg.payload.size();
        split.add(seg);
        FUZZ_CHECK(split.open_connections() <= limits.max_connections);
    });
    FUZZ_CHECK(complete == source->error().empty());
    split.finish();
    FUZZ_CHECK(split.open_connections() == 0);
    FUZZ_CHECK(ended.size() == split.connections());
    FUZZ_CHECK(source->skipped() <= source->packets());
    const double progress = source->progress();
    FUZZ_CHECK(progress <= 1.0);

    // The recorded-connections reader opens the file again (PacketSource buffers are large, so opening costs);
    // only worth it when there were TCP segments.
    if (last_frame == 0) return;
    // The same reader and reassembler: it must fail exactly where the first pass failed.
    RecordedCapture recorded_capture = read_capture(path, limits);
    FUZZ_CHECK(recorded_capture.error == source->error());
    const auto& recorded = recorded_capture.connections;
    for (const auto& c : recorded) {
        FUZZ_CHECK(!c.pdus.empty());
        for (const auto& p : c.pdus) {
            auto h = rpc::parse_header(p.bytes);
            FUZZ_CHECK(h.ok() && h->frag_length == p.bytes.size());
        }
    }
}

void check_decode(ByteView in) {
    static constexpr int kLinks[] = {DLT_EN10MB, DLT_LINUX_SLL, 276, DLT_NULL, DLT_LOOP, DLT_RAW, 101, 228, 229};
    for (int link : kLinks) {
        FUZZ_CHECK(supported_link_type(link));
        if (auto seg = decode_packet(link, in)) {
            FUZZ_CHECK(inside(seg->payload, in));
            FUZZ_CHECK(!seg->src.to_string().empty() && !seg->dst.address_string().empty());
        }
        if (auto dg = decode_udp_packet(link, in)) FUZZ_CHECK(inside(dg->payload, in));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    check_decode(ByteView(data, size));
    check_file(data, size);
    return 0;
}
