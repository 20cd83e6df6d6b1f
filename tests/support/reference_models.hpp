#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <ratelimit/algorithms/fixed_window.hpp>
#include <ratelimit/algorithms/leaky_bucket.hpp>
#include <ratelimit/algorithms/sliding_log.hpp>
#include <ratelimit/algorithms/sliding_window_counter.hpp>
#include <ratelimit/algorithms/token_bucket.hpp>
#include <ratelimit/decision.hpp>
#include <ratelimit/quota.hpp>
#include <string>
#include <type_traits>
#include <vector>

#include "support/random_requests.hpp"

/// Brute-force models of the five algorithms, written from DESIGN section 2 and the README's
/// rules for reservations rather than from the library's arithmetic, for the reference model
/// tests and fuzz/decision_fuzz (so no GoogleTest here). Each model knows only whether a
/// request of some cost would be admitted at some instant, `admits(t, cost)`, on its state as
/// it stands; every other field of a decision is found by search: `remaining` is the largest
/// cost admitted right after the call, `retry_after` the first instant the same call is
/// admitted, `reset_after` the first instant the whole capacity is (a full quota), `delay`
/// the first instant the queue ahead has drained. Nothing new is admitted while the model
/// searches, and admission only gets easier with time, so a binary search over int64 time
/// finds each of them. Quantities are exact 128-bit integers.
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
/// written in int64 nanoseconds, is the decision's "never", nanoseconds::max().
inline std::chrono::nanoseconds wait(std::int64_t now, std::optional<i128> instant) {
  if (!instant || *instant - now > int64_max) return std::chrono::nanoseconds::max();
  return std::chrono::nanoseconds{static_cast<std::int64_t>(std::max<i128>(0, *instant - now))};
}

/// The largest cost in [0, capacity] that `admits`, for a predicate that stays false once it
/// is false.
template <class Predicate>
std::int64_t largest_cost(std::int64_t capacity, Predicate admits) {
  if (admits(capacity)) return capacity;
  std::int64_t fits = 0, too_much = capacity;
  while (too_much - fits > 1) {
    const std::int64_t middle = fits + (too_much - fits) / 2;
    (admits(middle) ? fits : too_much) = middle;
  }
  return fits;
}

/// The fields every model derives the same way from its `admits(instant, cost)`, evaluated
/// on the state right after a call at `now`: remaining and reset_after, and for a step of
/// `cost` turned down, retry_after (a reservation or a cancel, `cost` empty, find their own).
template <class Admits>
ratelimit::decision decided(bool allowed, std::int64_t now, std::optional<std::int64_t> cost,
                            std::int64_t limit, std::int64_t capacity, Admits admits) {
  ratelimit::decision d{.allowed = allowed, .limit = limit};
  d.remaining = largest_cost(capacity, [&](std::int64_t c) { return admits(now, c); });
  if (!allowed && cost) {
    d.retry_after = wait(now, first_instant(now, [&](std::int64_t t) { return admits(t, *cost); }));
  }
  d.reset_after =
      wait(now, first_instant(now, [&](std::int64_t t) { return admits(t, capacity); }));
  return d;
}

inline i128 floor_div(i128 a, i128 b) { return a / b - (a % b != 0 && a < 0 ? 1 : 0); }
inline i128 ceil_div(i128 a, i128 b) { return -floor_div(-a, b); }

/// Token and leaky bucket, as one schedule: `due` is the instant the bucket is full again
/// (the queue has drained), in ticks of 1/limit ns, so that one unit of cost, period/limit
/// ns, is exactly `period` ticks and nothing is ever rounded.
///
/// * token: admits iff the tokens, burst − backlog/period, are at least the cost. DESIGN
///   does not say what a clock stepped back means; the library says time stands still
///   until the clock passes the latest instant seen again. A reservation is admitted iff
///   that first happens within its longest wait; it takes the tokens at once (a debt) with
///   `delay` the wait.
/// * leaky: a queue of at most burst units, DESIGN's `delay = max(0, tat − now)` read
///   literally, for any `now` (a clock stepped back finds the queue longer); a request that
///   would only start after the end of int64 time, or after a delay of nanoseconds::max()
///   or more, is not admitted. A reservation is admitted iff its delay is at most its longest wait,
///   whatever the queue's size.
/// * cancel: gives the units back iff the schedule is as the booking left it (everything
///   booked after it was given back); the key is then as if the reservation had been turned
///   down. Otherwise it gives back nothing.
class bucket {
 public:
  enum class kind { token, leaky };

  /// What a reservation took: the schedule before and after it, and the instant it was
  /// booked at.
  struct booking {
    i128 due_before;
    i128 due_after;
    i128 booked_at;
  };

  bucket(const ratelimit::quota& q, std::int64_t start, kind k)
      : quota_(q), kind_(k), latest_(start) {}

  ratelimit::decision step(std::int64_t now, std::int64_t cost) {
    see(now);
    const bool allowed = admits(now, cost);
    std::chrono::nanoseconds delay{};
    if (allowed) {
      if (kind_ == kind::leaky) delay = wait(now, drained_at(now));
      take(now, cost);
    }
    ratelimit::decision d = settle(allowed, now, cost);
    d.delay = delay;
    return d;
  }

  ratelimit::decision reserve(std::int64_t now, std::int64_t cost, std::int64_t max_wait,
                              booking& b) {
    see(now);
    std::optional<i128> retry_at;
    std::optional<i128> serve_at;
    if (kind_ == kind::token) {
      // The instant a step would first pass, whether it is within the wait or not.
      const i128 longest = longest_wait(max_wait);
      serve_at = first_instant(now, [&](std::int64_t t) { return admits(t, cost); });
      if (serve_at && *serve_at - now > longest) {
        retry_at = *serve_at - longest;
        serve_at.reset();
      }
    } else {
      const auto fits = [&](std::int64_t t) {
        return cost <= quota_.burst && starts_in_time(t) &&
               backlog(t) <= longest_wait(max_wait) * quota_.limit;
      };
      if (fits(now)) {
        serve_at = drained_at(now);
      } else {
        retry_at = first_instant(now, fits);
      }
    }
    ratelimit::decision d;
    if (serve_at) {
      b = {due_, 0, ticks(instant(now))};
      take(now, cost);
      b.due_after = due_;
      d = settle(true, now, std::nullopt);
      d.delay = wait(now, serve_at);
    } else {
      d = settle(false, now, std::nullopt);
      d.retry_after = wait(now, retry_at);
    }
    return d;
  }

  ratelimit::decision cancel(std::int64_t now, const booking& b) {
    see(now);
    if (due_ == b.due_after) due_ = std::max(b.due_before, b.booked_at);
    return settle(false, now, std::nullopt);
  }

 private:
  void see(std::int64_t now) { latest_ = std::max(latest_, now); }
  /// A negative wait is none; a delay of nanoseconds::max() would read as "never", so the
  /// longest a delay can be is one less.
  static i128 longest_wait(std::int64_t max_wait) {
    return std::clamp<i128>(max_wait, 0, int64_max - 1);
  }
  i128 ticks(std::int64_t t) const { return i128{t} * quota_.limit; }
  std::int64_t instant(std::int64_t t) const {
    return kind_ == kind::token ? std::max(latest_, t) : t;
  }
  /// Ticks of service still owed at `t`.
  i128 backlog(std::int64_t t) const { return std::max<i128>(0, due_ - ticks(instant(t))); }
  /// The first instant from `now` on at which the queue ahead has drained.
  std::optional<std::int64_t> drained_at(std::int64_t now) const {
    return first_instant(now, [&](std::int64_t t) { return backlog(t) == 0; });
  }
  /// A leaky bucket admits a request only if it starts being served within int64 time, after
  /// a delay below nanoseconds::max(), which reads as "never" (before the clock's epoch, a
  /// delay may be that long while the instant is within the clock).
  bool starts_in_time(std::int64_t t) const {
    if (kind_ == kind::token) return true;
    const i128 delay = ceil_div(backlog(t), quota_.limit);
    return delay < int64_max && i128{instant(t)} + delay <= int64_max;
  }
  bool admits(std::int64_t t, std::int64_t cost) const {
    const i128 period = quota_.period.count();
    return starts_in_time(t) && backlog(t) + i128{cost} * period <= i128{quota_.burst} * period;
  }
  void take(std::int64_t now, std::int64_t cost) {
    due_ = std::max(due_, ticks(instant(now))) + i128{cost} * quota_.period.count();
  }
  ratelimit::decision settle(bool allowed, std::int64_t now,
                             std::optional<std::int64_t> cost) const {
    return decided(allowed, now, cost, quota_.limit, quota_.burst,
                   [&](std::int64_t t, std::int64_t c) { return admits(t, c); });
  }

  ratelimit::quota quota_;
  kind kind_;
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
    return decided(allowed, now, cost, quota_.limit, quota_.limit,
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
      : quota_(q), latest_(static_cast<std::int64_t>(floor_div(start, q.period.count()))) {}

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
    return decided(allowed, now, cost, quota_.limit, quota_.limit, admits);
  }

 protected:
  std::int64_t window(std::int64_t t) const {
    return std::max(latest_, static_cast<std::int64_t>(floor_div(t, quota_.period.count())));
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

/// The model algorithm `A` is held to, for a key first seen at `start`.
template <class A>
auto model_of(const ratelimit::quota& q, std::int64_t start) {
  namespace algorithms = ratelimit::algorithms;
  if constexpr (std::is_same_v<A, algorithms::token_bucket>) {
    return bucket(q, start, bucket::kind::token);
  } else if constexpr (std::is_same_v<A, algorithms::leaky_bucket>) {
    return bucket(q, start, bucket::kind::leaky);
  } else if constexpr (std::is_same_v<A, algorithms::fixed_window>) {
    return fixed_window(q, start);
  } else if constexpr (std::is_same_v<A, algorithms::sliding_log>) {
    return sliding_log(q);
  } else {
    static_assert(std::is_same_v<A, algorithms::sliding_window_counter>);
    return sliding_window_counter(q, start);
  }
}

// ---------------------------------------------------------------------------------------------
// What the requests a bucket admitted may never do, whatever the decisions said: the bucket's
// definition (DESIGN section 2), on the requests still standing (admitted, not cancelled).
// ---------------------------------------------------------------------------------------------

/// An admitted request: `cost` units sent at `at`, the instant it is served (admitted at +
/// delay), in ticks of 1/limit ns (instant t is t·limit; a unit of cost spans `period`).
struct send {
  i128 at;
  std::int64_t cost;
};

inline std::string to_string(i128 v) {
  if (v < 0) return "-" + to_string(-v);
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  } while (v != 0);
  return digits;
}

// Each takes the standing sends in order of `at` and returns what is wrong, empty if nothing.
// `slack` widens every bound by as many ticks, for instants known only rounded up to the
// nanosecond (limit − 1: a delay is the exact wait rounded up).

/// Token bucket: every run of sends, from the one at t_i to the one at t_j, sends at most
/// burst + (t_j − t_i)·limit/period units; in ticks, units·period <= burst·period +
/// (t_j − t_i). Played through GCRA, that is tat_j − t_j <= burst·period after every send j.
inline std::string token_bucket_overdraw(const ratelimit::quota& q, const std::vector<send>& sends,
                                         i128 slack) {
  const i128 unit = q.period.count();
  std::optional<i128> tat;
  for (const send& s : sends) {
    tat = std::max(s.at, tat.value_or(s.at)) + s.cost * unit;
    if (*tat - s.at > q.burst * unit + slack) {
      return "the sends up to the one of cost " + std::to_string(s.cost) + " at " +
             to_string(s.at) + "/limit ns overdraw the bucket by " +
             to_string(*tat - s.at - q.burst * unit) + "/period token";
    }
  }
  return "";
}

/// Leaky bucket: consecutive departures at least the earlier one's cost·period apart.
inline std::string leaky_bucket_crowding(const ratelimit::quota& q, const std::vector<send>& sends,
                                         i128 slack) {
  const i128 unit = q.period.count();
  for (std::size_t k = 1; k < sends.size(); ++k) {
    const send& s = sends[k];
    if (s.at - sends[k - 1].at + slack < sends[k - 1].cost * unit) {
      return "the send of cost " + std::to_string(s.cost) + " at " + to_string(s.at) +
             "/limit ns leaves " + to_string(s.at - sends[k - 1].at) +
             "/limit ns after one of cost " + std::to_string(sends[k - 1].cost);
    }
  }
  return "";
}

/// Leaky bucket, right after try_acquire admits a request (a reservation is bounded by its
/// max_wait instead): the queue holds at most burst·period of service at `now`.
inline std::string leaky_bucket_overfull(const ratelimit::quota& q, const std::vector<send>& sends,
                                         std::int64_t now, i128 slack) {
  const i128 unit = q.period.count();
  i128 backlog = 0;
  for (const send& s : sends) {
    backlog +=
        std::clamp<i128>(s.at - slack + s.cost * unit - i128{now} * q.limit, 0, s.cost * unit);
  }
  if (backlog > q.burst * unit) {
    return "the queue holds " + to_string(backlog) + "/limit ns of service, more than " +
           to_string(q.burst * unit);
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// A decision against the model's.
// ---------------------------------------------------------------------------------------------

/// Every field equal.
inline bool same(const ratelimit::decision& a, const ratelimit::decision& b) {
  return a.allowed == b.allowed && a.limit == b.limit && a.remaining == b.remaining &&
         a.retry_after == b.retry_after && a.reset_after == b.reset_after && a.delay == b.delay &&
         a.degraded == b.degraded;
}

inline std::string describe(const ratelimit::decision& d) {
  return std::string("{allowed=") + (d.allowed ? "1" : "0") + " limit=" + std::to_string(d.limit) +
         " remaining=" + std::to_string(d.remaining) +
         " retry_after=" + std::to_string(d.retry_after.count()) +
         " reset_after=" + std::to_string(d.reset_after.count()) +
         " delay=" + std::to_string(d.delay.count()) + (d.degraded ? " degraded" : "") + "}";
}

}  // namespace ratelimit_test::model
