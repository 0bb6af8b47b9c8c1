// Connections that the reassembly thread found not to be DCE/RPC, as the reading thread knows them: their
// segments are handed over without their payload bytes (only the count, which is all the reassembler
// reads of an ignored connection), which saves copying most of a capture's bytes a second time.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "packet_source.hpp"

namespace kmscope::analyzer {

class IgnoredFlows {
public:
    /// Reassembly thread: the connection between `a` and `b` is ignored from now on.
    void report(const capture::Endpoint& a, const capture::Endpoint& b) {
        std::lock_guard lock(mu_);
        reported_.push_back(capture::FlowKey::of(a, b));
        pending_.store(true, std::memory_order_release);
    }

    /// Reading thread: true when the segment belongs to an ignored connection, so its payload need not be
    /// copied. A SYN, or silence longer than `idle_ticks`, may start another connection on the same
    /// addresses and ports: the entry goes; so does it after a FIN or RST.
    bool skip_payload(const capture::TcpSegment& s, std::uint64_t idle_ticks) {
        if (pending_.load(std::memory_order_acquire)) take_reported(s.time);
        if (known_.empty()) return false;
        auto it = known_.find(capture::FlowKey::of(s.src, s.dst));
        if (it == known_.end()) return false;
        const bool syn = s.flags & capture::tcpflag::kSyn, ack = s.flags & capture::tcpflag::kAck;
        if ((syn && !ack) || s.time.ticks > it->second.ticks + idle_ticks) {
            known_.erase(it);
            return false;
        }
        it->second = s.time;
        if (s.flags & (capture::tcpflag::kFin | capture::tcpflag::kRst)) known_.erase(it);
        return true;
    }

private:
    static constexpr std::size_t kMaxKnown = 1 << 16;  // beyond that, start over (only a saving is lost)

    void take_reported(FileTime now) {
        std::vector<capture::FlowKey> fresh;
        {
            std::lock_guard lock(mu_);
            fresh.swap(reported_);
            pending_.store(false, std::memory_order_relaxed);
        }
        if (known_.size() + fresh.size() > kMaxKnown) known_.clear();
        for (const auto& k : fresh) known_.insert_or_assign(k, now);
    }

    std::mutex mu_;
    std::vector<capture::FlowKey> reported_;  // guarded by mu_
    std::atomic<bool> pending_{false};
    std::unordered_map<capture::FlowKey, FileTime, capture::FlowKeyHash>
        known_;  // reading thread only: the last segment's time
};

}  // namespace kmscope::analyzer
