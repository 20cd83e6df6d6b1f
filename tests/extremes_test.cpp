// Issue 7, item 3: the extremes, in memory (the Redis half is another file's). Rates from 1
// per 100 years to 2^62 per nanosecond, bursts and limits up to 2^62 (quota::max_units),
// costs up to INT64_MAX, clock values at both ends of int64. Every result is exact, or,
// where the exact instant lies past the end of the clock, saturated to the conservative
// side: nanoseconds::max() ("not within this clock"), and never an admission the quota
// does not allow. The suite runs under -fsanitize=undefined and clang's integer checks, so
// an overflow on the way fails too.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <ratelimit/ratelimit.hpp>
#include <string>
#include <type_traits>
#include <vector>

#include "support/algorithm_types.hpp"
#include "support/properties.hpp"
#include "support/random_requests.hpp"
#include "support/seed.hpp"

namespace {

using namespace std::chrono_literals;
namespace algorithms = ratelimit::algorithms;
namespace properties = ratelimit_test::properties;
using ratelimit::decision;
using ratelimit::manual_clock;
using ratelimit::quota;
using ratelimit_test::describe;
using ratelimit_test::i128;
using ratelimit_test::int64_max;
using ratelimit_test::int64_min;
using std::chrono::nanoseconds;

constexpr std::int64_t max_units = quota::max_units;  // 2^62
constexpr nanoseconds hundred_years{100LL * 365 * 24 * 3'600'000'000'000};

/// From 1 per 100 years to 2^62 per nanosecond, with bursts and limits up to 2^62.
std::vector<quota> rate_ladder() {
  return {
      quota::per(1, hundred_years),
      quota::per(7, hundred_years).with_burst(max_units),
      quota::per(1, 8760h),
      quota::per_hour(1),
      quota::per_minute(7),
      quota::per(10, 13s),
      quota::per_second(1),
      quota::per_second(1).with_burst(max_units),
      quota::per_second(1'000'000'000),
      quota::per(max_units, 1s),
      quota::per(1, 1ns),
      quota::per(3, 1ns),
      quota::per(1, 1ns).with_burst(max_units),
      quota::per(max_units, 1ns),
      quota::per(max_units, 1ns).with_burst(1),
  };
}

i128 floor_div(i128 a, i128 b) { return a / b - (a % b != 0 && a < 0 ? 1 : 0); }

/// The instant a fresh key that took its whole capacity at `t` next admits one unit,
/// worked out from DESIGN section 2 (not from the library), exactly, in 128 bits.
template <class A>
i128 next_unit_after_full(const quota& q, std::int64_t t) {
  const i128 period = q.period.count();
  const i128 limit = q.limit;
  const i128 interval = (period + limit - 1) / limit;  // period/limit ns, rounded up
  if constexpr (std::is_same_v<A, algorithms::token_bucket>) {
    return t + interval;  // one unit refills
  } else if constexpr (std::is_same_v<A, algorithms::leaky_bucket>) {
    // One unit drains from the queue; the unit then admitted is served when the whole
    // queue has drained, which must be within the clock: else it never is.
    const i128 drained = t + (i128{q.burst} * period + limit - 1) / limit;
    return drained > int64_max ? drained : t + interval;
  } else if constexpr (std::is_same_v<A, algorithms::sliding_log>) {
    return i128{t} + period;  // the admissions leave the window
  } else if constexpr (std::is_same_v<A, algorithms::fixed_window>) {
    return (floor_div(t, period) + 1) * period;  // the next window
  } else {
    // The next window, once the full one before weighs at most limit − 1: limit·(period −
    // e) <= (limit − 1)·period, e >= period/limit; else the window after, which weighs
    // nothing before it.
    const i128 next = (floor_div(t, period) + 1) * period;
    return interval < period ? next + interval : next + period;
  }
}

/// A fresh key of a limiter on its own manual_clock.
template <class A>
class fresh_key {
 public:
  explicit fresh_key(const quota& q) : limiter_(q, clock_, ratelimit::in_memory_storage_st{}) {}

  decision at(std::int64_t t, std::int64_t cost) {
    clock_.set(manual_clock::time_point{nanoseconds{t}});
    return limiter_.try_acquire("k", cost);
  }

 private:
  manual_clock clock_;
  ratelimit::basic_limiter<A, manual_clock, ratelimit::in_memory_storage_st> limiter_;
};

/// Takes the whole capacity at `t`, then asks for one unit more: rejected, with the exact
/// retry_after when the next unit comes within the clock, else nanoseconds::max(); then
/// rejected 1ns before that instant and admitted at it (or still rejected at the last
/// instant of the clock).
template <class A>
void expect_full_then_exact_wait(const quota& q, std::int64_t t) {
  SCOPED_TRACE(describe(q) + " at " + std::to_string(t));
  const std::int64_t capacity = ratelimit_test::capacity<A>(q);
  fresh_key<A> key(q);
  const decision all = key.at(t, capacity);
  ASSERT_TRUE(all.allowed) << describe(all);
  EXPECT_EQ(all.remaining, 0);
  const decision more = key.at(t, 1);
  ASSERT_FALSE(more.allowed) << describe(more);
  const i128 next = next_unit_after_full<A>(q, t);
  if (next - t >= int64_max || next > int64_max) {
    // A wait of INT64_MAX ns or more can't be told apart from "never": both are max().
    EXPECT_EQ(more.retry_after, nanoseconds::max()) << describe(more);
    if (t < int64_max - 1) {
      EXPECT_FALSE(key.at(int64_max - 1, 1).allowed) << "admitted before the end of the clock";
    }
    if (next > int64_max) {
      EXPECT_FALSE(key.at(int64_max, 1).allowed) << "admitted at the last instant of the clock";
    }
    return;
  }
  EXPECT_EQ(more.retry_after.count(), static_cast<std::int64_t>(next - t)) << describe(more);
  const auto at = static_cast<std::int64_t>(next);
  EXPECT_FALSE(key.at(at - 1, 1).allowed) << "1ns early";
  EXPECT_TRUE(key.at(at, 1).allowed) << "on time";
}

template <class A>
class Extremes : public testing::Test {};

using ratelimit_test::algorithm_name;
using ratelimit_test::all_algorithms;
TYPED_TEST_SUITE(Extremes, all_algorithms, algorithm_name);

TYPED_TEST(Extremes, RatesFromOnePerHundredYearsToOnePerNanosecondWaitExactly) {
  for (const quota& q : rate_ladder()) {
    expect_full_then_exact_wait<TypeParam>(q, 0);
    expect_full_then_exact_wait<TypeParam>(q, 1'234'567'890'123);
    expect_full_then_exact_wait<TypeParam>(q, -987'654'321'987);
  }
}

TYPED_TEST(Extremes, TheFirstInstantsOfTheClockWaitExactly) {
  for (const quota& q : rate_ladder()) {
    expect_full_then_exact_wait<TypeParam>(q, int64_min);
    expect_full_then_exact_wait<TypeParam>(q, int64_min + 1);
  }
}

// Near the end of the clock the next unit often comes after its last instant: the wait is
// then nanoseconds::max(), and nothing is admitted before the end.
TYPED_TEST(Extremes, TheLastInstantsOfTheClockWaitExactlyOrSaturate) {
  int saturated = 0;
  for (const quota& q : rate_ladder()) {
    for (const std::int64_t before_the_end : {0LL, 1LL, 2LL, 1'000'000'000LL}) {
      const std::int64_t t = int64_max - before_the_end;
      expect_full_then_exact_wait<TypeParam>(q, t);
      saturated += next_unit_after_full<TypeParam>(q, t) > int64_max ? 1 : 0;
    }
  }
  EXPECT_GT(saturated, 10);
}

// A cost above the capacity is never admitted: retry_after is nanoseconds::max(), and it
// consumes nothing. Costs up to INT64_MAX, with capacities up to 2^62.
TYPED_TEST(Extremes, CostsUpToInt64MaxAboveTheCapacityAreNeverAdmittedAndConsumeNothing) {
  using A = TypeParam;
  for (const quota& q : rate_ladder()) {
    const std::int64_t capacity = ratelimit_test::capacity<A>(q);
    for (const std::int64_t t : {int64_min, std::int64_t{0}, int64_max}) {
      SCOPED_TRACE(describe(q) + " at " + std::to_string(t));
      fresh_key<A> key(q);
      for (const std::int64_t cost : {capacity + 1, max_units + 1, int64_max - 1, int64_max}) {
        const decision d = key.at(t, cost);
        EXPECT_FALSE(d.allowed) << "cost " << cost;
        EXPECT_EQ(d.retry_after, nanoseconds::max()) << "cost " << cost;
        EXPECT_EQ(d.remaining, capacity) << "cost " << cost;
      }
      EXPECT_TRUE(key.at(t, capacity).allowed);
      EXPECT_EQ(key.at(t, int64_max).retry_after, nanoseconds::max());
    }
  }
}

// The largest cost a quota takes, 2^62 at once, is decided exactly: admitted whole, and the
// bucket then holds nothing (remaining 0, one unit waits its interval).
TYPED_TEST(Extremes, BurstsAndLimitsOfTwoToThe62AreTakenWhole) {
  using A = TypeParam;
  constexpr bool bucket =
      std::is_same_v<A, algorithms::token_bucket> || std::is_same_v<A, algorithms::leaky_bucket>;
  const std::vector<quota> quotas =
      bucket ? std::vector<quota>{quota::per_second(1).with_burst(max_units),
                                  quota::per(max_units, 1ns),
                                  quota::per(3, hundred_years).with_burst(max_units)}
             : std::vector<quota>{quota::per(max_units, 1s), quota::per(max_units, 1ns),
                                  quota::per(max_units, hundred_years)};
  for (const quota& q : quotas) {
    ASSERT_EQ(ratelimit_test::capacity<A>(q), max_units);
    expect_full_then_exact_wait<A>(q, 0);
    // Half, then the other half, then nothing. (A leaky bucket serves the second half when
    // the first has drained: not at all if that is after the end of the clock.)
    fresh_key<A> key(q);
    EXPECT_TRUE(key.at(0, max_units / 2).allowed);
    const decision second = key.at(0, max_units / 2);
    const bool served_in_time =
        (i128{max_units / 2} * q.period.count() + q.limit - 1) / q.limit <= int64_max;
    constexpr bool queue = std::is_same_v<A, algorithms::leaky_bucket>;
    EXPECT_EQ(second.allowed, !queue || served_in_time);
    if (second.allowed) {
      EXPECT_EQ(second.remaining, 0);
    }
    EXPECT_FALSE(key.at(0, 1).allowed);
  }
}

// Random traces at the extremes of quotas and of the clock keep every rate bound and answer
// every retry_after exactly (or saturated past the end of the clock).
TYPED_TEST(Extremes, RandomTracesAtTheExtremesKeepTheRateBounds) {
  using A = TypeParam;
  const std::uint64_t base = ratelimit_test::base_seed();
  std::vector<quota> quotas = rate_ladder();
  for (const quota& q : ratelimit_test::extreme_quotas()) quotas.push_back(q);
  std::uint64_t index = 0;
  for (const quota& q : quotas) {
    const i128 span = std::min<i128>(i128{q.period.count()} * 3, int64_max / 2);
    for (const i128 start : {i128{int64_min}, i128{0}, i128{int64_max} - span}) {
      const std::uint64_t seed = base + 6000 + index++;
      SCOPED_TRACE("seed " + std::to_string(seed) + ", " + describe(q) + ", from " +
                   std::to_string(static_cast<std::int64_t>(start)));
      manual_clock clock;
      ratelimit::basic_limiter<A, manual_clock, ratelimit::in_memory_storage_st> limiter{
          q, clock, ratelimit::in_memory_storage_st{}};
      const properties::trace_options o{
          .steps = 150, .start = static_cast<std::int64_t>(start), .strict_never = false};
      EXPECT_TRUE(
          properties::check_random_trace<A>(q, seed, o, properties::decide_with(limiter, clock)));
    }
  }
}

}  // namespace
