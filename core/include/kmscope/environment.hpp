// The two things the core never takes from the system by itself: time and randomness. Front ends
// pass real ones; tests pass fixed ones, so every core function is deterministic.
#pragma once

#include <cstdint>
#include <span>

#include "kmscope/bytes.hpp"

namespace kmscope {

/// Source of random bytes.
class RandomSource {
public:
    virtual ~RandomSource() = default;
    /// Fills `out` with random bytes.
    virtual void fill(std::span<std::uint8_t> out) = 0;
    /// A uniformly random 32-bit value.
    std::uint32_t u32();
    /// A uniform value in [lo, hi] (inclusive); lo <= hi.
    std::uint64_t uniform(std::uint64_t lo, std::uint64_t hi);
};

/// Cryptographically strong randomness from OpenSSL (for the front ends).
class SystemRandom final : public RandomSource {
public:
    void fill(std::span<std::uint8_t> out) override;
};

/// Reproducible pseudo-random stream from a 64-bit seed (SplitMix64), for tests and replay.
class SeededRandom final : public RandomSource {
public:
    explicit SeededRandom(std::uint64_t seed) : state_(seed) {}
    void fill(std::span<std::uint8_t> out) override;

private:
    std::uint64_t state_;
};

/// Source of the current UTC time.
class Clock {
public:
    virtual ~Clock() = default;
    /// The current time as a FILETIME.
    virtual FileTime now() const = 0;
};

/// The system's real-time clock (for the front ends).
class SystemClock final : public Clock {
public:
    FileTime now() const override;
};

/// A clock that always reads the value it was given (tests, offline replay of a capture).
class FixedClock final : public Clock {
public:
    explicit FixedClock(FileTime t) : t_(t) {}
    FileTime now() const override { return t_; }
    /// Moves the clock to `t`.
    void set(FileTime t) { t_ = t; }

private:
    FileTime t_;
};

}  // namespace kmscope
