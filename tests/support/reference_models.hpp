#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <ratelimit/decision.hpp>
#include <ratelimit/quota.hpp>
#include <vector>

#include "support/random_requests.hpp"

/// Brute-force models of the five algorithms, written from DESIGN section 2 rather than
/// from the library: each knows only when a request of some cost would be admitted at an
/// instant. Everything else is found by search: `remaining` is the largest cost admitted
/// right after the request, `retry_after` the first instant the same request is admitted,
/// `reset_after` the first instant the whole capacity is (a full quota), `delay` the first
/// instant the queue ahead has drained. Admission only grows with time while nothing new is
/// admitted, so a binary search over int64 finds each of them.
namespace ratelimit_test::model {

/// The first instant in [from, INT64_MAX] at which `holds` is true, for a predicate that
/// stays true once it is; nothing if it never is within the clock.
template <class Predicate>
std::optional<std::int64_t> first_instant(std::int64_t from, Predicate holds) {
  if (holds(from)) return from;
  if (!holds(int64_max)) return std::nullopt;
  i128 never = from, always = int64_max;
  while (always - never > 1) {
    const i128 middle = never + (always - never) / 2;
    (holds(static_cast<std::int64_t>(middle)) ? always : never) = middle;
  }
  return static_cast<std::int64_t>(always);
}

/// The wait from `now` until `instant`; a wait that never ends, or is too long to be
/// written in int64 nanoseconds, is the conservative nanoseconds::max().
inline std::chrono::nanoseconds wait(std::int64_t now, std::optional<std::int64_t> instant) {
  if (!instant || i128{*instant} - now > int64_max) return std::chrono::nanoseconds::max();
  return std::chrono::nanoseconds{*instant - now};
}

/// The largest cost in [0, capacity] that `admits`, for a predicate that stays false once it
/// is false.
template <class Predicate>
std::int64_t largest_cost(std::int64_t capacity, Predicate admits) {
  std::int64_t fits = 0, too_much = capacity;
  if (admits(capacity)) return capacity;
  while (too_much - fits > 1) {
    const std::int64_t middle = fits + (too_much - fits) / 2;
    (admits(middle) ? fits : too_much) = middle;
  }
  return fits;
}

/// The fields every model derives the same way from its `admits(instant, cost)`, evaluated
/// on the state right after the request.
template <class Admits>
ratelimit::decision decided(bool allowed, std::int64_t now, std::int64_t cost,
                            const ratelimit::quota& q, std::int64_t capacity, Admits admits) {
  ratelimit::decision d{.allowed = allowed, .limit = q.limit};
  d.remaining = largest_cost(capacity, [&](std::int64_t c) { return admits(now, c); });
  if (!allowed) {
    d.retry_after = wait(now, first_instant(now, [&](std::int64_t t) { return admits(t, cost); }));
  }
  d.reset_after =
      wait(now, first_instant(now, [&](std::int64_t t) { return admits(t, capacity); }));
  return d;
}

inline std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a / b - (a % b != 0 && a < 0 ? 1 : 0);
}

/// Token and leaky bucket as GCRA: `due` is the instant the bucket is full again (the queue
/// has drained), in ticks of 1/limit ns, so that one unit's interval, period/limit ns, is
/// exactly `period` ticks and nothing is ever rounded.
class bucket {
 public:
  /// What a clock stepped back means. `time_stands_still`: the bucket waits for the clock
  /// to pass the latest instant it saw (the library's token bucket). `literal_tat`: DESIGN's
  /// leaky bucket formula, `delay = max(0, tat − now)` with the `now` of the request.
  enum class backwards { time_stands_still, literal_tat };

  bucket(const ratelimit::quota& q, std::int64_t start, backwards rule, bool shaping)
      : quota_(q), rule_(rule), shaping_(shaping), latest_(start) {}

  ratelimit::decision step(std::int64_t now, std::int64_t cost) {
    latest_ = std::max(latest_, now);
    const bool allowed = admits(now, cost);
    std::chrono::nanoseconds delay{};
    if (allowed) {
      if (shaping_) {
        delay = wait(now, first_instant(now, [&](std::int64_t t) { return backlog(t) == 0; }));
      }
      due_ = std::max(due_, ticks(instant(now))) + i128{cost} * quota_.period.count();
    }
    ratelimit::decision d = decided(allowed, now, cost, quota_, quota_.burst,
                                    [&](std::int64_t t, std::int64_t c) { return admits(t, c); });
    d.delay = delay;
    return d;
  }

 private:
  i128 ticks(std::int64_t t) const { return i128{t} * quota_.limit; }
  std::int64_t instant(std::int64_t t) const {
    return rule_ == backwards::time_stands_still ? std::max(latest_, t) : t;
  }
  /// Ticks of work still queued at `t`.
  i128 backlog(std::int64_t t) const { return std::max<i128>(0, due_ - ticks(instant(t))); }
  bool admits(std::int64_t t, std::int64_t cost) const {
    const auto period = static_cast<u128>(quota_.period.count());
    // A queue admits no request that would leave it after the end of the clock.
    const i128 leaves_at = i128{instant(t)} + (backlog(t) + quota_.limit - 1) / quota_.limit;
    if (shaping_ && leaves_at > std::numeric_limits<std::int64_t>::max()) return false;
    return static_cast<u128>(backlog(t)) + static_cast<u128>(cost) * period <=
           static_cast<u128>(quota_.burst) * period;
  }

  ratelimit::quota quota_;
  backwards rule_;
  bool shaping_;
  std::int64_t latest_;
  /// A key never seen is full at every instant: earlier than any tick of int64 time.
  i128 due_ = -(i128{1} << 126);
};

/// Every admitted request, kept in order. A request counts while `now < at + period`, and is
/// forgotten for good once a request sees it expired. A clock stepped back stamps a request
/// at the newest instant still remembered, so that it counts for a whole period.
class sliding_log {
 public:
  explicit sliding_log(const ratelimit::quota& q) : quota_(q) {}

  ratelimit::decision step(std::int64_t now, std::int64_t cost) {
    while (oldest_ < log_.size() && expired(log_[oldest_], now)) ++oldest_;
    const bool allowed = admits(now, cost);
    if (allowed) {
      const std::int64_t at = oldest_ < log_.size() ? std::max(now, log_.back().at) : now;
      log_.push_back({at, cost, sum_before(log_.size()) + cost});
    }
    return decided(allowed, now, cost, quota_, quota_.limit,
                   [&](std::int64_t t, std::int64_t c) { return admits(t, c); });
  }

 private:
  struct entry {
    std::int64_t at;
    std::int64_t cost;
    i128 running_sum;  ///< of the costs of every entry up to this one
  };

  bool expired(const entry& e, std::int64_t t) const {
    return i128{t} >= i128{e.at} + quota_.period.count();
  }
  i128 sum_before(std::size_t i) const { return i == 0 ? 0 : log_[i - 1].running_sum; }
  /// The costs that still count at `t`: the entries are in order of `at`, so the expired
  /// ones are a prefix.
  i128 in_window(std::int64_t t) const {
    const auto first_alive =
        std::partition_point(log_.begin() + static_cast<std::ptrdiff_t>(oldest_), log_.end(),
                             [&](const entry& e) { return expired(e, t); });
    return sum_before(log_.size()) -
           sum_before(static_cast<std::size_t>(first_alive - log_.begin()));
  }
  bool admits(std::int64_t t, std::int64_t cost) const {
    return in_window(t) + cost <= quota_.limit;
  }

  ratelimit::quota quota_;
  std::vector<entry> log_;
  std::size_t oldest_ = 0;  ///< entries before it are forgotten
};

/// Counts per window `[k·period, (k+1)·period)`, for the two window algorithms; `Model`
/// says what it admits and how many windows back still count. A clock stepped back into
/// an earlier window keeps counting in the latest window seen.
template <class Model>
class window_counts {
 public:
  window_counts(const ratelimit::quota& q, std::int64_t start)
      : quota_(q), latest_(floor_div(start, q.period.count())) {}

  ratelimit::decision step(std::int64_t now, std::int64_t cost) {
    latest_ = window(now);
    const auto admits = [this](std::int64_t t, std::int64_t c) {
      return static_cast<const Model&>(*this).admits(t, c);
    };
    const bool allowed = admits(now, cost);
    if (allowed) counts_[latest_] += cost;
    // Windows this far back can never count again: dropping them keeps lookups cheap.
    while (!counts_.empty() && counts_.begin()->first < i128{latest_} - Model::windows_back) {
      counts_.erase(counts_.begin());
    }
    return decided(allowed, now, cost, quota_, quota_.limit, admits);
  }

 protected:
  std::int64_t window(std::int64_t t) const {
    return std::max(latest_, floor_div(t, quota_.period.count()));
  }
  std::int64_t count(i128 w) const {
    if (w < int64_min) return 0;
    const auto found = counts_.find(static_cast<std::int64_t>(w));
    return found == counts_.end() ? 0 : found->second;
  }

  ratelimit::quota quota_;

 private:
  std::int64_t latest_;
  std::map<std::int64_t, std::int64_t> counts_;
};

class fixed_window : public window_counts<fixed_window> {
 public:
  static constexpr int windows_back = 0;
  using window_counts::window_counts;

  bool admits(std::int64_t t, std::int64_t cost) const {
    return i128{count(window(t))} + cost <= quota_.limit;
  }
};

/// Weighs the window before by the part of it still inside the sliding period:
/// `prev·(period − e) + (curr + cost)·period <= limit·period`.
class sliding_window_counter : public window_counts<sliding_window_counter> {
 public:
  static constexpr int windows_back = 1;
  using window_counts::window_counts;

  bool admits(std::int64_t t, std::int64_t cost) const {
    const i128 period = quota_.period.count();
    const i128 w = window(t);  // wide, so that w - 1 and w·period cannot overflow
    // Before the window's start (a clock stepped back) nothing of it has elapsed.
    const i128 elapsed = std::clamp<i128>(t - w * period, 0, period);
    const u128 weighted =
        static_cast<u128>(count(w - 1)) * static_cast<u128>(period - elapsed) +
        (static_cast<u128>(count(w)) + static_cast<u128>(cost)) * static_cast<u128>(period);
    return weighted <= static_cast<u128>(quota_.limit) * static_cast<u128>(period);
  }
};

}  // namespace ratelimit_test::model
