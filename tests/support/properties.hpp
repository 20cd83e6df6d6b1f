#pragma once

// Properties every algorithm keeps over a whole trace of requests, checked on the decisions
// a limiter answered and never on its state, so that any storage can be held to them: in
// memory or Redis. `check_random_trace` drives a limiter-like callable with seeded random
// requests, checks every decision as it comes and then the trace as a whole:
//
// * token bucket: at most `burst + floor((t_j − t_i)·limit/period)` units are admitted in
//   any interval [t_i, t_j] of admission instants;
// * leaky bucket: the same over admission instants (it meters like a token bucket), and over
//   service instants (admission + delay) its departures are never closer than the rate
//   allows (see `departures_are_spaced` for the nanosecond of rounding);
// * sliding log: never more than `limit` in any window of one period;
// * fixed window: never more than `limit` in an aligned window, nor 2·limit in any window
//   of one period (its documented boundary burst);
// * sliding window counter: never more than `limit` in an aligned window, nor
//   `sliding_window_counter_worst(q)` in any window of one period;
// * a rejected request consumes nothing: a twin key that gets only the admitted requests
//   decides each of them exactly as the key that also got the rejected ones;
// * retry_after is exact: after a rejection the same request is sent again, at random,
//   1ns before and exactly at the instant retry_after names; it is rejected before (with a
//   retry_after naming the same instant) and admitted at it; nanoseconds::max() only for a
//   cost above the capacity;
// * a leaky bucket's delay is exact: `max(0, tat − now)` rounded up to the nanosecond, with
//   `tat` worked out from the admissions (DESIGN section 2).

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <random>
#include <ratelimit/algorithm.hpp>
#include <ratelimit/algorithms/fixed_window.hpp>
#include <ratelimit/algorithms/leaky_bucket.hpp>
#include <ratelimit/algorithms/sliding_log.hpp>
#include <ratelimit/algorithms/sliding_window_counter.hpp>
#include <ratelimit/algorithms/token_bucket.hpp>
#include <ratelimit/clock.hpp>
#include <ratelimit/decision.hpp>
#include <ratelimit/quota.hpp>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "support/algorithm_probe.hpp"
#include "support/random_requests.hpp"

namespace ratelimit_test::properties {

/// One request and the decision it got. `real` is when it happened: the clock's reading
/// `at` unless the clock was stepped (tests/clock_steps_test.cpp).
struct event {
  std::int64_t at;
  std::int64_t real;
  std::int64_t cost;
  ratelimit::decision decision;
};

/// `cost` units admitted (or served) at instant `at`.
struct units_at {
  std::int64_t at;
  std::int64_t cost;
};

// ---------------------------------------------------------------------------------------
// Exact arithmetic for the bounds: counts of units (below 2^127) times periods or rates
// (below 2^64) need 256 bits. Four 64-bit limbs, added with their carries in 128 bits:
// nothing here wraps (the suite runs under clang's -fsanitize=integer).

class u256 {
 public:
  u256() = default;
  explicit u256(u128 v) : limbs_{low(v), high(v), 0, 0} {}

  /// a·b, exactly.
  static u256 product(u128 a, std::uint64_t b) {
    const u128 p0 = u128{low(a)} * b;
    const u128 p1 = u128{high(a)} * b;
    const u128 middle = u128{high(p0)} + low(p1);
    const u128 top = u128{high(p1)} + high(middle);
    u256 r;
    r.limbs_ = {low(p0), low(middle), low(top), high(top)};
    return r;
  }

  friend u256 operator+(const u256& a, const u256& b) {
    u256 r;
    u128 carry = 0;
    for (std::size_t i = 0; i < 4; ++i) {
      const u128 sum = u128{a.limbs_[i]} + b.limbs_[i] + carry;
      r.limbs_[i] = low(sum);
      carry = high(sum);
    }
    return r;
  }

  friend bool operator<(const u256& a, const u256& b) {
    for (std::size_t i = 4; i > 0; --i) {
      if (a.limbs_[i - 1] != b.limbs_[i - 1]) return a.limbs_[i - 1] < b.limbs_[i - 1];
    }
    return false;
  }
  friend bool operator<=(const u256& a, const u256& b) { return !(b < a); }

 private:
  static std::uint64_t low(u128 v) { return static_cast<std::uint64_t>(v & ~std::uint64_t{0}); }
  static std::uint64_t high(u128 v) { return static_cast<std::uint64_t>(v >> 64); }

  std::array<std::uint64_t, 4> limbs_{};
};

inline std::string to_string(u128 v) {
  if (v == 0) return "0";
  std::string digits;
  for (; v > 0; v /= 10) digits.insert(digits.begin(), static_cast<char>('0' + v % 10));
  return digits;
}

inline u128 units(std::int64_t count) { return static_cast<u128>(count); }

/// b − a for a <= b, whatever their distance: as text, for messages.
inline std::string distance(std::int64_t a, std::int64_t b) {
  return to_string(static_cast<u128>(i128{b} - a));
}

inline std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a / b - (a % b != 0 && a < 0 ? 1 : 0);
}

// ---------------------------------------------------------------------------------------
// Bounds over a whole trace

/// Sorted by instant, ties in the order given (for a leaky bucket, the order admitted).
inline std::vector<units_at> sorted(std::vector<units_at> u) {
  std::stable_sort(u.begin(), u.end(),
                   [](const units_at& a, const units_at& b) { return a.at < b.at; });
  return u;
}

/// Whether an interval's units include those at its last instant: all admitted in [t_i, t_j],
/// or those served from s_i up to the one served at s_j.
enum class last_instant { counted, not_counted };

/// Units from `u[from]` to `u[to]` that come closer together than the rate allows.
struct excess {
  std::size_t from = 0;
  std::size_t to = 0;
  u128 units = 0;
};

/// The first interval of `u` (sorted) whose units take more than the rate allows:
/// `count·period > (t_j − t_i)·limit + allowance`, where `count` sums the units from i to j,
/// those at j as `last` says. With S the running sum and every instant measured back from
/// the last one (T − t), the inequality splits into a term of j and a term of i, so one
/// pass checks every interval, in 256 bits.
inline std::optional<excess> first_excess(const std::vector<units_at>& u, const ratelimit::quota& q,
                                          const u256& allowance, last_instant last) {
  const auto period = static_cast<std::uint64_t>(q.period.count());
  const auto limit = static_cast<std::uint64_t>(q.limit);
  const i128 end = u.empty() ? 0 : i128{u.back().at};
  u128 sum = 0;
  u256 least_before{};  // min over i <= j of S(i−1)·period + (T − t_i)·limit
  std::size_t least_at = 0;
  for (std::size_t j = 0; j < u.size(); ++j) {
    const auto back = static_cast<u128>(end - u[j].at);
    const u256 before = u256::product(sum, period) + u256::product(back, limit);
    if (j == 0 || before < least_before) {
      least_before = before;
      least_at = j;
    }
    sum += units(u[j].cost);
    const bool counted = last == last_instant::counted;
    const u256 taken = counted ? u256::product(sum, period) + u256::product(back, limit) : before;
    if (!(taken <= least_before + allowance)) {
      excess e{least_at, j, 0};
      for (std::size_t k = least_at; k < (counted ? j + 1 : j); ++k) e.units += units(u[k].cost);
      return e;
    }
  }
  return std::nullopt;
}

/// Every interval [t_i, t_j] of `u` holds at most `burst + floor((t_j − t_i + slack)·limit /
/// period)` units. Since both counts are whole, that is `(count − burst)·period <= (t_j −
/// t_i + slack)·limit`.
inline testing::AssertionResult bucket_bound(const std::vector<units_at>& admitted,
                                             const ratelimit::quota& q, std::int64_t slack = 0) {
  const std::vector<units_at> u = sorted(admitted);
  const u256 allowance =
      u256::product(units(q.burst), static_cast<std::uint64_t>(q.period.count())) +
      u256::product(static_cast<u128>(slack), static_cast<std::uint64_t>(q.limit));
  const std::optional<excess> e = first_excess(u, q, allowance, last_instant::counted);
  if (!e) return testing::AssertionSuccess();
  const std::int64_t from = u[e->from].at;
  const std::int64_t to = u[e->to].at;
  return testing::AssertionFailure()
         << to_string(e->units) << " units in [" << from << ", " << to << "], above burst "
         << q.burst << " + floor((" << distance(from, to) << " + " << slack << ")ns × " << q.limit
         << " / " << q.period.count() << "ns)";
}

/// A leaky bucket's departures, at its service instants s (admission + delay, rounded up
/// to the nanosecond, in the order admitted): for every i < j the units served from i up
/// to but not including j took `sum·period/limit` ns of the queue's drain, which began by
/// s_i and ended by s_j, each exact instant being at most 1ns before its rounded s. So
/// `sum·period < (s_j − s_i + 1)·limit`. Where the interval period/limit is a whole number
/// of nanoseconds nothing is rounded, and the stronger `sum·period <= (s_j − s_i)·limit`
/// holds.
inline testing::AssertionResult departures_are_spaced(const std::vector<units_at>& served,
                                                      const ratelimit::quota& q) {
  const std::vector<units_at> u = sorted(served);
  const auto limit = static_cast<std::uint64_t>(q.limit);
  const bool whole_interval = static_cast<std::uint64_t>(q.period.count()) % limit == 0;
  // Strictly below (s_j − s_i + 1)·limit, i.e. at most (s_j − s_i)·limit + limit − 1; or
  // at most (s_j − s_i)·limit.
  const u256 allowance(whole_interval ? u128{0} : u128{limit - 1});
  const std::optional<excess> e = first_excess(u, q, allowance, last_instant::not_counted);
  if (!e) return testing::AssertionSuccess();
  return testing::AssertionFailure()
         << to_string(e->units) << " units served from " << u[e->from].at << " and the next one at "
         << u[e->to].at << ": closer than " << q.period.count() << "ns / " << q.limit << " each";
}

/// Units in the busiest `length` consecutive nanoseconds, and where they lie.
struct window_peak {
  u128 units = 0;
  std::int64_t from = 0;
  std::int64_t to = 0;
};

inline window_peak busiest_window(const std::vector<units_at>& admitted, std::int64_t length) {
  const std::vector<units_at> u = sorted(admitted);
  window_peak peak;
  u128 sum = 0;
  std::size_t first = 0;
  for (std::size_t j = 0; j < u.size(); ++j) {
    sum += units(u[j].cost);
    while (i128{u[j].at} - u[first].at >= length) sum -= units(u[first++].cost);
    if (sum > peak.units) peak = {sum, u[first].at, u[j].at};
  }
  return peak;
}

/// Units in the busiest aligned window [k·period, (k+1)·period).
inline window_peak busiest_aligned_window(const std::vector<units_at>& admitted,
                                          std::int64_t period) {
  const std::vector<units_at> u = sorted(admitted);
  window_peak peak;
  u128 sum = 0;
  std::int64_t window = 0;
  std::size_t first = 0;
  for (std::size_t j = 0; j < u.size(); ++j) {
    const std::int64_t w = floor_div(u[j].at, period);
    if (j == 0 || w != window) {
      window = w;
      sum = 0;
      first = j;
    }
    sum += units(u[j].cost);
    if (sum > peak.units) peak = {sum, u[first].at, u[j].at};
  }
  return peak;
}

/// The most a sliding window counter can admit in a window of one period: every aligned
/// window holds at most `limit`, and a window (t − period, t] that reaches back into the
/// previous aligned window ends at most period − 2 into the current one, where that
/// window's `a` units (all in the previous one) still weigh at least `a·2/period`, so the
/// current one holds at most `limit − ceil(2a/period)`. Largest at a = limit:
/// `2·limit − ceil(2·limit/period)`, which `limit` units at the last nanosecond of a window
/// and as many as it then admits 2ns before the end of the next reach (tests/
/// properties_test.cpp, SlidingWindowCounterProperties). For per_minute(100): 199.
inline u128 sliding_window_counter_worst(const ratelimit::quota& q) {
  const u128 limit = units(q.limit);
  const auto period = static_cast<u128>(q.period.count());
  const u128 weighed = (2 * limit + period - 1) / period;
  return std::max(limit, 2 * limit - weighed);
}

/// What a trace's checks measured.
struct trace_stats {
  std::int64_t requests = 0;
  std::int64_t admissions = 0;
  std::int64_t retry_probes = 0;
  /// The most units admitted in any window of one period (admission instants).
  window_peak busiest{};

  /// Adds another trace's counts; `busiest` stays this one's.
  trace_stats& operator+=(const trace_stats& other) {
    requests += other.requests;
    admissions += other.admissions;
    retry_probes += other.retry_probes;
    return *this;
  }
};

/// Whether traces that measured `total` exercised the checks: a run that admits, rejects or
/// retries almost nothing checks little. Records the counts as properties of the test.
inline testing::AssertionResult exercised(const trace_stats& total) {
  testing::Test::RecordProperty("requests", std::to_string(total.requests));
  testing::Test::RecordProperty("admissions", std::to_string(total.admissions));
  testing::Test::RecordProperty("retry_probes", std::to_string(total.retry_probes));
  std::ostringstream missing;
  if (total.admissions <= total.requests / 10) missing << " admissions <= requests / 10;";
  if (total.requests - total.admissions <= total.requests / 10) {
    missing << " rejections <= requests / 10;";
  }
  if (total.retry_probes <= total.requests / 20) missing << " retry probes <= requests / 20;";
  if (missing.str().empty()) return testing::AssertionSuccess();
  return testing::AssertionFailure()
         << total.requests << " requests, " << total.admissions << " admitted, "
         << total.retry_probes << " retry probes:" << missing.str();
}

/// Units admitted, at their admission instant (`real` time), or at their service instant.
inline std::vector<units_at> admitted_units(const std::vector<event>& trace, bool served = false) {
  std::vector<units_at> u;
  for (const event& e : trace) {
    if (!e.decision.allowed) continue;
    const std::int64_t delay = served ? e.decision.delay.count() : 0;
    u.push_back({static_cast<std::int64_t>(i128{e.real} + delay), e.cost});
  }
  return u;
}

/// The rate bounds of algorithm A over a trace, in real time. `aligned`: the trace's clock
/// never stepped, so its aligned windows are the algorithm's.
template <ratelimit::algorithm A>
testing::AssertionResult rate_bounds(const ratelimit::quota& q, const std::vector<event>& trace,
                                     trace_stats& stats, bool aligned = true) {
  namespace algorithms = ratelimit::algorithms;
  const std::vector<units_at> admitted = admitted_units(trace);
  const std::int64_t period = q.period.count();
  stats.busiest = busiest_window(admitted, period);
  const auto too_many = [&](const char* what, const window_peak& peak, u128 most) {
    return testing::AssertionFailure()
           << to_string(peak.units) << " units admitted in " << what << " [" << peak.from << ", "
           << peak.to << "], above " << to_string(most);
  };
  if constexpr (std::is_same_v<A, algorithms::token_bucket>) {
    return bucket_bound(admitted, q);
  } else if constexpr (std::is_same_v<A, algorithms::leaky_bucket>) {
    if (auto r = bucket_bound(admitted, q); !r) return r << " (admission instants)";
    const std::vector<units_at> served = admitted_units(trace, true);
    if (auto r = departures_are_spaced(served, q); !r) return r;
    // The bound over service instants follows, with the nanosecond of rounding.
    const std::int64_t rounding = period % q.limit == 0 ? 0 : 1;
    if (auto r = bucket_bound(served, q, rounding); !r) return r << " (service instants)";
    return testing::AssertionSuccess();
  } else if constexpr (std::is_same_v<A, algorithms::sliding_log>) {
    if (stats.busiest.units > units(q.limit)) {
      return too_many("a window of one period", stats.busiest, units(q.limit));
    }
    return testing::AssertionSuccess();
  } else {
    constexpr bool fixed = std::is_same_v<A, algorithms::fixed_window>;
    const u128 most = fixed ? 2 * units(q.limit) : sliding_window_counter_worst(q);
    if (stats.busiest.units > most) return too_many("a window of one period", stats.busiest, most);
    if (aligned) {
      const window_peak in_window = busiest_aligned_window(admitted, period);
      if (in_window.units > units(q.limit)) {
        return too_many("one aligned window", in_window, units(q.limit));
      }
    }
    return testing::AssertionSuccess();
  }
}

// ---------------------------------------------------------------------------------------
// Random traces

/// A limiter-like callable: `decide(key, at, cost)` decides a request of `cost` units for
/// `key` at instant `at` (ns since the clock's epoch), as `try_acquire` would; for one key
/// `at` never decreases unless the trace steps the clock back.
///
/// `decide_with(limiter, clock)` makes one of a limiter on a manual_clock.
template <class Limiter>
auto decide_with(Limiter& limiter, ratelimit::manual_clock clock) {
  return [&limiter, clock](std::string_view key, std::int64_t at,
                           std::int64_t cost) mutable -> ratelimit::decision {
    clock.set(ratelimit::manual_clock::time_point{std::chrono::nanoseconds{at}});
    return limiter.try_acquire(key, cost);
  };
}

struct trace_options {
  int steps = 500;
  /// The first request's instant, and the latest any request may have.
  std::int64_t start = 0;
  std::int64_t end = int64_max;
  /// nanoseconds::max() only for a cost above the capacity: false where instants near the
  /// end of the clock may saturate a wait.
  bool strict_never = true;
  /// Sometimes step the clock back, by up to two periods or (rarely) by a day or 100
  /// periods; time itself goes on. The rate bounds are then checked in real time, and the
  /// twin is not used (a rejection that saw a later instant than the twin did is not a
  /// consumption, but it does tell them apart).
  bool steps_back = false;
  /// Sometimes ask for more than the capacity (never admitted).
  bool above_capacity = true;
  /// The key is new when the trace starts: the leaky bucket's delays can be worked out.
  bool from_fresh = true;
  /// The keys `decide` gets.
  std::string_view key = "main";
  std::string_view twin = "twin";
};

/// Drives `decide` through `o.steps` seeded random requests and checks every property above
/// for algorithm A; `stats`, if given, receives what was measured.
template <ratelimit::algorithm A, class Decide>
testing::AssertionResult check_random_trace(const ratelimit::quota& q, std::uint64_t seed,
                                            const trace_options& o, Decide&& decide,
                                            trace_stats* stats = nullptr) {
  using std::chrono::nanoseconds;
  constexpr bool shaping = std::is_same_v<A, ratelimit::algorithms::leaky_bucket>;
  const std::int64_t capacity = ratelimit_test::capacity<A>(q);
  const i128 period = q.period.count();
  const i128 interval = std::max<i128>(1, period / q.limit);
  std::mt19937_64 random(seed);
  const auto below = [&](std::uint64_t n) { return random() % n; };
  // Uniform in [lo, hi], in 128 bits so that no span wraps.
  const auto between = [&](i128 lo, i128 hi) -> i128 {
    if (hi <= lo) return lo;
    const auto span = static_cast<u128>(hi - lo) + 1;
    const u128 high = random();  // two statements: the order of the draws is fixed
    const u128 draw = (high << 64 | random()) % span;
    return lo + static_cast<i128>(draw);
  };

  std::vector<event> trace;
  std::ostringstream failures;
  int failed = 0;
  const auto fail = [&](const event& e, const std::string& what) {
    if (++failed <= 5) {
      failures << "\n  request " << trace.size() << " (cost " << e.cost << " at " << e.at
               << ", real " << e.real << "): " << what << " " << describe(e.decision);
    }
  };

  struct planned {
    std::int64_t at;
    std::int64_t cost;
  };
  std::deque<planned> retries;    // the same request again, before and at its retry instant
  std::int64_t retry_due = 0;     // the instant the retries' request is admitted at
  std::int64_t clock_offset = 0;  // real time − the clock's reading
  std::int64_t now = o.start;     // the clock's reading
  std::optional<i128> drains_at;  // a leaky bucket's tat, in 1/limit ns: none while fresh
  ratelimit::decision last{};
  trace_stats measured;

  for (int i = 0; i < o.steps; ++i) {
    bool retrying = !retries.empty();
    std::int64_t at;
    std::int64_t cost;
    if (retrying) {
      at = retries.front().at;
      cost = retries.front().cost;
      retries.pop_front();
    } else {
      // The next instant: aimed at the edges where rounding errors live.
      i128 step;
      const std::uint64_t pick = below(100);
      const auto finite = [](nanoseconds d) { return d > nanoseconds::zero() && d != d.max(); };
      if (pick < 15) {
        step = 0;
      } else if (pick < 27) {
        step = between(1, 10);
      } else if (pick < 41) {
        step = between(0, interval);
      } else if (pick < 49) {
        step = finite(last.retry_after) ? last.retry_after.count() - i128(below(2))
                                        : between(0, interval);
      } else if (pick < 56) {
        step = finite(last.reset_after) ? last.reset_after.count() - i128(below(2))
                                        : between(0, period);
      } else if (pick < 66) {  // 1ns before, at, or 1ns after the next window's start
        const i128 edge = (i128{floor_div(now, q.period.count())} + 1) * period;
        step = edge - now - 1 + i128(below(3));
      } else if (pick < 82) {
        step = between(0, period);
      } else if (pick < 93) {
        step = between(0, 3 * period);
      } else if (pick < 98) {
        step = between(0, 100 * period);
      } else {
        step = between(0, 1'000'000'000'000'000);
      }
      if (o.steps_back && below(100) < 6) {
        const i128 back = below(10) == 0 ? std::max<i128>(86'400'000'000'000, 100 * period)
                                         : between(1, 2 * period);
        const i128 stepped = std::max<i128>(i128{now} - back, int64_min);
        clock_offset = static_cast<std::int64_t>(clock_offset + (now - stepped));
        step = stepped - now;
      }
      now = static_cast<std::int64_t>(std::clamp<i128>(i128{now} + step, int64_min, o.end));
      at = now;
      const std::uint64_t c = below(100);
      cost = c < 68   ? 1
             : c < 80 ? static_cast<std::int64_t>(between(1, capacity))
             : c < 85 || (c < 92 && !o.above_capacity) ? capacity
             : c < 89 ? (capacity < int64_max ? capacity + 1 : capacity)
             : c < 92 ? int64_max
                      : static_cast<std::int64_t>(between(1, std::min<std::int64_t>(capacity, 3)));
    }
    now = at;

    const event e{at, static_cast<std::int64_t>(i128{at} + clock_offset), cost,
                  decide(o.key, at, cost)};
    trace.push_back(e);
    const ratelimit::decision& d = e.decision;
    ++measured.requests;
    measured.admissions += d.allowed ? 1 : 0;

    // What every decision says.
    if (d.limit != q.limit || d.degraded) fail(e, "wrong limit, or degraded:");
    if (d.remaining < 0 || d.reset_after < nanoseconds::zero()) fail(e, "negative field:");
    if (d.allowed && d.retry_after != nanoseconds::zero()) fail(e, "admitted with a retry_after:");
    if (!d.allowed && d.retry_after <= nanoseconds::zero()) fail(e, "rejected without a wait:");
    if ((!shaping || !d.allowed) && d.delay != nanoseconds::zero()) fail(e, "unexpected delay:");
    if (d.delay < nanoseconds::zero() || i128{at} + d.delay.count() > int64_max) {
      fail(e, "delay out of range:");
    }
    const bool never = !d.allowed && d.retry_after == nanoseconds::max();
    if (never && cost <= capacity && o.strict_never) fail(e, "never, for a cost it can take:");
    if (!never && cost > capacity) fail(e, "a cost above the capacity, not refused for ever:");

    // retry_after: the same request, before its instant and at it.
    if (retrying) {
      ++measured.retry_probes;
      if (at < retry_due && (d.allowed || i128{at} + d.retry_after.count() != retry_due)) {
        fail(e, "retried " + std::to_string(retry_due - at) + "ns early, not rejected until " +
                    std::to_string(retry_due) + ":");
      }
      if (at == retry_due && !d.allowed) fail(e, "retried at its retry_after, rejected:");
    } else if (!d.allowed && !never && i128{at} + d.retry_after.count() <= o.end && below(2) == 0) {
      retry_due = static_cast<std::int64_t>(at + d.retry_after.count());
      if (d.retry_after.count() > 2 && below(2) == 0) {
        retries.push_back({static_cast<std::int64_t>(between(at + 1, retry_due - 2)), cost});
      }
      retries.push_back({retry_due - 1, cost});
      retries.push_back({retry_due, cost});
    }

    // The leaky bucket's delay, from its own tat (with a clock that steps back, a storage
    // may forget a drained queue that a stepped-back clock would still see).
    if constexpr (shaping) {
      if (d.allowed && !o.steps_back && o.from_fresh) {
        const i128 now_units = i128{at} * q.limit;
        const i128 start = drains_at ? std::max(*drains_at, now_units) : now_units;
        const i128 delay = (start - now_units + q.limit - 1) / q.limit;
        if (d.delay.count() != delay) {
          fail(e, "delay is not max(0, tat − now) rounded up, " +
                      to_string(static_cast<u128>(delay)) + "ns:");
        }
        drains_at = start + i128{cost} * q.period.count();
      }
    }

    // A rejection consumes nothing: the twin never saw the rejected requests.
    if (d.allowed && !o.steps_back) {
      const ratelimit::decision twin = decide(o.twin, at, cost);
      if (!same(twin, d))
        fail(e, "the twin, without the rejected requests, got " + describe(twin) + "; this key:");
    }
    last = d;
  }

  auto result = rate_bounds<A>(q, trace, measured, !o.steps_back);
  if (stats != nullptr) *stats = measured;
  if (failed > 0) {
    return testing::AssertionFailure() << failed << " failed decisions in " << describe(q)
                                       << ", seed " << seed << ":" << failures.str();
  }
  if (!result) return result << " in " << describe(q) << ", seed " << seed;
  return result;
}

}  // namespace ratelimit_test::properties
