#include "file_input.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace kmscope::capture {

namespace {
constexpr std::size_t kInBuffer = 256 * 1024;
}  // namespace

FileInput::FileInput(int fd) : fd_(fd), in_(std::make_unique<unsigned char[]>(kInBuffer)) {
    // Two bytes tell gzip (1f 8b) from anything else; a pipe may hand them out one at a time.
    while (pending_ < 2 && !eof_) {
        long n = read_file(reinterpret_cast<char*>(in_.get()) + pending_, 2 - pending_);
        if (n < 0) return;
        if (n == 0) eof_ = true;
        pending_ += static_cast<std::size_t>(n);
    }
    gzip_ = pending_ == 2 && in_[0] == 0x1f && in_[1] == 0x8b;
    if (!gzip_) return;
    if (inflateInit2(&z_, 15 + 16) != Z_OK) {  // gzip wrapper only
        fail(0, 0, "gzip: cannot initialise zlib");
        return;
    }
    z_init_ = true;
    z_.next_in = in_.get();
    z_.avail_in = static_cast<uInt>(pending_);
    pending_ = 0;
}

FileInput::~FileInput() {
    if (z_init_) inflateEnd(&z_);
    if (fd_ >= 0) ::close(fd_);
}

void FileInput::fail(std::uint64_t file_offset, std::uint64_t offset, std::string reason) {
    if (!failure_) failure_ = Failure{file_offset, offset, std::move(reason)};
}

long FileInput::read_file(char* buf, std::size_t size) {
    for (;;) {
        ssize_t n = ::read(fd_, buf, size);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            fail(file_read_, out_, std::strerror(errno));
            return -1;
        }
        file_read_ += static_cast<std::uint64_t>(n);
        return n;
    }
}

std::string FileInput::peek(std::size_t n) {
    while (look_.size() - look_pos_ < n) {
        char buf[64];
        long got = read_stream(buf, std::min(sizeof buf, n - (look_.size() - look_pos_)));
        if (got <= 0) break;
        look_.append(buf, static_cast<std::size_t>(got));
    }
    return look_.substr(look_pos_, n);
}

long FileInput::read(char* buf, std::size_t size) {
    if (look_pos_ < look_.size()) {
        std::size_t n = std::min(size, look_.size() - look_pos_);
        std::memcpy(buf, look_.data() + look_pos_, n);
        look_pos_ += n;
        if (look_pos_ == look_.size()) {
            look_.clear();
            look_pos_ = 0;
        }
        return static_cast<long>(n);
    }
    return read_stream(buf, size);
}

long FileInput::read_stream(char* buf, std::size_t size) {
    if (failure_) {
        errno = EIO;
        return -1;
    }
    if (gzip_) return inflate_some(buf, size);
    if (pending_pos_ < pending_) {  // the sniffed bytes first
        std::size_t n = std::min(size, pending_ - pending_pos_);
        std::memcpy(buf, in_.get() + pending_pos_, n);
        pending_pos_ += n;
        out_ += n;
        return static_cast<long>(n);
    }
    pending_ = pending_pos_ = 0;
    if (eof_) return 0;
    long n = read_file(buf, size);
    if (n > 0) out_ += static_cast<std::uint64_t>(n);
    return n;
}

long FileInput::inflate_some(char* buf, std::size_t size) {
    z_.next_out = reinterpret_cast<unsigned char*>(buf);
    z_.avail_out = static_cast<uInt>(std::min<std::size_t>(size, 1u << 30));
    const uInt want = z_.avail_out;
    auto produced = [&] { return static_cast<std::uint64_t>(want - z_.avail_out); };
    while (z_.avail_out > 0 && !failure_) {
        if (z_.avail_in == 0) {
            if (eof_) break;
            long n = read_file(reinterpret_cast<char*>(in_.get()), kInBuffer);
            if (n < 0) break;
            if (n == 0) {
                eof_ = true;
                break;
            }
            z_.next_in = in_.get();
            z_.avail_in = static_cast<uInt>(n);
        }
        if (started_ && !member_open_) {
            // After a complete member: another one may follow (concatenated gzip); anything else is
            // ignored, as zlib's gzread does.
            if (z_.next_in[0] != 0x1f) {
                z_.avail_in = 0;
                eof_ = true;
                break;
            }
            inflateReset(&z_);
        }
        started_ = member_open_ = true;
        const int rc = inflate(&z_, Z_NO_FLUSH);
        if (rc == Z_STREAM_END) {
            member_open_ = false;
        } else if (rc == Z_BUF_ERROR) {
            if (z_.avail_in > 0) break;  // no progress possible with room left: never loop on it
        } else if (rc != Z_OK) {
            // Where inflate stopped reading is where the damage was found (a CRC or length mismatch is
            // found at the trailer).
            fail(file_position(), out_ + produced(), std::string("gzip: ") + (z_.msg ? z_.msg : "damaged data"));
        }
    }
    if (eof_ && member_open_ && z_.avail_in == 0)
        fail(file_read_, out_ + produced(), "gzip: unexpected end of file (compressed data or trailer missing)");
    const std::uint64_t n = produced();
    out_ += n;
    if (n > 0) return static_cast<long>(n);  // a failure, if any, is reported on the next call
    if (failure_) {
        errno = EIO;
        return -1;
    }
    return 0;
}

}  // namespace kmscope::capture
