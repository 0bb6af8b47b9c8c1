#include "kmscope/stream.hpp"

#include <algorithm>

namespace kmscope::rpc {

void StreamFramer::reset_if_drained() {
    if (!drained_) return;
    drained_ = false;
    if (buffer_.capacity() > kKeptCapacity)
        Bytes().swap(buffer_);
    else
        buffer_.clear();
    read_pos_ = 0;
}

void StreamFramer::feed(ByteView chunk) {
    fed_ += chunk.size();
    if (error_) return;
    reset_if_drained();
    // Compact lazily so that feeding one byte at a time stays linear.
    if (read_pos_ > 0 && read_pos_ >= buffer_.size() / 2) {
        buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(read_pos_));
        read_pos_ = 0;
    }
    buffer_.insert(buffer_.end(), chunk.begin(), chunk.end());
}

void StreamFramer::lend(ByteView chunk) {
    if (error_ || buffered() != 0) return feed(chunk);
    fed_ += chunk.size();
    reset_if_drained();
    lent_ = chunk;
}

void StreamFramer::keep() {
    if (lent_.empty()) return;
    // buffer_ was empty (see lend()). A poisoned rest is kept too, as feed() keeps it.
    buffer_.assign(lent_.begin(), lent_.end());
    read_pos_ = 0;
    lent_ = {};
}

void StreamFramer::restart(std::uint64_t stream_offset) {
    lent_ = {};
    drained_ = false;
    buffer_.clear();
    read_pos_ = 0;
    consumed_ = fed_ = stream_offset;
    error_.reset();
}

std::optional<FrameView> StreamFramer::next_view() {
    reset_if_drained();
    if (error_ || buffered() < kHeaderSize) return std::nullopt;
    const bool lent = !lent_.empty();
    const ByteView avail = lent ? lent_ : ByteView(buffer_.data() + read_pos_, buffer_.size() - read_pos_);
    auto header = parse_header(avail.first(kHeaderSize), consumed_, limits_);
    if (!header) {
        error_ = header.error();
        return std::nullopt;
    }
    if (avail.size() < header->frag_length) return std::nullopt;
    FrameView f{avail.first(header->frag_length), *header, consumed_};
    consumed_ += header->frag_length;
    if (lent) {
        lent_ = lent_.subspan(header->frag_length);
        return f;
    }
    read_pos_ += header->frag_length;
    // Everything consumed: the buffer starts afresh at the next call (no compaction needed), not now,
    // since the view points into it.
    drained_ = read_pos_ == buffer_.size();
    return f;
}

std::optional<Frame> StreamFramer::next() {
    auto view = next_view();
    if (!view) return std::nullopt;
    Frame f{Bytes(view->bytes.begin(), view->bytes.end()), view->stream_offset};
    reset_if_drained();  // copied: a large buffer goes back at once
    return f;
}

Result<std::optional<Bytes>> FragmentAssembler::add(const Pdu& pdu, ByteView raw) {
    auto whole = add_view(pdu, raw);
    if (!whole) return whole.error();
    if (!*whole) return std::optional<Bytes>();
    return std::optional<Bytes>(Bytes((*whole)->bytes.begin(), (*whole)->bytes.end()));
}

Result<std::optional<FragmentAssembler::Assembled>> FragmentAssembler::add_view(const Pdu& pdu, ByteView raw) {
    using Out = std::optional<Assembled>;
    const auto& h = pdu.header;
    const bool first = h.flags & flag::kFirstFrag, last = h.flags & flag::kLastFrag;
    const auto* req = std::get_if<RequestBody>(&pdu.body);
    const auto* resp = std::get_if<ResponseBody>(&pdu.body);
    if (!req && !resp) return Out(Assembled{raw, false});
    ByteView stub = req ? req->stub : resp->stub;
    auto it = partial_.find(h.call_id);
    if (first && last) {
        if (it != partial_.end()) partial_.erase(it);  // a new complete call supersedes a broken one
        return Out(Assembled{raw, false});
    }
    if (first) {
        if (partial_.size() >= limits_.max_fragments)
            return ParseError{"call_id", 12, "too many calls with outstanding fragments"};
        Partial p;
        p.header = h;
        p.context_id = req ? req->context_id : resp->context_id;
        p.opnum = req ? req->opnum : 0;
        partial_[h.call_id] = std::move(p);
        it = partial_.find(h.call_id);
    } else if (it == partial_.end()) {
        return ParseError{"pfc_flags", 3,
                          "fragment of call " + std::to_string(h.call_id) + " without a FIRST_FRAG fragment"};
    }
    Partial& p = it->second;
    // The joined PDU must still fit the 16-bit frag_length.
    const std::size_t max_stub = std::min<std::size_t>(limits_.max_reassembled_stub, 65535 - kRequestHeaderSize);
    if (++p.fragments > limits_.max_fragments || p.stub.size() + stub.size() > max_stub) {
        partial_.erase(it);
        return ParseError{"frag_length", 8,
                          "fragmented call " + std::to_string(h.call_id) + " exceeds the reassembly limits (" +
                              std::to_string(limits_.max_fragments) + " fragments, " +
                              std::to_string(limits_.max_reassembled_stub) + " bytes)"};
    }
    p.stub.insert(p.stub.end(), stub.begin(), stub.end());
    if (!last) return Out();
    std::uint8_t flags = static_cast<std::uint8_t>(p.header.flags | flag::kFirstLast);
    joined_ = req ? build_request(flags, h.call_id, p.context_id, p.opnum, p.stub)
                  : build_response(flags, h.call_id, p.context_id, p.stub);
    partial_.erase(it);
    return Out(Assembled{joined_, true});
}

}  // namespace kmscope::rpc
