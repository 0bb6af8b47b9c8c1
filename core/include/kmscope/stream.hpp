// Turns arbitrary chunks of one direction of a TCP byte stream into whole DCE/RPC PDUs, and
// reassembles fragmented requests and responses, under hard caps.
#pragma once

#include <cstdint>
#include <map>
#include <optional>

#include "kmscope/bytes.hpp"
#include "kmscope/dcerpc.hpp"

namespace kmscope::rpc {

/// One complete PDU cut out of the stream.
struct Frame {
    Bytes bytes;
    std::uint64_t stream_offset = 0;  // offset of its first byte in the direction's byte stream
};

/// One complete PDU as a view into the framer's buffer, with the header the framer parsed to cut it.
struct FrameView {
    ByteView bytes;
    Header header;
    std::uint64_t stream_offset = 0;
};

/// Frames one direction of a connection by frag_length. A header that is not DCE/RPC 5.0 poisons
/// the framer: there is no reliable way to find the next PDU boundary in a TCP stream.
class StreamFramer {
public:
    /// A framer enforcing `limits`.
    explicit StreamFramer(Limits limits = {}) : limits_(limits) {}
    /// Appends bytes received on the stream.
    void feed(ByteView chunk);
    /// The next complete PDU; nullopt when more bytes are needed or the framer is poisoned.
    std::optional<Frame> next();
    /// The same without copying: the view stays valid until the next call to feed(), next(),
    /// next_view() or restart(). The header is parsed once, here, for framing and for the caller.
    std::optional<FrameView> next_view();
    /// Frames `chunk` where it lies when nothing is buffered, instead of copying it: views from next_view()
    /// then point into `chunk`. Call keep() before `chunk` goes away; it copies only what was not framed
    /// (a PDU that continues in the next chunk). With bytes already buffered, this is feed().
    void lend(ByteView chunk);
    /// Copies what is left of a lent chunk into the framer's own buffer.
    void keep();
    /// The framing error that poisoned the stream, if any.
    const std::optional<ParseError>& error() const { return error_; }
    /// Bytes received but not yet returned as a PDU (a partial PDU at end of stream).
    std::size_t buffered() const { return buffer_.size() - read_pos_ + lent_.size(); }
    /// Bytes of memory the framer holds. Once every byte fed has been returned, a buffer larger than
    /// kKeptCapacity is released, so a long-lived connection does not pin the memory of one large PDU.
    std::size_t retained() const { return buffer_.capacity(); }
    static constexpr std::size_t kKeptCapacity = 16384;
    /// Stream offset just past the last byte fed (bytes fed, plus where a restart put the stream).
    std::uint64_t total_fed() const { return fed_; }
    /// Forgets everything buffered and any error, and continues framing at `stream_offset` (after a
    /// TCP gap, at a point known to start a PDU).
    void restart(std::uint64_t stream_offset);

private:
    /// Once every byte has been returned, starts afresh (after the last view was used).
    void reset_if_drained();
    Limits limits_;
    Bytes buffer_;
    std::size_t read_pos_ = 0;
    ByteView lent_;               // the unframed rest of a lent chunk; buffer_ is empty while it is not
    bool drained_ = false;        // every byte fed was returned; the buffer is reset at the next call
    std::uint64_t consumed_ = 0;  // stream offset of buffer_[read_pos_]
    std::uint64_t fed_ = 0;
    std::optional<ParseError> error_;
};

/// Joins the fragments (FIRST .. LAST) of a request or response into one single-fragment PDU.
class FragmentAssembler {
public:
    /// An assembler enforcing `limits`.
    explicit FragmentAssembler(Limits limits = {}) : limits_(limits) {}
    /// Takes one parsed request/response PDU (with its raw bytes). Returns the complete PDU bytes
    /// when this fragment completes a call (a single-fragment PDU is returned as is), nullopt while
    /// fragments are outstanding, or an error when a cap is exceeded or the sequence is broken.
    Result<std::optional<Bytes>> add(const Pdu& pdu, ByteView raw);
    /// A complete call without a copy: `bytes` is `raw` itself for a single-fragment PDU (`joined`
    /// false), or the joined PDU, valid until the next add or add_view.
    struct Assembled {
        ByteView bytes;
        bool joined = false;
    };
    Result<std::optional<Assembled>> add_view(const Pdu& pdu, ByteView raw);
    /// Number of calls with fragments still outstanding.
    std::size_t pending() const { return partial_.size(); }

private:
    struct Partial {
        Header header;
        std::uint16_t context_id = 0;
        std::uint16_t opnum = 0;
        Bytes stub;
        std::size_t fragments = 0;
    };
    Limits limits_;
    std::map<std::uint32_t, Partial> partial_;
    Bytes joined_;  // the last joined PDU (add_view)
};

}  // namespace kmscope::rpc
