// Which text a JSON writer may copy as it is: printable ASCII without quote or backslash. Nearly every
// string kms-analyze prints is such text (names, addresses, GUIDs), and copying it skips the writer's
// per-character escape scan.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace kmscope::analyzer {

// True when every byte of `s` is printable ASCII other than quote and backslash: text that a JSON
// writer may copy without its escape scan. Eight bytes at a time (the word tests of "Bit Twiddling
// Hacks": a byte below 0x20, above 0x7E, or equal to 0x22 or 0x5C), since nearly every name is plain.
inline bool is_plain_text(std::string_view s) {
    constexpr std::uint64_t kOnes = 0x0101010101010101ull, kHighs = 0x8080808080808080ull;
    auto has_zero = [&](std::uint64_t x) { return ((x - kOnes) & ~x & kHighs) != 0; };
    std::size_t i = 0;
    for (std::uint64_t w; i + 8 <= s.size(); i += 8) {
        std::memcpy(&w, s.data() + i, 8);
        const bool below_space = ((w - kOnes * 0x20) & ~w & kHighs) != 0;
        const bool above_tilde = (((w + kOnes * (127 - 0x7E)) | w) & kHighs) != 0;
        if (below_space || above_tilde || has_zero(w ^ (kOnes * '"')) || has_zero(w ^ (kOnes * '\\'))) return false;
    }
    for (; i < s.size(); ++i)
        if (s[i] < 0x20 || s[i] > 0x7E || s[i] == '"' || s[i] == '\\') return false;
    return true;
}

}  // namespace kmscope::analyzer
