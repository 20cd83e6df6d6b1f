// The sliding window counter of DESIGN section 2, one rule per test, with the numbers written
// out.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <ratelimit/ratelimit.hpp>
#include <stdexcept>

#include "support/algorithm_probe.hpp"

namespace {

using namespace std::chrono_literals;
using ratelimit::decision;
using ratelimit::quota;
using counter = ratelimit::algorithms::sliding_window_counter;
using ratelimit_test::admitted_of;
using ratelimit_test::int64_max;
using ratelimit_test::int64_min;

constexpr auto never = std::chrono::nanoseconds::max();
constexpr std::int64_t seconds = 1'000'000'000;

TEST(SlidingWindowCounter, WeighsThePreviousWindowByItsUnelapsedPart) {
  // 10 per 10s, all 10 at 5s. At 13s, 7/10 of the previous window is still inside the
  // sliding period: it weighs 7, leaving 3.
  const quota q = quota::per(10, 10s);
  auto s = counter::fresh(q, 0);
  ASSERT_EQ(admitted_of<counter>(s, q, 5 * seconds, 10), 10);

  // At 10s it weighs all 10: 10·(10s − e) + 1·10s <= 100s from e = 1s on.
  const decision edge = counter::step(s, q, 10 * seconds, 1);
  EXPECT_FALSE(edge.allowed);
  EXPECT_EQ(edge.remaining, 0);
  EXPECT_EQ(edge.retry_after, 1s);
  EXPECT_EQ(edge.limit, 10);

  for (std::int64_t left : {2, 1, 0}) {
    const decision d = counter::step(s, q, 13 * seconds, 1);
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.remaining, left);
  }
  const decision fourth = counter::step(s, q, 13 * seconds, 1);
  EXPECT_FALSE(fourth.allowed);
  EXPECT_EQ(fourth.retry_after, 1s);
}

TEST(SlidingWindowCounter, ComputesTheWeightExactlyForAnAwkwardPeriod) {
  // per_minute(7), 7 in [0, 60s). In the next window one more fits once
  // 7·(60s − e) + 60s <= 420s, i.e. e >= 60s/7 = 8'571'428'571.43ns: from 8'571'428'572ns.
  const quota q = quota::per_minute(7);
  auto s = counter::fresh(q, 0);
  ASSERT_EQ(admitted_of<counter>(s, q, 0, 7), 7);
  EXPECT_EQ(counter::step(s, q, 60 * seconds, 1).retry_after,
            std::chrono::nanoseconds{8'571'428'572});
  const decision early = counter::step(s, q, 60 * seconds + 8'571'428'571, 1);
  EXPECT_FALSE(early.allowed);
  EXPECT_EQ(early.retry_after, 1ns);
  EXPECT_TRUE(counter::step(s, q, 60 * seconds + 8'571'428'572, 1).allowed);
}

TEST(SlidingWindowCounter, ForgetsWindowsBeforeThePreviousOne) {
  const quota q = quota::per(10, 10s);
  auto s = counter::fresh(q, 0);
  ASSERT_EQ(admitted_of<counter>(s, q, 5 * seconds, 10), 10);
  EXPECT_EQ(admitted_of<counter>(s, q, 20 * seconds, 11), 10);
}

TEST(SlidingWindowCounter, RetryAfterMovesToTheNextWindowWhenTheCurrentOneIsFull) {
  // 10 in [10s, 20s) at 12s: nothing more fits in it; in [20s, 30s) they weigh
  // 10·(10s − e)/10s, and one more fits from e = 1s on: 21s.
  const quota q = quota::per(10, 10s);
  auto s = counter::fresh(q, 12 * seconds);
  ASSERT_EQ(admitted_of<counter>(s, q, 12 * seconds, 10), 10);
  EXPECT_EQ(counter::step(s, q, 15 * seconds, 1).retry_after, 6s);
  EXPECT_FALSE(counter::step(s, q, 21 * seconds - 1, 1).allowed);
  EXPECT_TRUE(counter::step(s, q, 21 * seconds, 1).allowed);
}

TEST(SlidingWindowCounter, RetryAfterIsExactToTheNanosecondInManyStates) {
  ratelimit_test::for_many_states<counter>(ratelimit_test::retry_after_is_exact<counter>);
}

TEST(SlidingWindowCounter, ResetAfterIsTheEndOfTheNextWindowOnceTheCurrentOneCounts) {
  // A unit in [0, 10s) still weighs in [10s, 20s): the key is fresh again at 20s.
  const quota q = quota::per(10, 10s);
  auto s = counter::fresh(q, 0);
  EXPECT_EQ(counter::step(s, q, 5 * seconds, 11).reset_after, 0ns);  // nothing counted
  EXPECT_EQ(counter::step(s, q, 5 * seconds, 1).reset_after, 15s);
  EXPECT_EQ(counter::step(s, q, 12 * seconds, 11).reset_after, 8s);
  EXPECT_FALSE(counter::step(s, q, 20 * seconds - 1, 10).allowed);
  EXPECT_TRUE(counter::step(s, q, 20 * seconds, 10).allowed);
}

TEST(SlidingWindowCounter, ResetAfterLeavesAKeyIndistinguishableFromAFreshOne) {
  ratelimit_test::for_many_states<counter>(ratelimit_test::reset_after_is_exact<counter>);
}

TEST(SlidingWindowCounter, RemainingRoundsTheWeightedCountAgainstTheCaller) {
  // 3 per 10s, 3 at 5s. At 15s they weigh 1.5: one unit remains, not two.
  const quota q = quota::per(3, 10s);
  auto s = counter::fresh(q, 0);
  ASSERT_EQ(admitted_of<counter>(s, q, 5 * seconds, 3), 3);
  const decision one = counter::step(s, q, 15 * seconds, 1);
  EXPECT_TRUE(one.allowed);
  EXPECT_EQ(one.remaining, 0);
  // Another fits once 3·(10s − e) + 2·10s <= 30s: e >= 6'666'666'667ns (rounded up).
  const decision another = counter::step(s, q, 15 * seconds, 1);
  EXPECT_FALSE(another.allowed);
  EXPECT_EQ(another.remaining, 0);
  EXPECT_EQ(another.retry_after, std::chrono::nanoseconds{1'666'666'667});
  EXPECT_FALSE(counter::step(s, q, 16'666'666'666, 1).allowed);
  EXPECT_TRUE(counter::step(s, q, 16'666'666'667, 1).allowed);
}

TEST(SlidingWindowCounter, AStateCountedUnderALargerQuotaLeavesNothingRemaining) {
  // 10 counted under 10 per 10s, then read under 2 per 10s at 15s: they weigh 5 against a
  // capacity of 2. Nothing remains (not 2^64 minus something), and the wait is for their
  // weight to fall to 1: until 19s.
  auto s = counter::fresh(quota::per(10, 10s), 0);
  ASSERT_EQ(admitted_of<counter>(s, quota::per(10, 10s), 5 * seconds, 10), 10);
  const decision d = counter::step(s, quota::per(2, 10s), 15 * seconds, 1);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.remaining, 0);
  EXPECT_EQ(d.retry_after, 4s);
}

TEST(SlidingWindowCounter, CostAboveTheLimitIsNeverAdmittedAndConsumesNothing) {
  const quota q = quota::per(3, 10s);
  auto s = counter::fresh(q, 0);
  for (std::int64_t cost : {std::int64_t{4}, quota::max_units, int64_max}) {
    const decision d = counter::step(s, q, 0, cost);
    EXPECT_FALSE(d.allowed) << cost;
    EXPECT_EQ(d.retry_after, never) << cost;
    EXPECT_EQ(d.remaining, 3) << cost;
    EXPECT_EQ(d.reset_after, 0ns) << cost;
  }
  EXPECT_EQ(admitted_of<counter>(s, q, 0, 4), 3);
}

TEST(SlidingWindowCounter, RejectionConsumesNothing) {
  const quota q = quota::per(10, 10s);
  auto s = counter::fresh(q, 0);
  ASSERT_TRUE(counter::step(s, q, 0, 8).allowed);
  EXPECT_FALSE(counter::step(s, q, 0, 3).allowed);
  EXPECT_TRUE(counter::step(s, q, 0, 2).allowed);
}

TEST(SlidingWindowCounter, RejectionConsumesNothingInManyStates) {
  ratelimit_test::for_many_states<counter>(ratelimit_test::rejection_consumes_nothing<counter>);
}

TEST(SlidingWindowCounter, UsesWideIntegersWherePreviousTimesPeriodOverflows) {
  // 2^62 per 1000s: 2^62 · 10^12ns needs 102 bits. At 1250s the previous window weighs
  // 2^62 · 750/1000 = 3·2^60, leaving exactly 2^60.
  const quota q = quota::per(quota::max_units, 1000s);
  auto s = counter::fresh(q, 0);
  ASSERT_TRUE(counter::step(s, q, 0, quota::max_units).allowed);
  const decision rest = counter::step(s, q, 1'250 * seconds, std::int64_t{1} << 60);
  EXPECT_TRUE(rest.allowed);
  EXPECT_EQ(rest.remaining, 0);
  const decision one = counter::step(s, q, 1'250 * seconds, 1);
  EXPECT_FALSE(one.allowed);
  EXPECT_EQ(one.retry_after, 1ns);
  EXPECT_EQ(counter::step(s, q, 1'250 * seconds, int64_max).retry_after, never);
}

TEST(SlidingWindowCounter, OnePerNanosecondAdmitsEveryOtherNanosecond) {
  // With a 1ns window the previous one weighs fully at e = 0, the only instant there is.
  const quota q = quota::per(1, 1ns);
  auto s = counter::fresh(q, 0);
  for (std::int64_t t = 0; t < 1'000; t += 2) {
    ASSERT_TRUE(counter::step(s, q, t, 1).allowed) << t;
    const decision next = counter::step(s, q, t + 1, 1);
    ASSERT_FALSE(next.allowed) << t;
    ASSERT_EQ(next.retry_after, 1ns) << t;
  }
}

TEST(SlidingWindowCounter, PeriodsOfYears) {
  // 2 per 100 years, both at 0: a third fits 1.5 periods later.
  const quota q = quota::per(2, 100 * 8760h);
  auto s = counter::fresh(q, 0);
  ASSERT_EQ(admitted_of<counter>(s, q, 0, 2), 2);
  const decision d = counter::step(s, q, 0, 1);
  EXPECT_EQ(d.retry_after, std::chrono::nanoseconds{4'730'400'000'000'000'000});
  EXPECT_EQ(d.reset_after, std::chrono::nanoseconds{6'307'200'000'000'000'000});
}

TEST(SlidingWindowCounter, WaitsSaturateWhenTheInstantLiesBeyondTheClock) {
  const quota q = quota::per_second(1);
  auto s = counter::fresh(q, int64_max - 10);
  const decision only = counter::step(s, q, int64_max - 10, 1);
  EXPECT_TRUE(only.allowed);
  EXPECT_EQ(only.reset_after, never);
  EXPECT_EQ(counter::step(s, q, int64_max, 1).retry_after, never);
}

TEST(SlidingWindowCounter, ClockValuesNearInt64MinDoNotOverflow) {
  // INT64_MIN lies in [-9'223'372'037s, -9'223'372'036s); a unit there weighs until
  // -9'223'372'035s, 1'854'775'808ns later.
  const quota q = quota::per_second(1);
  auto s = counter::fresh(q, int64_min);
  ASSERT_TRUE(counter::step(s, q, int64_min, 1).allowed);
  const decision d = counter::step(s, q, int64_min, 1);
  EXPECT_EQ(d.retry_after, std::chrono::nanoseconds{1'854'775'808});
  EXPECT_EQ(d.reset_after, std::chrono::nanoseconds{1'854'775'808});
  EXPECT_FALSE(counter::step(s, q, int64_min + 1'854'775'807, 1).allowed);
  EXPECT_TRUE(counter::step(s, q, int64_min + 1'854'775'808, 1).allowed);
}

TEST(SlidingWindowCounter, ClockSteppedBackWeighsThePreviousWindowFully) {
  // 10 in [0, 10s), 2 at 12s. Back at 9s nothing of [10s, 20s) has elapsed: the 10 weigh
  // fully, and one more fits from 13s, when 10·(10s − 3s) + 3·10s = 100s.
  const quota q = quota::per(10, 10s);
  auto s = counter::fresh(q, 0);
  ASSERT_EQ(admitted_of<counter>(s, q, 5 * seconds, 10), 10);
  ASSERT_EQ(admitted_of<counter>(s, q, 12 * seconds, 2), 2);
  const decision d = counter::step(s, q, 9 * seconds, 1);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, 4s);
  EXPECT_EQ(d.reset_after, 21s);
  EXPECT_FALSE(counter::step(s, q, 13 * seconds - 1, 1).allowed);
  EXPECT_TRUE(counter::step(s, q, 13 * seconds, 1).allowed);
}

// Forward in time, with a period of 158 years: at -5e18 + 1ns the window is [-5e18, 0), and a
// unit admitted there weighs until 5e18, 10^19 − 1 ns away. That wait does not fit int64 and
// must saturate to nanoseconds::max(); the i128 difference is narrowed and wraps to a
// negative reset_after and retry_after instead.
TEST(SlidingWindowCounter, WaitsTooLongForTheClockSaturate) {
  const quota q = quota::per(1, std::chrono::nanoseconds{5'000'000'000'000'000'000});
  const std::int64_t now = -5'000'000'000'000'000'000 + 1;
  auto s = counter::fresh(q, now);
  const decision first = counter::step(s, q, now, 1);
  ASSERT_TRUE(first.allowed);
  EXPECT_EQ(first.reset_after, never);
  const decision second = counter::step(s, q, now, 1);
  EXPECT_FALSE(second.allowed);
  EXPECT_EQ(second.retry_after, never);
}

TEST(SlidingWindowCounter, LimiterWithAManualClockDecidesTheSame) {
  ratelimit::manual_clock clock;
  ratelimit::sliding_window_counter<ratelimit::manual_clock> limiter{quota::per_minute(7), clock};
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(limiter.try_acquire("key").allowed);
  clock.advance(60s);
  const decision d = limiter.try_acquire("key");
  EXPECT_EQ(d.retry_after, std::chrono::nanoseconds{8'571'428'572});
  clock.advance(d.retry_after - 1ns);
  EXPECT_FALSE(limiter.try_acquire("key").allowed);
  clock.advance(1ns);
  EXPECT_TRUE(limiter.try_acquire("key").allowed);
}

TEST(SlidingWindowCounter, CostOfZeroOrLessThrows) {
  ratelimit::sliding_window_counter<ratelimit::manual_clock> limiter{quota::per(3, 10s)};
  EXPECT_THROW((void)limiter.try_acquire("key", 0), std::invalid_argument);
  EXPECT_THROW((void)limiter.try_acquire("key", -1), std::invalid_argument);
  EXPECT_EQ(limiter.try_acquire("key", 3).remaining, 0);
}

}  // namespace
