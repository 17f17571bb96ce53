// Long builds (a Hyperscan database of hundreds of regexes takes seconds) run on a builder
// thread of their own, so the control thread keeps answering handshakes; the control thread
// takes the finished result and publishes it. The latest submission wins: a build superseded
// by a newer one before it finished is dropped, never published out of order.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "common/result.h"

namespace exitgw {

// Upper bounds of the build-duration histogram's buckets, in seconds (+Inf follows).
inline constexpr std::array<double, 19> kBuildSecondsBounds = {
    0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25,
    0.35,  0.5,   0.75, 1,     2.5,  5,     10,  30,   60};

// Every build that ran to its end, superseded ones too: how long a builder thread worked.
struct BuildDurations {
  std::array<uint64_t, kBuildSecondsBounds.size() + 1> counts{};  // per bucket; +Inf last
  double sum_seconds = 0;
};

// Submitted and taken by one thread (the control thread); the job runs on the builder thread
// and must only touch what it captured (by value).
template <typename T>
class BackgroundBuild {
 public:
  using Job = std::function<Result<T>()>;
  struct Finished {
    uint64_t serial;
    Result<T> result;
  };

  using Durations = BuildDurations;

  BackgroundBuild() = default;
  BackgroundBuild(const BackgroundBuild&) = delete;
  BackgroundBuild& operator=(const BackgroundBuild&) = delete;
  ~BackgroundBuild() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      queued_.reset();
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();  // a build in progress finishes first
  }

  // Queues `job`, replacing one queued and not yet started; returns its serial.
  uint64_t submit(Job job) {
    std::lock_guard lock(mutex_);
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    queued_ = Queued{++latest_, std::move(job)};
    finished_.reset();  // an older result, not taken yet, is superseded too
    wake_.notify_all();
    return latest_;
  }

  // Supersedes everything submitted so far (the caller published a newer state itself).
  void cancel() {
    std::lock_guard lock(mutex_);
    ++latest_;
    queued_.reset();
    finished_.reset();
  }

  // The result of the latest submission once it has finished; nullopt while it runs (or when
  // nothing is pending).
  std::optional<Finished> take() {
    std::lock_guard lock(mutex_);
    if (!finished_ || finished_->serial != latest_) return std::nullopt;
    std::optional<Finished> out = std::move(finished_);
    finished_.reset();
    return out;
  }

  // True while a submitted build has not been taken.
  bool pending() const {
    std::lock_guard lock(mutex_);
    return queued_.has_value() || (running_ != 0 && running_ == latest_) ||
           (finished_ && finished_->serial == latest_);
  }

  // True when no build is queued or running, superseded ones included (a cancelled build may
  // still be running after pending() turned false).
  bool idle() const {
    std::lock_guard lock(mutex_);
    return !queued_.has_value() && running_ == 0;
  }

  Durations durations() const {
    std::lock_guard lock(mutex_);
    return durations_;
  }

  // Builds that finished after a newer one was submitted, and were dropped.
  uint64_t superseded() const {
    std::lock_guard lock(mutex_);
    return superseded_;
  }

 private:
  struct Queued {
    uint64_t serial;
    Job job;
  };

  void run() {
    std::unique_lock lock(mutex_);
    while (true) {
      wake_.wait(lock, [&] { return stopping_ || queued_.has_value(); });
      if (stopping_) return;
      Queued q = std::move(*queued_);
      queued_.reset();
      running_ = q.serial;
      lock.unlock();
      const auto t0 = std::chrono::steady_clock::now();
      Result<T> result = q.job();
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      lock.lock();
      size_t i = 0;
      while (i < kBuildSecondsBounds.size() && seconds > kBuildSecondsBounds[i]) ++i;
      ++durations_.counts[i];
      durations_.sum_seconds += seconds;
      running_ = 0;
      if (q.serial == latest_)
        finished_ = Finished{q.serial, std::move(result)};
      else
        ++superseded_;
    }
  }

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::optional<Queued> queued_;
  std::optional<Finished> finished_;
  uint64_t latest_ = 0;   // serial of the latest submission (or cancel)
  uint64_t running_ = 0;  // serial of the build in progress, 0 when idle
  uint64_t superseded_ = 0;
  Durations durations_;
  bool stopping_ = false;
  std::thread thread_;  // started by the first submit
};

}  // namespace exitgw
