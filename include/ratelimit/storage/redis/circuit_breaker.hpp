#pragma once

#include <chrono>
#include <mutex>

namespace ratelimit::detail::redis {

/// Stops paying the timeout on every call while the backend is down. Closed, every call
/// goes to the backend; after `threshold` failures in a row it opens, and calls are
/// answered without it. Once `probe_interval` has passed, one call (the probe) goes to
/// the backend again: success closes the breaker, failure opens it for another interval.
/// Thread-safe. Times are real (steady_clock), whatever clock the limiter uses.
class circuit_breaker {
 public:
  using clock = std::chrono::steady_clock;

  circuit_breaker(int threshold, std::chrono::milliseconds probe_interval)
      : threshold_(threshold), probe_interval_(probe_interval) {}

  /// Whether this call may use the backend; if it returns true, report the outcome.
  bool allow(clock::time_point now) {
    std::lock_guard lock{mutex_};
    if (failures_ < threshold_) return true;
    if (probing_ || now < reopens_at_) return false;
    probing_ = true;
    return true;
  }

  void succeeded() {
    std::lock_guard lock{mutex_};
    failures_ = 0;
    probing_ = false;
  }

  void failed(clock::time_point now) {
    std::lock_guard lock{mutex_};
    if (probing_ || ++failures_ >= threshold_) {
      failures_ = threshold_;
      probing_ = false;
      reopens_at_ = now + probe_interval_;
    }
  }

  bool open() const {
    std::lock_guard lock{mutex_};
    return failures_ >= threshold_;
  }

 private:
  mutable std::mutex mutex_;
  const int threshold_;
  const std::chrono::milliseconds probe_interval_;
  int failures_ = 0;
  bool probing_ = false;
  clock::time_point reopens_at_{};
};

}  // namespace ratelimit::detail::redis
