// The fixed window of DESIGN section 2, one rule per test, with the numbers written out.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <ratelimit/ratelimit.hpp>
#include <stdexcept>

#include "support/algorithm_probe.hpp"

namespace {

using namespace std::chrono_literals;
using ratelimit::decision;
using ratelimit::quota;
using window = ratelimit::algorithms::fixed_window;
using ratelimit_test::admitted_of;
using ratelimit_test::int64_max;
using ratelimit_test::int64_min;

constexpr auto never = std::chrono::nanoseconds::max();
constexpr std::int64_t seconds = 1'000'000'000;

TEST(FixedWindow, WindowsAreAlignedToTheClocksEpoch) {
  // 3 per 10s, first seen at 7s: its window is [0, 10s), not [7s, 17s).
  const quota q = quota::per(3, 10s);
  auto s = window::fresh(q, 7 * seconds);
  for (std::int64_t left : {2, 1, 0}) {
    const decision d = window::step(s, q, 7 * seconds, 1);
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.limit, 3);
    EXPECT_EQ(d.remaining, left);
    EXPECT_EQ(d.reset_after, 3s);
  }
  const decision fourth = window::step(s, q, 7 * seconds, 1);
  EXPECT_FALSE(fourth.allowed);
  EXPECT_EQ(fourth.retry_after, 3s);
  EXPECT_EQ(fourth.reset_after, 3s);
  EXPECT_EQ(fourth.delay, 0ns);

  const decision last_ns = window::step(s, q, 10 * seconds - 1, 1);
  EXPECT_FALSE(last_ns.allowed);
  EXPECT_EQ(last_ns.retry_after, 1ns);

  const decision next = window::step(s, q, 10 * seconds, 1);
  EXPECT_TRUE(next.allowed);
  EXPECT_EQ(next.remaining, 2);
  EXPECT_EQ(next.reset_after, 10s);
}

TEST(FixedWindow, AdmitsIffTheCountPlusTheCostFitsTheLimit) {
  const quota q = quota::per_minute(10);
  auto s = window::fresh(q, 0);
  EXPECT_EQ(window::step(s, q, 0, 4).remaining, 6);
  const decision seven = window::step(s, q, 1 * seconds, 7);
  EXPECT_FALSE(seven.allowed);
  EXPECT_EQ(seven.remaining, 6);
  EXPECT_EQ(seven.retry_after, 59s);
  const decision six = window::step(s, q, 2 * seconds, 6);
  EXPECT_TRUE(six.allowed);
  EXPECT_EQ(six.remaining, 0);
  EXPECT_FALSE(window::step(s, q, 3 * seconds, 1).allowed);
}

TEST(FixedWindow, PassesTwiceTheLimitAcrossAWindowEdge) {
  // 100 per minute: 100 in the last nanosecond of one window and 100 in the first of the
  // next, 200 within 1ns. This is the algorithm's documented weakness.
  const quota q = quota::per_minute(100);
  auto s = window::fresh(q, 0);
  EXPECT_EQ(admitted_of<window>(s, q, 60 * seconds - 1, 101), 100);
  EXPECT_EQ(admitted_of<window>(s, q, 60 * seconds, 101), 100);

  ratelimit::manual_clock clock;
  ratelimit::fixed_window<ratelimit::manual_clock> limiter{q, clock};
  clock.set(ratelimit::manual_clock::time_point{60s - 1ns});
  int admitted = 0;
  for (int i = 0; i < 101; ++i) admitted += limiter.try_acquire("key").allowed ? 1 : 0;
  clock.advance(1ns);
  for (int i = 0; i < 101; ++i) admitted += limiter.try_acquire("key").allowed ? 1 : 0;
  EXPECT_EQ(admitted, 200);
}

TEST(FixedWindow, RetryAfterIsTheWaitUntilTheWindowEnds) {
  const quota q = quota::per(3, 10s);
  auto s = window::fresh(q, 0);
  ASSERT_EQ(admitted_of<window>(s, q, 12'500'000'000, 3), 3);
  EXPECT_EQ(window::step(s, q, 12'500'000'000, 1).retry_after, 7'500ms);
  EXPECT_FALSE(window::step(s, q, 20 * seconds - 1, 1).allowed);
  EXPECT_TRUE(window::step(s, q, 20 * seconds, 1).allowed);
}

TEST(FixedWindow, RetryAfterIsExactToTheNanosecondInManyStates) {
  ratelimit_test::for_many_states<window>(ratelimit_test::retry_after_is_exact<window>);
}

TEST(FixedWindow, ResetAfterIsTheEndOfAWindowWithAdmissions) {
  const quota q = quota::per(3, 10s);
  auto s = window::fresh(q, 12 * seconds);
  EXPECT_EQ(window::step(s, q, 12 * seconds, 4).reset_after, 0ns);  // nothing counted yet
  EXPECT_EQ(window::step(s, q, 12'500'000'000, 1).reset_after, 7'500ms);
  EXPECT_FALSE(window::step(s, q, 20 * seconds - 1, 3).allowed);
  EXPECT_TRUE(window::step(s, q, 20 * seconds, 3).allowed);
}

TEST(FixedWindow, ResetAfterLeavesAKeyIndistinguishableFromAFreshOne) {
  ratelimit_test::for_many_states<window>(ratelimit_test::reset_after_is_exact<window>);
}

TEST(FixedWindow, RemainingIsTheLimitMinusTheCount) {
  const quota q = quota::per(3, 10s);
  auto s = window::fresh(q, 0);
  EXPECT_EQ(window::step(s, q, 0, 2).remaining, 1);
  EXPECT_EQ(window::step(s, q, 1, 2).remaining, 1);
  EXPECT_EQ(window::step(s, q, 2, 1).remaining, 0);
  EXPECT_EQ(window::step(s, q, 10 * seconds, 1).remaining, 2);
}

TEST(FixedWindow, TimesBeforeTheEpochAlignToo) {
  // [-10s, 0) is one window: -10s and -1ns share it, 0 starts the next.
  const quota q = quota::per(2, 10s);
  auto s = window::fresh(q, -10 * seconds);
  EXPECT_TRUE(window::step(s, q, -10 * seconds, 1).allowed);
  EXPECT_TRUE(window::step(s, q, -1, 1).allowed);
  const decision full = window::step(s, q, -1, 1);
  EXPECT_FALSE(full.allowed);
  EXPECT_EQ(full.retry_after, 1ns);
  EXPECT_EQ(admitted_of<window>(s, q, 0, 3), 2);
}

TEST(FixedWindow, CostAboveTheLimitIsNeverAdmittedAndConsumesNothing) {
  const quota q = quota::per(3, 10s);
  auto s = window::fresh(q, 0);
  for (std::int64_t cost : {std::int64_t{4}, quota::max_units, int64_max}) {
    const decision d = window::step(s, q, 0, cost);
    EXPECT_FALSE(d.allowed) << cost;
    EXPECT_EQ(d.retry_after, never) << cost;
    EXPECT_EQ(d.remaining, 3) << cost;
    EXPECT_EQ(d.reset_after, 0ns) << cost;
  }
  EXPECT_EQ(admitted_of<window>(s, q, 0, 4), 3);
}

TEST(FixedWindow, RejectionConsumesNothing) {
  const quota q = quota::per(3, 10s);
  auto s = window::fresh(q, 0);
  ASSERT_TRUE(window::step(s, q, 0, 2).allowed);
  EXPECT_FALSE(window::step(s, q, 0, 2).allowed);
  EXPECT_TRUE(window::step(s, q, 0, 1).allowed);
}

TEST(FixedWindow, RejectionConsumesNothingInManyStates) {
  ratelimit_test::for_many_states<window>(ratelimit_test::rejection_consumes_nothing<window>);
}

TEST(FixedWindow, NeverAdmitsMoreThanTheLimitInOneWindow) {
  // Random requests: the units admitted per window, counted here, never pass the limit.
  for (const quota& q : ratelimit_test::awkward_quotas()) {
    for (std::uint64_t seed = 1; seed <= 5; ++seed) {
      ratelimit_test::random_requests random(q, q.limit, seed);
      auto s = window::fresh(q, 0);
      std::map<std::int64_t, ratelimit_test::i128> admitted;
      decision d{};
      for (int i = 0; i < 500; ++i) {
        const ratelimit_test::request r = random.next(d);
        d = window::step(s, q, r.at, r.cost);
        if (!d.allowed) continue;
        const std::int64_t p = q.period.count();
        const std::int64_t w = r.at / p - (r.at % p != 0 && r.at < 0 ? 1 : 0);
        admitted[w] += r.cost;
        ASSERT_LE(admitted[w], q.limit) << ratelimit_test::describe(q) << ", seed " << seed;
        ASSERT_EQ(admitted[w] + d.remaining, q.limit);
      }
    }
  }
}

TEST(FixedWindow, LimitsOfTwoToThe62AndTheLongestPeriod) {
  // One window spans [0, INT64_MAX ns): the next starts at the very last instant of the clock.
  const quota q = quota::per(quota::max_units, never);
  auto s = window::fresh(q, 0);
  EXPECT_TRUE(window::step(s, q, 0, quota::max_units).allowed);
  const decision d = window::step(s, q, 5, 1);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, std::chrono::nanoseconds{int64_max - 5});
  EXPECT_FALSE(window::step(s, q, int64_max - 1, 1).allowed);
  EXPECT_TRUE(window::step(s, q, int64_max, quota::max_units).allowed);
}

TEST(FixedWindow, TheLastWindowOfTheClockNeverEnds) {
  // At INT64_MAX - 1 the 1s window runs to 9'223'372'037'000'000'000, past the clock's end.
  const quota q = quota::per_second(1);
  auto s = window::fresh(q, int64_max - 1);
  const decision only = window::step(s, q, int64_max - 1, 1);
  EXPECT_TRUE(only.allowed);
  EXPECT_EQ(only.reset_after, never);
  const decision d = window::step(s, q, int64_max, 1);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, never);
}

TEST(FixedWindow, TheFirstWindowOfTheClockStartsBeforeIt) {
  // INT64_MIN lies in [-9'223'372'037s, -9'223'372'036s), which ends 854'775'808ns later.
  const quota q = quota::per_second(1);
  auto s = window::fresh(q, int64_min);
  EXPECT_TRUE(window::step(s, q, int64_min, 1).allowed);
  const decision d = window::step(s, q, int64_min, 1);
  EXPECT_EQ(d.retry_after, std::chrono::nanoseconds{854'775'808});
  EXPECT_TRUE(window::step(s, q, int64_min + 854'775'808, 1).allowed);
}

TEST(FixedWindow, PeriodsOfYearsAndOnePerNanosecond) {
  const quota years = quota::per(5, 200 * 8760h);
  auto y = window::fresh(years, 1);
  EXPECT_EQ(admitted_of<window>(y, years, 1, 6), 5);
  EXPECT_EQ(window::step(y, years, 1, 1).retry_after,
            std::chrono::nanoseconds{6'307'200'000'000'000'000 - 1});

  const quota q = quota::per(1, 1ns);
  auto s = window::fresh(q, 0);
  for (std::int64_t t = 0; t < 1'000; ++t) {
    ASSERT_TRUE(window::step(s, q, t, 1).allowed) << t;
    ASSERT_EQ(window::step(s, q, t, 1).retry_after, 1ns) << t;
  }
}

TEST(FixedWindow, ClockSteppedBackKeepsCountingInTheLatestWindow) {
  // Full in [10s, 20s) at 15s; back at 5s, the earlier window does not start over.
  const quota q = quota::per(3, 10s);
  auto s = window::fresh(q, 15 * seconds);
  ASSERT_EQ(admitted_of<window>(s, q, 15 * seconds, 1), 1);
  EXPECT_EQ(admitted_of<window>(s, q, 5 * seconds, 3), 2);
  const decision d = window::step(s, q, 5 * seconds, 1);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, 15s);
  EXPECT_EQ(d.reset_after, 15s);
  EXPECT_FALSE(window::step(s, q, 20 * seconds - 1, 1).allowed);
  EXPECT_EQ(admitted_of<window>(s, q, 20 * seconds, 4), 3);
}

// A clock stepped back from 0 to INT64_MIN: the window [0, 1s) ends 2^63 + 1s later, a wait
// int64 nanoseconds cannot hold. It must saturate to nanoseconds::max() (the conservative
// side); the i128 difference is narrowed to int64 and wraps to a negative wait instead.
TEST(FixedWindow, WaitsTooLongForTheClockSaturate) {
  const quota q = quota::per_second(1);
  auto s = window::fresh(q, 0);
  ASSERT_TRUE(window::step(s, q, 0, 1).allowed);
  const decision d = window::step(s, q, int64_min, 1);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, never);
  EXPECT_EQ(d.reset_after, never);
}

TEST(FixedWindow, CostOfZeroOrLessThrows) {
  ratelimit::fixed_window<ratelimit::manual_clock> limiter{quota::per(3, 10s)};
  EXPECT_THROW((void)limiter.try_acquire("key", 0), std::invalid_argument);
  EXPECT_THROW((void)limiter.try_acquire("key", -3), std::invalid_argument);
  EXPECT_EQ(limiter.try_acquire("key", 3).remaining, 0);
}

}  // namespace
