#include "kmscope/environment.hpp"

#include <openssl/rand.h>
#include <pthread.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <mutex>
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

namespace {

// RAND_bytes costs a getpid() system call (OpenSSL's fork check), a lock and a DRBG call each time, about a
// microsecond, and kms-replay serve draws a few bytes several times per activation. Small draws are served
// from a per-thread pool filled 512 bytes at a time instead. Bytes are erased as they are served. A forked
// child must never repeat its parent's bytes: the pool of the thread that forks is emptied in the child.
struct RandomPool {
    std::array<std::uint8_t, 512> bytes{};
    std::size_t left = 0;  // unserved bytes, at the end of `bytes`
};
thread_local RandomPool t_pool;

void draw(std::uint8_t* out, std::size_t size) {
    if (RAND_bytes(out, static_cast<int>(size)) != 1) throw std::runtime_error("RAND_bytes failed");
}

}  // namespace

void SystemRandom::fill(std::span<std::uint8_t> out) {
    if (out.empty()) return;
    static std::once_flag at_fork;
    std::call_once(at_fork, [] { pthread_atfork(nullptr, nullptr, [] { t_pool = {}; }); });
    RandomPool& pool = t_pool;
    if (out.size() > pool.bytes.size() / 4) return draw(out.data(), out.size());
    if (pool.left < out.size()) {
        draw(pool.bytes.data(), pool.bytes.size());
        pool.left = pool.bytes.size();
    }
    auto from = pool.bytes.end() - static_cast<std::ptrdiff_t>(pool.left);
    std::copy_n(from, out.size(), out.begin());
    std::fill_n(from, out.size(), std::uint8_t{0});
    pool.left -= out.size();
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
