// The progress line on a terminal's stderr: how far into the file, how fast, and how long is left.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace kmscope::analyzer {

class ProgressLine {
public:
    explicit ProgressLine(std::string file) : file_(std::move(file)), start_(Clock::now()) {}

    /// `fraction` of the file read (negative when its size is unknown: a pipe), `bytes` of capture data
    /// read so far (uncompressed), `packets` read.
    void show(double fraction, std::uint64_t bytes, std::uint64_t packets) {
        const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
        const double mb_per_s = seconds > 0 ? static_cast<double>(bytes) / 1e6 / seconds : 0;
        if (fraction <= 0) {
            std::fprintf(stderr, "\r%s: %llu packets, %.0f MB/s", file_.c_str(),
                         static_cast<unsigned long long>(packets), mb_per_s);
            return;
        }
        const double left = seconds * (1 - fraction) / fraction;
        std::fprintf(stderr, "\r%s: %5.1f%%, %.0f MB/s, %s left  ", file_.c_str(), fraction * 100, mb_per_s,
                     duration(left).c_str());
    }
    /// Erases the line.
    void clear() { std::fprintf(stderr, "\r\033[K"); }

private:
    using Clock = std::chrono::steady_clock;
    static std::string duration(double seconds) {
        const auto s = static_cast<unsigned long long>(seconds + 0.5);
        char buf[32];
        if (s >= 3600)
            std::snprintf(buf, sizeof buf, "%lluh%02llum", s / 3600, s / 60 % 60);
        else if (s >= 60)
            std::snprintf(buf, sizeof buf, "%llum%02llus", s / 60, s % 60);
        else
            std::snprintf(buf, sizeof buf, "%llus", s);
        return buf;
    }
    std::string file_;
    Clock::time_point start_;
};

}  // namespace kmscope::analyzer
