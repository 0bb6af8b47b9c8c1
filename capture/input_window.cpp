#include "input_window.hpp"

#include <algorithm>
#include <cstring>

namespace kmscope::capture {

ByteView InputWindow::take(std::size_t n) {
    const ByteView out = peek(n);
    pos_ += out.size();
    taken_ += out.size();
    return out;
}

ByteView InputWindow::peek(std::size_t n) {
    n = std::min(n, kMaxTake);
    if (end_ - pos_ < n) fill(n);
    return ByteView(buf_.get() + pos_, std::min(n, end_ - pos_));
}

// Makes at least `n` bytes available from pos_ unless the input ends first: what is left moves to the
// front, the buffer grows only for a record larger than it, and the input is read in large pieces.
void InputWindow::fill(std::size_t n) {
    const std::size_t left = end_ - pos_;
    if (cap_ < n + kRead) {
        const std::size_t cap = std::max(n, std::size_t{kRead}) + kRead;
        auto bigger = std::make_unique<std::uint8_t[]>(cap);
        if (left) std::memcpy(bigger.get(), buf_.get() + pos_, left);
        buf_ = std::move(bigger);
        cap_ = cap;
    } else if (left) {
        std::memmove(buf_.get(), buf_.get() + pos_, left);
    }
    pos_ = 0;
    end_ = left;
    while (end_ < n && !done_) {
        const long got = in_.read(reinterpret_cast<char*>(buf_.get() + end_), cap_ - end_);
        if (got <= 0) {
            done_ = true;  // 0 at the end; -1 after a failure, which FileInput keeps for the caller
            break;
        }
        end_ += static_cast<std::size_t>(got);
    }
}

}  // namespace kmscope::capture
