#include "kmscope/counting.hpp"

#include <algorithm>

namespace kmscope {

void MemoryCmidStore::touch(const Guid& kms_id, const Guid& cmid, FileTime t) {
    std::lock_guard lock(mu_);
    auto& seen = by_kms_[kms_id][cmid];
    seen = std::max(seen, t);
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

std::vector<Guid> MemoryCmidStore::kms_ids() const {
    std::lock_guard lock(mu_);
    std::vector<Guid> out;
    for (const auto& [k, v] : by_kms_) out.push_back(k);
    return out;
}

std::uint32_t genuine_count(CmidStore& store, const Guid& kms_id, std::uint32_t n_policy, FileTime now) {
    FileTime since{now.ticks > kCmidLifetimeTicks ? now.ticks - kCmidLifetimeTicks : 0};
    std::uint64_t n = store.count_since(kms_id, since);
    return static_cast<std::uint32_t>(std::min<std::uint64_t>(n, 2ull * n_policy));
}

std::uint32_t GenuineCountPolicy::count_for(const kms::BaseRequest& request, FileTime now) {
    store_.touch(request.kms_id, request.cmid, now);
    return genuine_count(store_, request.kms_id, request.n_policy, now);
}

}  // namespace kmscope
