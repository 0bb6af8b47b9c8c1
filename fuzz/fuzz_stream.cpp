// StreamFramer + FragmentAssembler on one direction of a byte stream, fed in chunks.
// Input: [n & 15] [n x u16le split positions] [stream bytes]; the stream is fed split at those positions.
// Invariants: the framed PDUs concatenate to a prefix of the stream at their stream offsets, each exactly
// frag_length bytes with a valid header; framing (PDUs, error, leftover) does not depend on the chunking; a
// poisoned framer stops exactly at the PDU it could not frame; the assembler never holds more calls than the
// limit, only accepts a continuation fragment after its FIRST fragment, and a reassembled call carries the
// concatenation of its fragments' stubs.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>

#include "fuzz_check.hpp"
#include "kmscope/stream.hpp"

using namespace kmscope;
using namespace kmscope::rpc;

namespace {

struct Framed {
    std::vector<Frame> frames;
    std::optional<ParseError> error;
    std::size_t buffered = 0;
    std::uint64_t fed = 0;
};

enum class Through {
    Copies,  // feed() and next()
    Views,   // feed() and next_view(): zero copy out; the header it parsed must be the PDU's own
    Lent,    // lend(), next_view() and keep(): zero copy in and out, each chunk gone after keep()
};

Framed frame_all(ByteView stream, const std::vector<std::size_t>& cuts, Through through = Through::Copies) {
    StreamFramer framer;
    Framed out;
    std::size_t pos = 0;
    auto drain = [&] {
        if (through == Through::Copies) {
            while (auto f = framer.next()) out.frames.push_back(std::move(*f));
            return;
        }
        while (auto v = framer.next_view()) {
            auto header = parse_header(v->bytes, v->stream_offset);
            FUZZ_CHECK(header && header->frag_length == v->bytes.size() && header->call_id == v->header.call_id &&
                       header->ptype == v->header.ptype && header->flags == v->header.flags);
            out.frames.push_back(Frame{Bytes(v->bytes.begin(), v->bytes.end()), v->stream_offset});
        }
    };
    auto add = [&](ByteView chunk) {
        if (through != Through::Lent) {
            framer.feed(chunk);
            drain();
            return;
        }
        // A chunk of its own that dies after keep(): a view kept past it is a use after free under ASan.
        const auto lent = std::make_unique<std::uint8_t[]>(chunk.size() + 1);
        std::copy(chunk.begin(), chunk.end(), lent.get());
        framer.lend(ByteView(lent.get(), chunk.size()));
        drain();
        framer.keep();
    };
    for (std::size_t cut : cuts) {
        add(stream.subspan(pos, cut - pos));
        pos = cut;
    }
    add(stream.subspan(pos));
    FUZZ_CHECK(!framer.next());  // nothing more without new bytes
    out.error = framer.error();
    out.buffered = framer.buffered();
    out.fed = framer.total_fed();
    return out;
}

// Mirrors what the assembler must do, for the calls whose history is known (no assembler error on them).
void check_assembler(const std::vector<Frame>& frames) {
    const Limits limits;
    FragmentAssembler assembler(limits);
    std::map<std::uint32_t, Bytes> expect;        // call id -> stubs so far
    std::map<std::uint32_t, std::uint8_t> first;  // call id -> flags of the FIRST fragment
    std::set<std::uint32_t> unknown;              // calls whose state the mirror cannot know
    for (const auto& f : frames) {
        auto pdu = parse_pdu(f.bytes);
        if (!pdu) continue;
        const auto* req = std::get_if<RequestBody>(&pdu->body);
        const auto* resp = std::get_if<ResponseBody>(&pdu->body);
        auto r = assembler.add(*pdu, f.bytes);
        FUZZ_CHECK(assembler.pending() <= limits.max_fragments);
        if (!req && !resp) {
            FUZZ_CHECK(r.ok() && r->has_value() && **r == f.bytes);  // other PDUs pass through
            continue;
        }
        const std::uint32_t id = pdu->header.call_id;
        const std::uint8_t flags = pdu->header.flags;
        const bool is_first = flags & flag::kFirstFrag, is_last = flags & flag::kLastFrag;
        const ByteView stub = req ? req->stub : resp->stub;
        if (is_first && is_last) {
            FUZZ_CHECK(r.ok() && r->has_value() && **r == f.bytes);  // a whole call is returned as is
            expect.erase(id);
            unknown.erase(id);
            continue;
        }
        if (!r) {
            expect.erase(id);
            unknown.insert(id);
            continue;
        }
        if (is_first) {
            expect[id].assign(stub.begin(), stub.end());
            first[id] = flags;
            unknown.erase(id);
        } else {
            // A continuation is only accepted when a FIRST fragment of that call is outstanding.
            FUZZ_CHECK(unknown.count(id) || expect.count(id));
            if (expect.count(id)) expect[id].insert(expect[id].end(), stub.begin(), stub.end());
        }
        FUZZ_CHECK(r->has_value() == is_last);
        if (!is_last) continue;
        if (expect.count(id) && !(first[id] & flag::kObjectUuid)) {
            const Bytes& whole = **r;
            auto joined = parse_pdu(whole);
            FUZZ_CHECK(joined.ok());
            FUZZ_CHECK(joined->header.call_id == id && joined->header.ptype == pdu->header.ptype);
            FUZZ_CHECK((joined->header.flags & flag::kFirstLast) == flag::kFirstLast);
            ByteView joined_stub =
                req ? std::get<RequestBody>(joined->body).stub : std::get<ResponseBody>(joined->body).stub;
            FUZZ_CHECK(equal_bytes(joined_stub, expect[id]));
            FUZZ_CHECK(joined_stub.size() <= limits.max_reassembled_stub);
        }
        expect.erase(id);
        unknown.erase(id);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::size_t n = data[0] & 15;
    if (size < 1 + 2 * n) return 0;
    const ByteView stream(data + 1 + 2 * n, size - 1 - 2 * n);
    std::vector<std::size_t> cuts;
    for (std::size_t i = 0; i < n; ++i) cuts.push_back(load_u16le(data + 1 + 2 * i) % (stream.size() + 1));
    std::sort(cuts.begin(), cuts.end());

    const Framed chunked = frame_all(stream, cuts);
    const Framed whole = frame_all(stream, {});
    // The zero-copy paths cut the same frames, chunk by chunk.
    for (Through through : {Through::Views, Through::Lent}) {
        const Framed viewed = frame_all(stream, cuts, through);
        FUZZ_CHECK(viewed.frames.size() == chunked.frames.size());
        for (std::size_t i = 0; i < viewed.frames.size(); ++i)
            FUZZ_CHECK(viewed.frames[i].bytes == chunked.frames[i].bytes &&
                       viewed.frames[i].stream_offset == chunked.frames[i].stream_offset);
        FUZZ_CHECK(viewed.error.has_value() == chunked.error.has_value() && viewed.buffered == chunked.buffered &&
                   viewed.fed == chunked.fed);
    }
    // Byte-at-a-time feeding is the extreme chunking; keep it to short streams to stay fast.
    if (stream.size() <= 512) {
        std::vector<std::size_t> every(stream.size());
        for (std::size_t i = 0; i < every.size(); ++i) every[i] = i;
        const Framed bytewise = frame_all(stream, every);
        FUZZ_CHECK(bytewise.frames.size() == whole.frames.size());
        FUZZ_CHECK(bytewise.error.has_value() == whole.error.has_value());
        if (!whole.error) FUZZ_CHECK(bytewise.buffered == whole.buffered);  // a poisoned framer stops buffering
    }

    // Chunking independence.
    FUZZ_CHECK(chunked.frames.size() == whole.frames.size());
    for (std::size_t i = 0; i < whole.frames.size(); ++i) {
        FUZZ_CHECK(chunked.frames[i].bytes == whole.frames[i].bytes);
        FUZZ_CHECK(chunked.frames[i].stream_offset == whole.frames[i].stream_offset);
    }
    FUZZ_CHECK(chunked.error.has_value() == whole.error.has_value());
    if (whole.error)
        FUZZ_CHECK(chunked.error->offset == whole.error->offset && chunked.error->field == whole.error->field);
    FUZZ_CHECK(chunked.fed == stream.size() && whole.fed == stream.size());

    // The frames tile a prefix of the stream.
    std::uint64_t pos = 0;
    for (const auto& f : whole.frames) {
        FUZZ_CHECK(f.stream_offset == pos);
        FUZZ_CHECK(f.bytes.size() >= kHeaderSize);
        FUZZ_CHECK(pos + f.bytes.size() <= stream.size());
        FUZZ_CHECK(std::equal(f.bytes.begin(), f.bytes.end(), stream.begin() + static_cast<std::ptrdiff_t>(pos)));
        auto h = parse_header(f.bytes);
        FUZZ_CHECK(h.ok() && h->frag_length == f.bytes.size());
        pos += f.bytes.size();
    }
    const ByteView rest = stream.subspan(pos);
    if (whole.error) {
        // Poisoned exactly at the next PDU, whose header is invalid.
        FUZZ_CHECK(whole.error->offset >= pos && whole.error->offset < pos + kHeaderSize);
        FUZZ_CHECK(rest.size() >= kHeaderSize && !parse_header(rest.first(kHeaderSize)).ok());
    } else {
        // What is left is an incomplete PDU.
        FUZZ_CHECK(whole.buffered == rest.size() && chunked.buffered == rest.size());
        if (rest.size() >= kHeaderSize) {
            auto h = parse_header(rest.first(kHeaderSize));
            FUZZ_CHECK(h.ok() && h->frag_length > rest.size());
        }
    }

    check_assembler(whole.frames);
    return 0;
}
