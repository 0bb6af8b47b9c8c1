// SystemRandom serves small draws from a per-thread pool: every draw must still be fresh bytes, whatever its
// size, and a forked child must never serve the bytes its parent is about to serve.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <set>
#include <string>

#include "kmscope/environment.hpp"
#include "test_util.hpp"

namespace kmscope {
namespace {

TEST(SystemRandom, EveryDrawIsFreshWhateverItsSize) {
    SystemRandom rng;
    std::set<std::string> seen;
    for (int i = 0; i < 3000; ++i) {
        const std::size_t size = 8 + static_cast<std::size_t>(i) % 300;  // pooled and direct draws alike
        Bytes b(size);
        rng.fill(b);
        EXPECT_TRUE(seen.insert(to_hex(ByteView(b).first(8))).second) << "a repeated draw at " << i;
    }
    std::uint8_t none = 0;
    rng.fill(std::span<std::uint8_t>(&none, 0));
    EXPECT_EQ(none, 0);
}

TEST(SystemRandom, AForkedChildDoesNotRepeatItsParentsBytes) {
    SystemRandom rng;
    std::array<std::uint8_t, 16> first{};
    rng.fill(first);  // the pool now holds bytes the parent will serve next
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        std::array<std::uint8_t, 16> b{};
        SystemRandom(rng).fill(b);
        const bool written = write(fds[1], b.data(), b.size()) == static_cast<ssize_t>(b.size());
        _exit(written ? 0 : 1);
    }
    std::array<std::uint8_t, 16> parent{}, in_child{};
    rng.fill(parent);
    ASSERT_EQ(read(fds[0], in_child.data(), in_child.size()), static_cast<ssize_t>(in_child.size()));
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(fds[0]);
    close(fds[1]);
    EXPECT_NE(to_hex(parent), to_hex(in_child));
}

}  // namespace
}  // namespace kmscope
