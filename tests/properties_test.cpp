// Issue 7, item 1: the properties every algorithm keeps, checked on the decisions alone.
//
// * Seeded random traces through `basic_limiter<A, manual_clock, in_memory_storage>` and
//   through `in_memory_storage_st`, held to tests/support/properties.hpp: the buckets'
//   `burst + floor((t_j − t_i)·limit/period)` over every interval (the leaky bucket over
//   its admission instants and, with its departures spaced, over its service instants), the
//   sliding log's limit in every window, the windows' limit in every aligned window, a
//   rejection consuming nothing, retry_after exact. tests/redis_properties_test.cpp holds
//   redis_storage to the same checks.
// * The fixed window's documented 2x burst across a window edge, shown.
// * The worst window of one period for the sliding window counter, measured: an adversary
//   gets `2·limit − ceil(2·limit/period)` through, every time (199 for per_minute(100):
//   1.99x; the bound is proved in tests/support/properties.hpp). Seeded random traces, aimed
//   at window edges, measured 1.71x with the default seed (12 units of per_minute(7) in one
//   minute; the property `worst_ratio`) and with seeds 1 to 8 from 1.67x to the bound
//   itself (31 units of a limit of 16, 1.94x). The README's paragraph on the counter's error
//   ("up to 1.5 × limit for bursts late in a window", "1.49x on one-second bursts every five
//   seconds that straddle an edge") reports what its simulated traffic met, not the worst
//   case, which approaches the fixed window's 2x.
// * 10^7 ticks at 7/min, 10/13s, 1/hour and 10^9/s: a client that takes everything it may
//   is admitted exactly the total the quota allows, computed from the quota alone, at
//   every instant it asks (no drift either way).
//
// The seed is RATELIMIT_TEST_SEED's (tests/support/seed.hpp), printed with every failure.

#include "support/properties.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <ratelimit/ratelimit.hpp>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

#include "support/algorithm_types.hpp"
#include "support/random_requests.hpp"
#include "support/seed.hpp"

namespace {

using namespace std::chrono_literals;
namespace algorithms = ratelimit::algorithms;
namespace properties = ratelimit_test::properties;
using ratelimit::decision;
using ratelimit::manual_clock;
using ratelimit::quota;
using ratelimit_test::i128;
using ratelimit_test::seed_text;
using ratelimit_test::u128;
using std::chrono::nanoseconds;

template <class A, class Storage>
using limiter_on = ratelimit::basic_limiter<A, manual_clock, Storage>;

/// Awkward quotas in turn, and every third trace a random one: limit 1..20, period up to
/// 100s, burst 1..40.
quota quota_for_trace(int i, std::mt19937_64& random) {
  const std::vector<quota> awkward = ratelimit_test::awkward_quotas();
  if (i % 3 != 2) return awkward[static_cast<std::size_t>(i) % awkward.size()];
  const auto up_to = [&](std::uint64_t most) {
    return 1 + static_cast<std::int64_t>(random() % most);
  };
  return quota::per(up_to(20), nanoseconds{up_to(100'000'000'000)}).with_burst(up_to(40));
}

/// `traces` random traces of `steps` requests through a limiter on `Storage`.
template <class A, class Storage>
void expect_properties_hold(int traces, int steps) {
  const std::uint64_t base = ratelimit_test::base_seed();
  std::mt19937_64 random(base);
  properties::trace_stats total;
  for (int i = 0; i < traces; ++i) {
    const std::uint64_t seed = base + static_cast<std::uint64_t>(i);
    const quota q = quota_for_trace(i, random);
    SCOPED_TRACE(seed_text(seed) + ", " + ratelimit_test::describe(q));
    manual_clock clock;
    limiter_on<A, Storage> limiter{q, clock, Storage{}};
    const properties::trace_options o{
        .steps = steps,
        .start = static_cast<std::int64_t>(random() % 2'000'000'000'000) - 1'000'000'000'000};
    properties::trace_stats stats;
    EXPECT_TRUE(properties::check_random_trace<A>(q, seed, o,
                                                  properties::decide_with(limiter, clock), &stats));
    total += stats;
  }
  EXPECT_TRUE(properties::exercised(total));
}

template <class A>
class Properties : public testing::Test {};

using ratelimit_test::algorithm_name;
using ratelimit_test::all_algorithms;
TYPED_TEST_SUITE(Properties, all_algorithms, algorithm_name);

TYPED_TEST(Properties, HoldOnRandomTracesThroughTheInMemoryStorage) {
  expect_properties_hold<TypeParam, ratelimit::in_memory_storage>(42, 400);
}

TYPED_TEST(Properties, HoldOnRandomTracesThroughTheSingleThreadedInMemoryStorage) {
  expect_properties_hold<TypeParam, ratelimit::in_memory_storage_st>(42, 400);
}

// The checks themselves fail when they should: each is fed a trace that breaks it by one.
TEST(PropertyChecks, CatchATraceOneUnitOverTheBound) {
  using properties::units_at;
  const quota q = quota::per_minute(7).with_burst(3);  // one unit every 60/7 s
  const std::int64_t interval = 8'571'428'572;         // ceil(60s / 7)
  EXPECT_TRUE(properties::bucket_bound({{0, 3}, {interval, 1}}, q));
  EXPECT_FALSE(properties::bucket_bound({{0, 3}, {interval - 1, 1}}, q));
  EXPECT_FALSE(properties::bucket_bound({{5, 2}, {5, 2}}, q));
  EXPECT_TRUE(properties::departures_are_spaced({{0, 1}, {interval, 1}}, q));
  // 60s/7 is not a whole number of nanoseconds: departures may be 1ns closer, no more.
  EXPECT_TRUE(properties::departures_are_spaced({{0, 1}, {interval - 1, 1}}, q));
  EXPECT_FALSE(properties::departures_are_spaced({{0, 1}, {interval - 2, 1}}, q));
  const quota whole = quota::per_second(10).with_burst(3);  // 100ms exactly
  EXPECT_FALSE(properties::departures_are_spaced({{0, 1}, {99'999'999, 1}}, whole));
  EXPECT_EQ(
      properties::busiest_window({{0, 3}, {59'999'999'999, 4}, {60'000'000'000, 1}}, 60'000'000'000)
          .units,
      7u);
  EXPECT_EQ(
      properties::busiest_aligned_window({{59'999'999'999, 4}, {60'000'000'000, 1}}, 60'000'000'000)
          .units,
      4u);
}

// The leaky bucket's service instants are its admission instants plus `delay`, rounded up
// to the nanosecond: where period/limit is not a whole number of nanoseconds, a request
// served late by that rounding may be followed by one served on time, less than an interval
// later. The exact departures keep the bound; the rounded ones keep it within 1ns, which is
// why the checks allow that nanosecond there (and only there).
TEST(LeakyBucketProperties, ServiceInstantsRoundedUpCrowdTheBoundByOneNanosecond) {
  const quota q = quota::per(2, 5ns).with_burst(2);  // one every 2.5ns, 2 queued at most
  std::vector<properties::units_at> admitted, served;
  manual_clock clock;
  limiter_on<algorithms::leaky_bucket, ratelimit::in_memory_storage_st> queue{
      q, clock, ratelimit::in_memory_storage_st{}};
  for (const auto& [at, cost, delay] : {std::tuple{0, 1, 0}, {0, 1, 3}, {5, 2, 0}}) {
    clock.set(manual_clock::time_point{nanoseconds{at}});
    const decision d = queue.try_acquire("k", cost);
    ASSERT_TRUE(d.allowed);
    ASSERT_EQ(d.delay, nanoseconds{delay});  // the second leaves at 2.5ns, rounded up to 3ns
    admitted.push_back({at, cost});
    served.push_back({at + delay, cost});
  }
  // 3 units served in [3ns, 5ns]: burst 2 + floor(2ns × 2/5ns) = 2; the exact departures,
  // 2.5ns and 5ns, give 2 + floor(2.5ns × 2/5ns) = 3.
  EXPECT_TRUE(properties::bucket_bound(admitted, q));
  EXPECT_FALSE(properties::bucket_bound(served, q));
  EXPECT_TRUE(properties::bucket_bound(served, q, 1));
  EXPECT_TRUE(properties::departures_are_spaced(served, q));
}

// ---------------------------------------------------------------------------------------
// The window algorithms across an edge

/// Admits as much as `decide` takes at `at`: the whole `capacity` at once, else one unit
/// and then what the decision says remains.
template <class Decide>
std::int64_t take_all(Decide& decide, std::int64_t at, std::int64_t capacity) {
  if (decide(at, capacity).allowed) return capacity;
  const decision first = decide(at, 1);
  if (!first.allowed) return 0;
  std::int64_t taken = 1;
  if (first.remaining > 0) {
    EXPECT_TRUE(decide(at, first.remaining).allowed) << "remaining " << first.remaining;
    taken += first.remaining;
  }
  EXPECT_FALSE(decide(at, 1).allowed) << "taken " << taken << " at " << at;
  return taken;
}

template <class A>
auto decide_on_a_limiter(const quota& q, std::vector<properties::units_at>& admitted) {
  struct decider {
    manual_clock clock;
    limiter_on<A, ratelimit::in_memory_storage_st> limiter;
    std::vector<properties::units_at>* admitted;
    decision operator()(std::int64_t at, std::int64_t cost) {
      clock.set(manual_clock::time_point{nanoseconds{at}});
      const decision d = limiter.try_acquire("k", cost);
      if (d.allowed) admitted->push_back({at, cost});
      return d;
    }
  };
  manual_clock clock;
  return decider{
      clock,
      limiter_on<A, ratelimit::in_memory_storage_st>{q, clock, ratelimit::in_memory_storage_st{}},
      &admitted};
}

TEST(FixedWindowProperties, PassesTwiceTheLimitWithinTwoNanosecondsAcrossAnEdge) {
  const quota q = quota::per_minute(100);
  std::vector<properties::units_at> admitted;
  auto decide = decide_on_a_limiter<algorithms::fixed_window>(q, admitted);
  EXPECT_EQ(take_all(decide, 60'000'000'000 - 1, 100), 100);
  EXPECT_EQ(take_all(decide, 60'000'000'000, 100), 100);
  const properties::window_peak peak = properties::busiest_window(admitted, q.period.count());
  EXPECT_EQ(peak.units, 200u);
  EXPECT_EQ(peak.to - peak.from, 1);
  // Never more than the limit in one aligned window, and within the 2x the checks allow.
  EXPECT_EQ(properties::busiest_aligned_window(admitted, q.period.count()).units, 100u);
  std::vector<properties::event> trace;
  for (const auto& u : admitted) trace.push_back({u.at, u.at, u.cost, decision{.allowed = true}});
  properties::trace_stats stats;
  EXPECT_TRUE(properties::rate_bounds<algorithms::fixed_window>(q, trace, stats));
  EXPECT_FALSE(properties::rate_bounds<algorithms::sliding_log>(q, trace, stats));
}

/// The adversary of the sliding window counter: everything it admits at the last
/// nanosecond of window k, then everything it admits 2ns before the end of window k+1, where
/// the first burst still weighs 2/period of itself. Returns the busiest window of one period.
u128 sliding_window_counter_adversary(const quota& q, std::int64_t k) {
  std::vector<properties::units_at> admitted;
  auto decide = decide_on_a_limiter<algorithms::sliding_window_counter>(q, admitted);
  const std::int64_t period = q.period.count();
  const std::int64_t first = take_all(decide, (k + 1) * period - 1, q.limit);
  const std::int64_t second = take_all(decide, (k + 2) * period - 2, q.limit);
  EXPECT_EQ(first, q.limit);
  EXPECT_TRUE(u128{static_cast<std::uint64_t>(first + second)} ==
              properties::sliding_window_counter_worst(q));
  return properties::busiest_window(admitted, period).units;
}

TEST(SlidingWindowCounterProperties, AnAdversaryGetsTwiceTheLimitLessTheWeightOfTwoNanoseconds) {
  struct expected {
    quota q;
    u128 worst;
  };
  const std::vector<expected> cases = {
      {quota::per_minute(100), 199},  // 1.99x
      {quota::per_minute(7), 13},     // 1.86x
      {quota::per(10, 13s), 19},      // 1.9x
      {quota::per_hour(1), 1},        // one unit: nothing to add
      {quota::per_second(1'000'000'000), 1'999'999'998},
      {quota::per(3, 10ns), 5},
      {quota::per(5, 7ns), 8},
      {quota::per(7, 1'000'000'007ns), 13},
  };
  for (const expected& c : cases) {
    SCOPED_TRACE(ratelimit_test::describe(c.q));
    EXPECT_EQ(properties::sliding_window_counter_worst(c.q), c.worst);
    for (const std::int64_t k : {0, 5, -3}) {
      EXPECT_EQ(sliding_window_counter_adversary(c.q, k), c.worst)
          << "windows " << k << ", " << k + 1;
    }
  }
}

// Seeded random traces measure the counter's worst window; the checks fail any trace that
// passes the bound above. The largest ratio to the limit is recorded as `worst_ratio`.
TEST(SlidingWindowCounterProperties, RandomTracesStayWithinTheWorstWindow) {
  using A = algorithms::sliding_window_counter;
  const std::uint64_t base = ratelimit_test::base_seed();
  std::mt19937_64 random(base);
  double worst_ratio = 0;
  std::string worst_at;
  for (int i = 0; i < 60; ++i) {
    const std::uint64_t seed = base + 1000 + static_cast<std::uint64_t>(i);
    const quota q = quota_for_trace(i, random);
    SCOPED_TRACE(seed_text(seed) + ", " + ratelimit_test::describe(q));
    manual_clock clock;
    limiter_on<A, ratelimit::in_memory_storage_st> limiter{q, clock,
                                                           ratelimit::in_memory_storage_st{}};
    properties::trace_stats stats;
    EXPECT_TRUE(properties::check_random_trace<A>(q, seed, {.steps = 400},
                                                  properties::decide_with(limiter, clock), &stats));
    const double ratio = static_cast<double>(stats.busiest.units) / static_cast<double>(q.limit);
    if (ratio > worst_ratio) {
      worst_ratio = ratio;
      worst_at = ratelimit_test::describe(q) + ", " + seed_text(seed);
    }
  }
  testing::Test::RecordProperty("worst_ratio", std::to_string(worst_ratio) + " (" + worst_at + ")");
  EXPECT_GT(worst_ratio, 1.0) << "the random traces never went past the limit: they test little";
  EXPECT_LT(worst_ratio, 2.0);
}

// ---------------------------------------------------------------------------------------
// No drift: 10^7 ticks

/// What a quota lets a client that takes everything it may, from `start` on, have taken
/// by each instant: computed from the quota alone, in exact rational arithmetic (integers
/// over `period`, floored). Meaningful where the algorithm promises a total:
/// * token and leaky bucket: `burst + floor((t − start)·limit/period)`, as long as the
///   bucket never fills (it would waste refill): the client asks again before it can;
/// * fixed window: `limit` per aligned window reached, as long as the client asks in every
///   window;
/// * sliding log: `limit` at `start` and again every period after it, as long as the client
///   asks at each of those instants.
/// Not for the sliding window counter: it admits what its weighing of the previous window
/// lets through, which depends on when the client asks, and promises no total but the
/// bounds the random traces check.
class allowance {
 public:
  enum class kind { bucket, fixed_window, sliding_log };

  allowance(kind k, const quota& q, std::int64_t start) : kind_(k), q_(q), start_(start) {}

  i128 allowed(std::int64_t t) const {
    const i128 elapsed = i128{t} - start_;
    switch (kind_) {
      case kind::bucket:
        return q_.burst + elapsed * q_.limit / period();
      case kind::fixed_window:
        return i128{q_.limit} * (window(t) - window(start_) + 1);
      case kind::sliding_log:
        return i128{q_.limit} * (elapsed / period() + 1);
    }
    return 0;
  }

  /// The first instant after `t` at which the allowance grows.
  i128 grows_at(std::int64_t t) const {
    const i128 elapsed = i128{t} - start_;
    switch (kind_) {
      case kind::bucket: {
        const i128 units = elapsed * q_.limit / period() + 1;
        return start_ + (units * period() + q_.limit - 1) / q_.limit;
      }
      case kind::fixed_window:
        return (window(t) + 1) * period();
      case kind::sliding_log:
        return start_ + (elapsed / period() + 1) * period();
    }
    return 0;
  }

  /// The latest instant a client that has taken `taken` may wait until without losing any
  /// allowance: the bucket is full then; the window after this one ends; the sliding log's
  /// next units are due.
  i128 may_wait_until(std::int64_t t, i128 taken) const {
    switch (kind_) {
      case kind::bucket:
        return start_ + taken * period() / q_.limit;
      case kind::fixed_window:
        return (window(t) + 2) * period() - 1;
      case kind::sliding_log:
        return grows_at(t);
    }
    return 0;
  }

 private:
  i128 period() const { return q_.period.count(); }
  i128 window(i128 t) const { return t >= 0 ? t / period() : -((-t + period() - 1) / period()); }

  kind kind_;
  quota q_;
  std::int64_t start_;
};

template <class A>
constexpr allowance::kind allowance_kind() {
  if constexpr (std::is_same_v<A, algorithms::fixed_window>) return allowance::kind::fixed_window;
  if constexpr (std::is_same_v<A, algorithms::sliding_log>) return allowance::kind::sliding_log;
  return allowance::kind::bucket;
}

struct awkward_rate {
  const char* name;
  quota q;
  std::int64_t tick;
  /// Admitted over 10^7 ticks, worked out by hand: buckets, sliding log.
  i128 bucket_total;
  i128 log_total;
};

// Ticks a little off round numbers, so that they never divide an interval.
const std::array<awkward_rate, 4> awkward_rates{{
    // 10^7 × 997µs = 9970s: 7 + floor(9970 × 7/60) = 7 + 1163; 7 × (floor(9970/60) + 1).
    {"7/min", quota::per_minute(7), 997'000, 1170, 1169},
    // 9999.83s: 10 + floor(9999.83 × 10/13) = 10 + 7692; 10 × (floor(9999.83/13) + 1).
    {"10/13s", quota::per(10, 13s), 999'983, 7702, 7700},
    // 9'999'999.37s: 1 + floor(9'999'999.37/3600) = 1 + 2777; the same for the log.
    {"1/hour", quota::per_hour(1), 999'999'937, 2778, 2778},
    // 10'000.03s: 10^9 + 10'000.03 × 10^9; 10^9 × (10'000 + 1).
    {"10^9/s", quota::per_second(1'000'000'000), 1'000'003, 10'001'030'000'000, 10'001'000'000'000},
}};

constexpr std::int64_t drift_ticks = 10'000'000;

bool long_tests() {
  const char* text = std::getenv("RATELIMIT_LONG_TESTS");
  return text != nullptr && std::string_view{text} == "1";
}

/// A client that takes everything the quota allows, as soon as it is allowed: at each
/// instant it asks for the units due (they must be admitted) and then for one more (it must
/// be rejected, with retry_after the instant the allowance next grows). It asks at
/// instants 1ns before and at those growths and at random ticks in between (`every_tick`:
/// at every tick, and 1ns before and at every growth rarer than ticks). Returns the total
/// admitted, or -1 at the first failure.
template <class A, class Decide>
i128 take_everything(const awkward_rate& rate, std::int64_t start, std::uint64_t seed,
                     bool every_tick, Decide&& decide) {
  const allowance a(allowance_kind<A>(), rate.q, start);
  const std::int64_t end = start + drift_ticks * rate.tick;
  std::mt19937_64 random(seed);
  i128 taken = 0;
  for (std::int64_t t = start;;) {
    const i128 due = a.allowed(t) - taken;
    if (due > 0) {
      const decision d = decide(t, static_cast<std::int64_t>(due));
      if (!d.allowed) {
        ADD_FAILURE() << static_cast<std::int64_t>(due) << " units due at " << t - start
                      << "ns after the start, rejected: " << ratelimit_test::describe(d)
                      << " (admitted so far: " << static_cast<std::int64_t>(taken) << ")";
        return -1;
      }
      taken += due;
    }
    const i128 grows = a.grows_at(t);
    const decision more = decide(t, 1);
    if (more.allowed || i128{t} + more.retry_after.count() != grows) {
      ADD_FAILURE() << "one more unit at " << t - start << "ns after the start ("
                    << static_cast<std::int64_t>(taken)
                    << " taken): " << ratelimit_test::describe(more) << "; the allowance grows "
                    << static_cast<std::int64_t>(grows - t) << "ns later";
      return -1;
    }
    if (t == end) return taken;

    const i128 latest = std::min<i128>(a.may_wait_until(t, taken), end);
    if (grows > latest && grows <= end) {
      ADD_FAILURE() << "the client would lose allowance: the tick or the quota is wrong";
      return -1;
    }
    const i128 next_tick = start + ((t - start) / rate.tick + 1) * rate.tick;
    i128 next;
    if (every_tick) {
      // Every tick, and 1ns before and at each growth where those are rarer than ticks (at
      // 10^9/s a bucket grows every nanosecond).
      const std::int64_t spacing = allowance_kind<A>() == allowance::kind::bucket
                                       ? (rate.q.period.count() + rate.q.limit - 1) / rate.q.limit
                                       : rate.q.period.count();
      const bool sparse = spacing > rate.tick;
      next = sparse ? std::min(next_tick, grows - 1 > t ? grows - 1 : grows) : next_tick;
    } else {
      const i128 last_tick = start + (latest - start) / rate.tick * rate.tick;
      switch (random() % 3) {
        case 0:
          next = grows - 1 > t ? grows - 1 : grows;
          break;
        case 1:
          next = grows;
          break;
        default:
          next = next_tick > last_tick
                     ? grows
                     : next_tick + static_cast<i128>(random() %
                                                     static_cast<std::uint64_t>(
                                                         (last_tick - next_tick) / rate.tick + 1)) *
                                       rate.tick;
      }
    }
    t = static_cast<std::int64_t>(std::min(next, latest));
  }
}

template <class A>
class Drift : public testing::Test {};

using exact_total_algorithms = testing::Types<algorithms::token_bucket, algorithms::leaky_bucket,
                                              algorithms::fixed_window, algorithms::sliding_log>;
TYPED_TEST_SUITE(Drift, exact_total_algorithms, algorithm_name);

// The default run asks at a few thousand instants of the 10^7 ticks (a client may skip ticks
// without losing anything, so the total is the same); RATELIMIT_LONG_TESTS=1 asks at every
// one of them too, straight through the algorithm, which takes minutes under sanitizers.
TYPED_TEST(Drift, TenMillionTicksAtAwkwardRatesAdmitExactlyWhatTheQuotaAllows) {
  using A = TypeParam;
  const std::uint64_t base = ratelimit_test::base_seed();
  for (const awkward_rate& rate : awkward_rates) {
    const std::uint64_t seed = base + 2000;
    SCOPED_TRACE(std::string(rate.name) + ", tick " + std::to_string(rate.tick) + "ns, " +
                 seed_text(seed));
    std::mt19937_64 random(seed);
    const std::int64_t start =
        static_cast<std::int64_t>(random() % 2'000'000'000'000) - 1'000'000'000'000;
    const allowance a(allowance_kind<A>(), rate.q, start);
    const i128 expected = a.allowed(start + drift_ticks * rate.tick);
    if constexpr (std::is_same_v<A, algorithms::fixed_window>) {
      const i128 windows = expected / rate.q.limit;  // 10^7 ticks span these windows
      EXPECT_TRUE(windows == rate.log_total / rate.q.limit ||
                  windows == rate.log_total / rate.q.limit + 1);
    } else if constexpr (std::is_same_v<A, algorithms::sliding_log>) {
      EXPECT_TRUE(expected == rate.log_total);
    } else {
      EXPECT_TRUE(expected == rate.bucket_total);
    }

    typename A::state state = A::fresh(rate.q, start);
    const auto step = [&](std::int64_t at, std::int64_t cost) {
      return A::step(state, rate.q, at, cost);
    };
    EXPECT_TRUE(take_everything<A>(rate, start, seed, false, step) == expected)
        << "straight through the algorithm";

    manual_clock clock;
    limiter_on<A, ratelimit::in_memory_storage_st> limiter{rate.q, clock,
                                                           ratelimit::in_memory_storage_st{}};
    const auto through_limiter = [&](std::int64_t at, std::int64_t cost) {
      clock.set(manual_clock::time_point{nanoseconds{at}});
      return limiter.try_acquire("client", cost);
    };
    EXPECT_TRUE(take_everything<A>(rate, start, seed, false, through_limiter) == expected)
        << "through a limiter on in_memory_storage_st";

    if (long_tests()) {
      typename A::state every = A::fresh(rate.q, start);
      const auto each_tick = [&](std::int64_t at, std::int64_t cost) {
        return A::step(every, rate.q, at, cost);
      };
      EXPECT_TRUE(take_everything<A>(rate, start, seed, true, each_tick) == expected)
          << "at every tick";
    }
  }
}

}  // namespace
