// The records of one input file on their way to the output when several files are analysed at once
// (--jobs): the file's worker fills the lane, and the output takes the lanes one after the other in file
// order, so the output is that of one file at a time. A lane is bounded: a file read ahead of the one
// being printed waits for it instead of growing memory.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <vector>

namespace kmscope::analyzer {

template <class T>
class RecordLane {
public:
    /// Items travel in groups of `batch`; at most `queued` groups wait at once.
    explicit RecordLane(std::size_t batch = 256, std::size_t queued = 8) : batch_size_(batch), max_queued_(queued) {}
    RecordLane(const RecordLane&) = delete;
    RecordLane& operator=(const RecordLane&) = delete;

    /// Producer: constructs an item in place (no move between a variant's alternatives); waits while the
    /// lane is full.
    template <class... Args>
    void emplace(Args&&... args) {
        if (batch_.capacity() == 0) batch_.reserve(batch_size_);
        batch_.emplace_back(std::forward<Args>(args)...);
        if (batch_.size() >= batch_size_) submit();
    }
    /// Producer: no more items; what is left is handed over.
    void close() {
        submit();
        std::lock_guard lock(mu_);
        closed_ = true;
        changed_.notify_all();  // under the lock: once the consumer sees the lane closed, it may free it
    }
    /// Consumer: the next group, in order; false once the lane is closed and empty.
    bool pop(std::vector<T>& out) {
        std::unique_lock lock(mu_);
        changed_.wait(lock, [&] { return closed_ || !queue_.empty(); });
        if (queue_.empty()) return false;
        out = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();
        changed_.notify_all();
        return true;
    }

private:
    void submit() {
        if (batch_.empty()) return;
        std::unique_lock lock(mu_);
        changed_.wait(lock, [&] { return queue_.size() < max_queued_; });
        queue_.push_back(std::move(batch_));
        lock.unlock();
        changed_.notify_all();
        batch_ = {};  // sized again by the next emplace, not here: close() reserves nothing
    }

    std::size_t batch_size_, max_queued_;
    std::vector<T> batch_;  // the producer's, not yet handed over
    std::deque<std::vector<T>> queue_;
    std::mutex mu_;
    std::condition_variable changed_;
    bool closed_ = false;
};

}  // namespace kmscope::analyzer
