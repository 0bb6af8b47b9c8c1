#include "kmscope/environment.hpp"

#include <openssl/rand.h>

#include <chrono>
#include <stdexcept>

namespace kmscope {

std::uint32_t RandomSource::u32() {
    std::uint8_t b[4];
    fill(b);
    return load_u32le(b);
}

std::uint64_t RandomSource::uniform(std::uint64_t lo, std::uint64_t hi) {
    if (hi <= lo) return lo;
    const std::uint64_t span = hi - lo + 1;  // 0 when the range is all of uint64
    std::uint8_t b[8];
    if (span == 0) {
        fill(b);
        return load_u64le(b);
    }
    // Rejection sampling keeps the distribution uniform.
    const std::uint64_t limit = UINT64_MAX - (UINT64_MAX % span);
    for (;;) {
        fill(b);
        std::uint64_t v = load_u64le(b);
        if (v < limit) return lo + v % span;
    }
}

void SystemRandom::fill(std::span<std::uint8_t> out) {
    if (out.empty()) return;
    if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) throw std::runtime_error("RAND_bytes failed");
}

void SeededRandom::fill(std::span<std::uint8_t> out) {
    std::size_t i = 0;
    while (i < out.size()) {
        std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        for (int k = 0; k < 8 && i < out.size(); ++k) out[i++] = static_cast<std::uint8_t>(z >> (8 * k));
    }
}

FileTime SystemClock::now() const {
    using namespace std::chrono;
    auto since_epoch = duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count();
    return FileTime{static_cast<std::uint64_t>(since_epoch / 100) + 116444736000000000ull};
}

}  // namespace kmscope
