// parse_request_stub / parse_response_stub on arbitrary bytes, for NDR32 and NDR64.
// Invariants: the message view lies inside the stub at its recorded offset and the sizes add up; the builders
// produce stubs that parse back to the same message with no anomaly; a stub without anomalies is exactly what
// the builder produces; error offsets are absolute (shift with base_offset).
#include <cstdio>
#include <cstdlib>

#include "fuzz_check.hpp"
#include "kmscope/ndr.hpp"

using namespace kmscope;
using namespace kmscope::rpc;

namespace {

constexpr std::size_t kBase = 4099;

bool prefix_equal(const Bytes& built, ByteView in, std::size_t skip_from = 0, std::size_t skip_to = 0) {
    if (built.size() > in.size()) return false;
    for (std::size_t i = 0; i < built.size(); ++i)
        if ((i < skip_from || i >= skip_to) && built[i] != in[i]) return false;
    return true;
}

void request(ByteView in, Ndr ndr) {
    auto s = parse_request_stub(in, ndr);
    auto shifted = parse_request_stub(in, ndr, kBase);
    FUZZ_CHECK(s.ok() == shifted.ok());
    if (!s) {
        FUZZ_CHECK(shifted.error().offset == s.error().offset + kBase);
        return;
    }
    const std::size_t head = ndr == Ndr::Ndr64 ? 16 : 8;
    FUZZ_CHECK(s->message_offset == head && shifted->message_offset == head);
    FUZZ_CHECK(s->message.data() == in.data() + head);
    FUZZ_CHECK(head + s->message.size() + s->trailing == in.size());
    FUZZ_CHECK(s->message.size() == load_u32le(in.data()));

    Bytes built = build_request_stub(s->message, ndr);
    // NDR64 does not check the 4 padding bytes after requestSize; everything else must match the input.
    FUZZ_CHECK(prefix_equal(built, in, ndr == Ndr::Ndr64 ? 4 : 0, ndr == Ndr::Ndr64 ? 8 : 0));
    FUZZ_CHECK(built.size() == in.size() - s->trailing);
    auto again = parse_request_stub(built, ndr);
    FUZZ_CHECK(again.ok() && again->trailing == 0 && equal_bytes(again->message, s->message));
}

void response(ByteView in, Ndr ndr) {
    auto s = parse_response_stub(in, ndr);
    auto shifted = parse_response_stub(in, ndr, kBase);
    FUZZ_CHECK(s.ok() == shifted.ok());
    if (!s) {
        FUZZ_CHECK(shifted.error().offset == s.error().offset + kBase);
        return;
    }
    FUZZ_CHECK(shifted->anomalies == s->anomalies && shifted->return_value == s->return_value);
    const std::size_t ptr_end = ndr == Ndr::Ndr64 ? 16 : 8;
    if (!s->message) {
        FUZZ_CHECK(s->referent == 0);
        Bytes built = build_error_stub(s->return_value, ndr);
        auto again = parse_response_stub(built, ndr);
        FUZZ_CHECK(again.ok() && !again->message && again->return_value == s->return_value && again->anomalies.empty());
        FUZZ_CHECK(built.size() == ptr_end + 4);
        if (s->anomalies.empty()) FUZZ_CHECK(prefix_equal(built, in));
        return;
    }
    FUZZ_CHECK(s->referent != 0);
    const std::size_t head = ndr == Ndr::Ndr64 ? 24 : 12;
    FUZZ_CHECK(s->message_offset == head);
    FUZZ_CHECK(s->message->data() == in.data() + head);
    FUZZ_CHECK(s->message->size() == load_u32le(in.data()));
    const std::size_t expected = response_stub_size(s->message->size(), ndr);
    FUZZ_CHECK(expected <= in.size());  // message, padding and return value all fit
    FUZZ_CHECK(s->return_value == load_u32le(in.data() + expected - 4));

    Bytes built = build_response_stub(*s->message, ndr);
    FUZZ_CHECK(built.size() == expected);
    auto again = parse_response_stub(built, ndr);
    FUZZ_CHECK(again.ok() && again->message && equal_bytes(*again->message, *s->message));
    FUZZ_CHECK(again->return_value == 0 && again->referent == 0x20000 && again->anomalies.empty());
    // Without anomalies and with return value 0 the stub is exactly what the builder writes.
    if (s->anomalies.empty() && s->return_value == 0) FUZZ_CHECK(built.size() == in.size() && prefix_equal(built, in));
    if (s->anomalies.empty()) FUZZ_CHECK(in.size() == expected);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const ByteView in(data, size);
    for (Ndr ndr : {Ndr::Ndr32, Ndr::Ndr64}) {
        request(in, ndr);
        response(in, ndr);
    }
    return 0;
}
