// Contiguous views of a FileInput's bytes, for the capture format readers: the bytes are read from the
// descriptor (or inflated) into one buffer and handed out where they lie, so a packet is copied once on
// its way from the file to the reassembler (stdio and libpcap copied each packet twice more).
#pragma once

#include <cstdint>
#include <memory>

#include "file_input.hpp"
#include "kmscope/bytes.hpp"

namespace kmscope::capture {

class InputWindow {
public:
    /// The largest view take() hands out: a record of the largest block either format allows.
    static constexpr std::size_t kMaxTake = 16u << 20;

    explicit InputWindow(FileInput& in) : in_(in) {}
    /// The next `n` bytes (n <= kMaxTake), or fewer at the end of the input or where it failed; the view is
    /// valid until the next call.
    ByteView take(std::size_t n);
    /// The same bytes as take(n) would give, without consuming them.
    ByteView peek(std::size_t n);
    /// Bytes taken so far.
    std::uint64_t offset() const { return taken_; }

private:
    static constexpr std::size_t kRead = 1 << 20;  // bytes asked of the input at once
    void fill(std::size_t n);
    FileInput& in_;
    std::unique_ptr<std::uint8_t[]> buf_;
    std::size_t cap_ = 0, pos_ = 0, end_ = 0;
    bool done_ = false;  // the input is at its end or failed
    std::uint64_t taken_ = 0;
};

}  // namespace kmscope::capture
