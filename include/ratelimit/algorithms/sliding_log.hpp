#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

#include "ratelimit/decision.hpp"
#include "ratelimit/detail/wide_math.hpp"
#include "ratelimit/quota.hpp"

namespace ratelimit::algorithms {

/// Remembers every admitted request and admits iff the costs admitted in
/// `(now − period, now]` plus `cost` are at most `limit`. Exact, at O(limit) memory per
/// key: requests at the same nanosecond share one 16-byte record. A key's log is
/// allocated on its first admission and grows (doubling) when it outgrows its peak; a
/// log that cannot grow rejects, never admits.
struct sliding_log {
  /// Costs admitted at one instant.
  struct stamp {
    std::int64_t at;
    std::int64_t cost;
  };

  /// A ring of stamps, oldest first, and the sum of their costs.
  class state {
   public:
    std::size_t size() const noexcept { return size_; }
    std::int64_t sum() const noexcept { return sum_; }
    const stamp& operator[](std::size_t i) const noexcept {
      return ring_[(head_ + i) & (capacity_ - 1)];
    }

    void drop_oldest() noexcept {
      sum_ -= ring_[head_].cost;
      head_ = (head_ + 1) & (capacity_ - 1);
      --size_;
    }

    /// Appends, merging with the newest stamp at the same instant; false if out of memory.
    bool push(stamp s) noexcept {
      if (size_ > 0) {
        stamp& newest = ring_[(head_ + size_ - 1) & (capacity_ - 1)];
        if (newest.at == s.at) {
          newest.cost += s.cost;
          sum_ += s.cost;
          return true;
        }
      }
      if (size_ == capacity_ && !grow()) return false;
      ring_[(head_ + size_) & (capacity_ - 1)] = s;
      ++size_;
      sum_ += s.cost;
      return true;
    }

    /// Undoes the latest push, of `cost`: it was merged into, or became, the newest stamp.
    void take_back(std::int64_t cost) noexcept {
      stamp& newest = ring_[(head_ + size_ - 1) & (capacity_ - 1)];
      newest.cost -= cost;
      sum_ -= cost;
      if (newest.cost == 0) --size_;
    }

   private:
    bool grow() noexcept {
      const std::size_t capacity = std::max<std::size_t>(4, capacity_ * 2);
      std::unique_ptr<stamp[]> ring(new (std::nothrow) stamp[capacity]);
      if (!ring) return false;
      for (std::size_t i = 0; i < size_; ++i) ring[i] = (*this)[i];
      ring_ = std::move(ring);
      capacity_ = capacity;
      head_ = 0;
      return true;
    }

    std::unique_ptr<stamp[]> ring_;
    std::size_t capacity_ = 0;  ///< 0 or a power of two, so that indexing wraps with a mask
    std::size_t head_ = 0;
    std::size_t size_ = 0;
    std::int64_t sum_ = 0;
  };

  static state fresh(const quota&, std::int64_t) noexcept { return {}; }

  /// Gives back the `cost` units that the latest `step` on `log` admitted. Its state holds
  /// the log itself, so it is undone rather than saved and restored.
  static void refund(state& log, std::int64_t cost) noexcept { log.take_back(cost); }

  static decision step(state& log, const quota& q, std::int64_t now, std::int64_t cost) noexcept {
    const std::int64_t period = q.period.count();
    while (log.size() > 0 && detail::i128{now} - log[0].at >= period) log.drop_oldest();

    decision d{.limit = q.limit};
    if (cost > q.limit) {
      d.retry_after = std::chrono::nanoseconds::max();
    } else if (cost <= q.limit - log.sum()) {
      // A clock stepped back stamps at the newest instant seen: the request is counted
      // for at least its period, never less.
      const std::int64_t at = log.size() > 0 ? std::max(now, log[log.size() - 1].at) : now;
      d.allowed = log.push({at, cost});
      if (!d.allowed) d.retry_after = q.period;  // out of memory: try again later
    } else {
      d.retry_after =
          detail::wait_until(detail::i128{expiry_freeing(log, q.limit, cost)} + period, now);
    }
    // A sum above the limit is left by a quota that shrank under the key.
    d.remaining = std::max<std::int64_t>(q.limit - log.sum(), 0);
    if (log.size() > 0) {
      d.reset_after = detail::wait_until(detail::i128{log[log.size() - 1].at} + period, now);
    }
    return d;
  }

 private:
  /// The stamp whose expiry (its instant + period) first leaves room for `cost`.
  static std::int64_t expiry_freeing(const state& log, std::int64_t limit,
                                     std::int64_t cost) noexcept {
    std::int64_t kept = log.sum();
    std::size_t i = 0;
    for (; i + 1 < log.size() && cost > limit - (kept - log[i].cost); ++i) kept -= log[i].cost;
    return log[i].at;
  }
};

}  // namespace ratelimit::algorithms
