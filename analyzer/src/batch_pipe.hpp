// Hands items from the capture thread to one consumer thread, in order, in batches (one lock round
// trip per batch rather than per item), with a bound on what is in flight so memory stays flat.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kmscope::analyzer {

template <class T>
class BatchPipe {
public:
    /// `consume` runs on the pipe's thread; items travel in groups of `batch`, at most `queued` groups
    /// waiting at once.
    explicit BatchPipe(std::function<void(T&)> consume, std::size_t batch = 256, std::size_t queued = 8)
        : consume_(std::move(consume)), batch_size_(batch), max_queued_(queued) {
        thread_ = std::thread([this] { run(); });
    }
    ~BatchPipe() {
        drain();
        {
            std::lock_guard lock(mu_);
            stop_ = true;
        }
        wake_.notify_all();
        thread_.join();
    }
    BatchPipe(const BatchPipe&) = delete;
    BatchPipe& operator=(const BatchPipe&) = delete;

    void push(T&& item) {
        batch_.push_back(std::move(item));
        if (batch_.size() >= batch_size_) submit();
    }
    /// Constructs the item in the batch: no temporary T, and for a variant T no move between
    /// alternatives (GCC 12 reports false maybe-uninitialized warnings through those).
    template <class... Args>
    void emplace(Args&&... args) {
        batch_.emplace_back(std::forward<Args>(args)...);
        if (batch_.size() >= batch_size_) submit();
    }
    /// Returns once every item pushed so far has been consumed.
    void drain() {
        submit();
        std::unique_lock lock(mu_);
        idle_.wait(lock, [&] { return queue_.empty() && !busy_; });
    }

private:
    void submit() {
        if (batch_.empty()) return;
        enqueue(std::move(batch_));
        batch_ = {};
        batch_.reserve(batch_size_);
    }
    void enqueue(std::vector<T>&& items) {
        if (items.empty()) return;
        std::unique_lock lock(mu_);
        idle_.wait(lock, [&] { return queue_.size() < max_queued_; });
        queue_.push_back(std::move(items));
        lock.unlock();
        wake_.notify_one();
    }
    void run() {
        std::unique_lock lock(mu_);
        for (;;) {
            wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping
            std::vector<T> items = std::move(queue_.front());
            queue_.pop_front();
            busy_ = true;
            lock.unlock();
            idle_.notify_all();
            for (auto& item : items) consume_(item);
            items.clear();
            lock.lock();
            busy_ = false;
            idle_.notify_all();
        }
    }

    std::function<void(T&)> consume_;
    std::size_t batch_size_, max_queued_;
    std::vector<T> batch_;
    std::deque<std::vector<T>> queue_;
    std::mutex mu_;
    std::condition_variable wake_, idle_;
    bool busy_ = false, stop_ = false;
    std::thread thread_;
};

}  // namespace kmscope::analyzer
