#include "kmscope/stream.hpp"

#include <algorithm>

namespace kmscope::rpc {

void StreamFramer::feed(ByteView chunk) {
    fed_ += chunk.size();
    if (error_) return;
    // Compact lazily so that feeding one byte at a time stays linear.
    if (read_pos_ > 0 && read_pos_ >= buffer_.size() / 2) {
        buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(read_pos_));
        read_pos_ = 0;
    }
    buffer_.insert(buffer_.end(), chunk.begin(), chunk.end());
}

void StreamFramer::restart(std::uint64_t stream_offset) {
    buffer_.clear();
    read_pos_ = 0;
    consumed_ = fed_ = stream_offset;
    error_.reset();
}

std::optional<Frame> StreamFramer::next() {
    if (error_ || buffered() < kHeaderSize) return std::nullopt;
    ByteView avail(buffer_.data() + read_pos_, buffered());
    auto header = parse_header(avail.first(kHeaderSize), consumed_, limits_);
    if (!header) {
        error_ = header.error();
        return std::nullopt;
    }
    if (avail.size() < header->frag_length) return std::nullopt;
    Frame f;
    f.stream_offset = consumed_;
    f.bytes.assign(avail.begin(), avail.begin() + header->frag_length);
    read_pos_ += header->frag_length;
    consumed_ += header->frag_length;
    if (read_pos_ == buffer_.size()) {  // everything consumed: start afresh (no compaction needed)
        if (buffer_.capacity() > kKeptCapacity)
            Bytes().swap(buffer_);
        else
            buffer_.clear();
        read_pos_ = 0;
    }
    return f;
}

Result<std::optional<Bytes>> FragmentAssembler::add(const Pdu& pdu, ByteView raw) {
    const auto& h = pdu.header;
    const bool first = h.flags & flag::kFirstFrag, last = h.flags & flag::kLastFrag;
    const auto* req = std::get_if<RequestBody>(&pdu.body);
    const auto* resp = std::get_if<ResponseBody>(&pdu.body);
    if (!req && !resp) return std::optional<Bytes>(Bytes(raw.begin(), raw.end()));
    ByteView stub = req ? req->stub : resp->stub;
    auto it = partial_.find(h.call_id);
    if (first && last) {
        if (it != partial_.end()) partial_.erase(it);  // a new complete call supersedes a broken one
        return std::optional<Bytes>(Bytes(raw.begin(), raw.end()));
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
    // The joined PDU must still fit the 16-bit frag_length (24 bytes of request header).
    const std::size_t max_stub = std::min<std::size_t>(limits_.max_reassembled_stub, 65535 - 24);
    if (++p.fragments > limits_.max_fragments || p.stub.size() + stub.size() > max_stub) {
        partial_.erase(it);
        return ParseError{"frag_length", 8,
                          "fragmented call " + std::to_string(h.call_id) + " exceeds the reassembly limits (" +
                              std::to_string(limits_.max_fragments) + " fragments, " +
                              std::to_string(limits_.max_reassembled_stub) + " bytes)"};
    }
    p.stub.insert(p.stub.end(), stub.begin(), stub.end());
    if (!last) return std::optional<Bytes>();
    std::uint8_t flags = static_cast<std::uint8_t>(p.header.flags | flag::kFirstLast);
    Bytes whole = req ? build_request(flags, h.call_id, p.context_id, p.opnum, p.stub)
                      : build_response(flags, h.call_id, p.context_id, p.stub);
    partial_.erase(it);
    return std::optional<Bytes>(std::move(whole));
}

}  // namespace kmscope::rpc
