// The bytes of a capture file as the pcap and pcapng readers see them: read from a file descriptor
// (a file, a named pipe, standard input) and inflated when they start with the gzip magic, whatever the
// kind of file (a pipe cannot be peeked at with pread). zlib's inflate() is used rather than gzread(), so
// that damage is reported where it is (compressed and uncompressed offsets, zlib's reason), the bytes
// inflated before it are still handed out, and a stream cut short (no trailer) is an error, as it is for
// gzip -t. Concatenated members are read; anything after the last member is ignored, as gzread does.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace kmscope::capture {

class FileInput {
public:
    /// Why reading stopped.
    struct Failure {
        std::uint64_t file_offset = 0;  // in the file (compressed, for gzip)
        std::uint64_t offset = 0;       // in the data handed out (uncompressed)
        std::string reason;
    };

    /// Takes ownership of `fd` and reads its first two bytes (blocking) to tell gzip from plain data.
    explicit FileInput(int fd);
    ~FileInput();
    FileInput(const FileInput&) = delete;
    FileInput& operator=(const FileInput&) = delete;

    /// Up to `size` bytes; 0 at the end; -1 (errno EIO) after a failure. The bytes inflated before damage
    /// are handed out first, the failure on the next call.
    long read(char* buf, std::size_t size);
    /// The first `n` bytes (fewer at the end), without consuming them: read() hands them out again.
    std::string peek(std::size_t n);
    bool gzip() const { return gzip_; }
    /// Bytes handed out by read() (uncompressed).
    std::uint64_t position() const { return out_ - (look_.size() - look_pos_); }
    /// Bytes of the file consumed so far (compressed, for gzip).
    std::uint64_t file_position() const { return file_read_ - (gzip_ ? z_.avail_in : pending_ - pending_pos_); }
    const std::optional<Failure>& failure() const { return failure_; }

private:
    long read_stream(char* buf, std::size_t size);
    long inflate_some(char* buf, std::size_t size);
    long read_file(char* buf, std::size_t size);
    void fail(std::uint64_t file_offset, std::uint64_t offset, std::string reason);
    int fd_;
    bool gzip_ = false;
    bool eof_ = false;
    bool started_ = false;      // the first gzip member was begun
    bool member_open_ = false;  // inside a gzip member (header begun, trailer not yet checked)
    z_stream z_{};
    bool z_init_ = false;
    std::unique_ptr<unsigned char[]> in_;
    std::size_t pending_ = 0, pending_pos_ = 0;  // sniffed bytes of a plain input not yet handed out
    std::string look_;                           // peeked bytes not yet handed out
    std::size_t look_pos_ = 0;
    std::uint64_t file_read_ = 0;  // bytes read from the descriptor
    std::uint64_t out_ = 0;        // bytes produced by read_stream()
    std::optional<Failure> failure_;
};

}  // namespace kmscope::capture
