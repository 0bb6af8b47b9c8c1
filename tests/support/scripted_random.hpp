// A RandomSource that hands out pre-recorded bytes, so tests can replay a peer's random choices.
#pragma once

#include <stdexcept>

#include "kmscope/environment.hpp"

namespace kmscope::test {

class ScriptedRandom final : public RandomSource {
public:
    explicit ScriptedRandom(Bytes script) : script_(std::move(script)) {}
    void fill(std::span<std::uint8_t> out) override {
        if (out.size() > script_.size() - pos_) throw std::runtime_error("ScriptedRandom: script exhausted");
        std::copy_n(script_.begin() + static_cast<std::ptrdiff_t>(pos_), out.size(), out.begin());
        pos_ += out.size();
    }
    std::size_t left() const { return script_.size() - pos_; }

private:
    Bytes script_;
    std::size_t pos_ = 0;
};

}  // namespace kmscope::test
