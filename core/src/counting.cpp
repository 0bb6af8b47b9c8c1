#include "kmscope/counting.hpp"

#include <algorithm>

namespace kmscope {

void MemoryCmidStore::touch(const Guid& kms_id, const Guid& cmid, FileTime t) {
    std::lock_guard lock(mu_);
    auto& cmids = by_kms_[kms_id];
    auto& seen = cmids[cmid];
    seen = std::max(seen, t);
    if (keep_ == 0 || cmids.size() < 2 * keep_) return;
    // Keep the `keep_` most recent: one selection per `keep_` insertions, so O(1) amortised per touch.
    std::vector<FileTime> times;
    times.reserve(cmids.size());
    for (const auto& e : cmids) times.push_back(e.second);
    std::nth_element(times.begin(), times.begin() + static_cast<std::ptrdiff_t>(keep_ - 1), times.end(),
                     [](FileTime a, FileTime b) { return a.ticks > b.ticks; });
    const FileTime oldest_kept = times[keep_ - 1];
    std::size_t ties = 0;  // entries at exactly oldest_kept that still fit
    for (const auto& e : cmids) ties += e.second.ticks > oldest_kept.ticks;
    ties = keep_ - ties;
    std::erase_if(cmids, [&](const auto& e) {
        if (e.second.ticks > oldest_kept.ticks) return false;
        if (e.second.ticks == oldest_kept.ticks && ties > 0) return --ties, false;
        return true;
    });
}

std::uint64_t MemoryCmidStore::count_since(const Guid& kms_id, FileTime since) {
    std::lock_guard lock(mu_);
    auto it = by_kms_.find(kms_id);
    if (it == by_kms_.end()) return 0;
    return static_cast<std::uint64_t>(
        std::count_if(it->second.begin(), it->second.end(), [&](const auto& e) { return e.second >= since; }));
}

void MemoryCmidStore::expire(FileTime before) {
    std::lock_guard lock(mu_);
    for (auto it = by_kms_.begin(); it != by_kms_.end();) {
        std::erase_if(it->second, [&](const auto& e) { return e.second < before; });
        it = it->second.empty() ? by_kms_.erase(it) : std::next(it);
    }
}

std::uint64_t CmidStore::touch_and_count(const Guid& kms_id, const Guid& cmid, FileTime t, FileTime since,
                                         std::uint64_t limit) {
    touch(kms_id, cmid, t);
    return std::min(count_since(kms_id, since), limit);
}

std::vector<Guid> MemoryCmidStore::kms_ids() const {
    std::lock_guard lock(mu_);
    std::vector<Guid> out;
    for (const auto& [k, v] : by_kms_) out.push_back(k);
    return out;
}

namespace {
// The genuine host's window and cap (docs/protocol.md §10.4).
FileTime window_start(FileTime now) {
    return FileTime{now.ticks > kCmidLifetimeTicks ? now.ticks - kCmidLifetimeTicks : 0};
}
std::uint64_t count_cap(std::uint32_t n_policy) {
    return 2ull * n_policy;
}
}  // namespace

std::uint32_t genuine_count(CmidStore& store, const Guid& kms_id, std::uint32_t n_policy, FileTime now) {
    return static_cast<std::uint32_t>(std::min(store.count_since(kms_id, window_start(now)), count_cap(n_policy)));
}

std::uint32_t GenuineCountPolicy::count_for(const kms::BaseRequest& request, FileTime now) {
    return static_cast<std::uint32_t>(
        store_.touch_and_count(request.kms_id, request.cmid, now, window_start(now), count_cap(request.n_policy)));
}

}  // namespace kmscope
