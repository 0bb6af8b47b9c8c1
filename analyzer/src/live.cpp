#include "live.hpp"

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace kmscope::analyzer {

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reopen{false};

extern "C" void on_stop_signal(int) { g_stop.store(true); }
extern "C" void on_hangup(int) { g_reopen.store(true); }

void install_signals() {
    struct sigaction sa {};
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sa.sa_handler = on_hangup;
    sigaction(SIGHUP, &sa, nullptr);
}

// Once the interface is open nothing needs root: the capture handle stays usable after setuid.
void drop_privileges(const std::string& user) {
    if (geteuid() != 0 || user == "root") return;
    errno = 0;
    const passwd* pw = getpwnam(user.c_str());
    if (!pw) throw std::runtime_error("--user " + user + ": no such user");
    if (setgroups(0, nullptr) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
        throw std::runtime_error("cannot drop privileges to " + user + ": " + std::strerror(errno));
    if (setuid(0) == 0) throw std::runtime_error("privileges were not dropped: setuid(0) still works");
}

// logrotate moved the file away: write to a new one at the same path, under the same FILE*.
void reopen(std::FILE* out, const std::string& path) {
    std::FILE* fresh = std::fopen(path.c_str(), "a");
    if (!fresh) {
        std::fprintf(stderr, "kms-analyze: SIGHUP: cannot reopen %s: %s; still writing to the old file\n",
                     path.c_str(), std::strerror(errno));
        return;
    }
    std::fflush(out);
    if (dup2(fileno(fresh), fileno(out)) < 0)
        std::fprintf(stderr, "kms-analyze: SIGHUP: cannot reopen %s: %s\n", path.c_str(), std::strerror(errno));
    std::fclose(fresh);
}

void print_stats(const std::string& iface, const capture::LiveStats& s, const Analyzer& analyzer) {
    std::fprintf(stderr,
                 "kms-analyze: live %s: %llu packets received, %llu dropped by the kernel, %llu by the "
                 "interface; %llu exchanges, %llu alerts; %llu connections open, %llu evicted\n",
                 iface.c_str(), static_cast<unsigned long long>(s.received),
                 static_cast<unsigned long long>(s.dropped), static_cast<unsigned long long>(s.interface_dropped),
                 static_cast<unsigned long long>(analyzer.live_counters().exchanges.load()),
                 static_cast<unsigned long long>(analyzer.live_counters().alerts.load()),
                 static_cast<unsigned long long>(analyzer.live_counters().open_connections.load()),
                 static_cast<unsigned long long>(analyzer.live_counters().evicted_connections.load()));
}

}  // namespace

int run_live(Analyzer& analyzer, const LiveSettings& settings, std::FILE* out) {
    install_signals();
    analyzer.on_open([&] { drop_privileges(settings.user); });
    if (!settings.output_path.empty())
        analyzer.before_output([&] {
            if (g_reopen.exchange(false)) reopen(out, settings.output_path);
        });
    using Clock = std::chrono::steady_clock;
    auto next = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(settings.stats_seconds));
    capture::LiveStats last;
    auto next_sample = Clock::now();
    const bool ok = analyzer.run_live(settings.capture, g_stop, [&](const capture::PacketSource& source) {
        // pcap_stats is a system call: a few samples a second serve the lines, the last one the final line.
        const auto now = Clock::now();
        if (now < next_sample) return;
        next_sample = now + std::chrono::milliseconds(250);
        last = source.live_stats();
        if (settings.stats_seconds <= 0 || now < next) return;
        print_stats(settings.capture.interface, last, analyzer);
        next = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(settings.stats_seconds));
    });
    analyzer.finish();
    std::fflush(out);
    print_stats(settings.capture.interface, last, analyzer);
    return ok ? 0 : 2;
}

}  // namespace kmscope::analyzer
