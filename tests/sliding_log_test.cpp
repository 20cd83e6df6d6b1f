// The sliding log of DESIGN section 2, one rule per test, with the numbers written out.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <ratelimit/ratelimit.hpp>
#include <stdexcept>
#include <vector>

#include "support/algorithm_probe.hpp"

namespace {

using namespace std::chrono_literals;
using ratelimit::decision;
using ratelimit::quota;
using log_algorithm = ratelimit::algorithms::sliding_log;
using ratelimit_test::admitted_of;
using ratelimit_test::int64_max;
using ratelimit_test::int64_min;

constexpr auto never = std::chrono::nanoseconds::max();
constexpr std::int64_t seconds = 1'000'000'000;

TEST(SlidingLog, CountsTheHalfOpenPeriodBeforeNow) {
  // 2 per 10s: a request at 0 counts in (now − 10s, now] until now reaches 10s.
  const quota q = quota::per(2, 10s);
  auto s = log_algorithm::fresh(q, 0);
  EXPECT_EQ(log_algorithm::step(s, q, 0, 1).remaining, 1);
  EXPECT_EQ(log_algorithm::step(s, q, 4 * seconds, 1).remaining, 0);

  const decision before = log_algorithm::step(s, q, 10 * seconds - 1, 1);
  EXPECT_FALSE(before.allowed);
  EXPECT_EQ(before.retry_after, 1ns);
  EXPECT_EQ(before.limit, 2);
  EXPECT_TRUE(log_algorithm::step(s, q, 10 * seconds, 1).allowed);

  EXPECT_EQ(log_algorithm::step(s, q, 14 * seconds - 1, 1).retry_after, 1ns);
  EXPECT_TRUE(log_algorithm::step(s, q, 14 * seconds, 1).allowed);
}

TEST(SlidingLog, AdmitsIffTheSumInThePeriodPlusTheCostFitsTheLimit) {
  const quota q = quota::per(5, 10s);
  auto s = log_algorithm::fresh(q, 0);
  EXPECT_EQ(log_algorithm::step(s, q, 0, 2).remaining, 3);
  EXPECT_EQ(log_algorithm::step(s, q, 1 * seconds, 3).remaining, 0);

  // One unit is free once the 2 of 0s leave, at 10s; three once the 3 of 1s leave too.
  const decision one = log_algorithm::step(s, q, 2 * seconds, 1);
  EXPECT_FALSE(one.allowed);
  EXPECT_EQ(one.retry_after, 8s);
  const decision three = log_algorithm::step(s, q, 2 * seconds, 3);
  EXPECT_FALSE(three.allowed);
  EXPECT_EQ(three.retry_after, 9s);

  EXPECT_FALSE(log_algorithm::step(s, q, 11 * seconds - 1, 3).allowed);
  EXPECT_TRUE(log_algorithm::step(s, q, 11 * seconds, 3).allowed);
}

TEST(SlidingLog, NoPeriodEverHoldsMoreThanTheLimit) {
  // Random requests: at each admission, the units admitted in (now − period, now], summed
  // here from every admitted request, stay within the limit and match `remaining`.
  for (const quota& q : ratelimit_test::awkward_quotas()) {
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
      ratelimit_test::random_requests random(q, q.limit, seed);
      auto s = log_algorithm::fresh(q, 0);
      std::vector<ratelimit_test::request> admitted;
      decision d{};
      for (int i = 0; i < 400; ++i) {
        const ratelimit_test::request r = random.next(d);
        d = log_algorithm::step(s, q, r.at, r.cost);
        if (!d.allowed) continue;
        admitted.push_back(r);
        ratelimit_test::i128 in_period = 0;
        for (const auto& a : admitted) {
          if (ratelimit_test::i128{a.at} > ratelimit_test::i128{r.at} - q.period.count()) {
            in_period += a.cost;
          }
        }
        ASSERT_LE(in_period, q.limit) << ratelimit_test::describe(q) << ", seed " << seed;
        ASSERT_EQ(in_period + d.remaining, q.limit);
      }
    }
  }
}

TEST(SlidingLog, RetryAfterIsExactToTheNanosecondInManyStates) {
  ratelimit_test::for_many_states<log_algorithm>(
      ratelimit_test::retry_after_is_exact<log_algorithm>);
}

TEST(SlidingLog, ResetAfterIsWhenTheNewestRequestLeavesThePeriod) {
  const quota q = quota::per(3, 10s);
  auto s = log_algorithm::fresh(q, 0);
  EXPECT_EQ(log_algorithm::step(s, q, 0, 4).reset_after, 0ns);  // an empty log
  EXPECT_EQ(log_algorithm::step(s, q, 0, 1).reset_after, 10s);
  EXPECT_EQ(log_algorithm::step(s, q, 2 * seconds, 1).reset_after, 10s);
  EXPECT_EQ(log_algorithm::step(s, q, 5 * seconds, 4).reset_after, 7s);
  EXPECT_FALSE(log_algorithm::step(s, q, 12 * seconds - 1, 3).allowed);
  EXPECT_TRUE(log_algorithm::step(s, q, 12 * seconds, 3).allowed);
}

TEST(SlidingLog, ResetAfterLeavesAKeyIndistinguishableFromAFreshOne) {
  ratelimit_test::for_many_states<log_algorithm>(
      ratelimit_test::reset_after_is_exact<log_algorithm>);
}

TEST(SlidingLog, RemainingIsTheLimitMinusTheSumInThePeriod) {
  const quota q = quota::per(5, 10s);
  auto s = log_algorithm::fresh(q, 0);
  EXPECT_EQ(log_algorithm::step(s, q, 0, 2).remaining, 3);
  EXPECT_EQ(log_algorithm::step(s, q, 5 * seconds, 4).remaining, 3);  // rejected
  EXPECT_EQ(log_algorithm::step(s, q, 5 * seconds, 3).remaining, 0);
  EXPECT_EQ(log_algorithm::step(s, q, 10 * seconds, 1).remaining, 1);
}

TEST(SlidingLog, CostAboveTheLimitIsNeverAdmittedAndConsumesNothing) {
  const quota q = quota::per(3, 10s);
  auto s = log_algorithm::fresh(q, 0);
  for (std::int64_t cost : {std::int64_t{4}, quota::max_units, int64_max}) {
    const decision d = log_algorithm::step(s, q, 0, cost);
    EXPECT_FALSE(d.allowed) << cost;
    EXPECT_EQ(d.retry_after, never) << cost;
    EXPECT_EQ(d.remaining, 3) << cost;
    EXPECT_EQ(d.reset_after, 0ns) << cost;
  }
  EXPECT_EQ(admitted_of<log_algorithm>(s, q, 0, 4), 3);
}

TEST(SlidingLog, RejectionConsumesNothing) {
  const quota q = quota::per(3, 10s);
  auto s = log_algorithm::fresh(q, 0);
  ASSERT_TRUE(log_algorithm::step(s, q, 0, 2).allowed);
  EXPECT_FALSE(log_algorithm::step(s, q, 1 * seconds, 2).allowed);
  EXPECT_TRUE(log_algorithm::step(s, q, 1 * seconds, 1).allowed);
  // Had the rejected 2 units been logged at 1s, nothing would fit at 10s.
  EXPECT_TRUE(log_algorithm::step(s, q, 10 * seconds, 2).allowed);
}

TEST(SlidingLog, RejectionConsumesNothingInManyStates) {
  ratelimit_test::for_many_states<log_algorithm>(
      ratelimit_test::rejection_consumes_nothing<log_algorithm>);
}

TEST(SlidingLog, RequestsAtOneInstantAllCountAndLeaveTogether) {
  const quota q = quota::per(100, 1s);
  auto s = log_algorithm::fresh(q, 0);
  EXPECT_EQ(admitted_of<log_algorithm>(s, q, 500'000'000, 101), 100);
  EXPECT_EQ(log_algorithm::step(s, q, 500'000'000, 1).retry_after, 1s);
  EXPECT_EQ(admitted_of<log_algorithm>(s, q, 1'499'999'999, 1), 0);
  EXPECT_EQ(admitted_of<log_algorithm>(s, q, 1'500'000'000, 101), 100);
}

TEST(SlidingLog, LimitsOfTwoToThe62AndTheLongestPeriod) {
  // A stamp at 0 counts until INT64_MAX, the last instant of the clock.
  const quota q = quota::per(quota::max_units, never);
  auto s = log_algorithm::fresh(q, 0);
  EXPECT_TRUE(log_algorithm::step(s, q, 0, quota::max_units).allowed);
  const decision d = log_algorithm::step(s, q, 5, 1);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, std::chrono::nanoseconds{int64_max - 5});
  EXPECT_EQ(d.remaining, 0);
  EXPECT_FALSE(log_algorithm::step(s, q, int64_max - 1, 1).allowed);
  EXPECT_TRUE(log_algorithm::step(s, q, int64_max, quota::max_units).allowed);
}

TEST(SlidingLog, WaitsSaturateWhenTheInstantLiesBeyondTheClock) {
  const quota q = quota::per_second(1);
  auto s = log_algorithm::fresh(q, 0);
  const decision only = log_algorithm::step(s, q, int64_max - 10, 1);
  EXPECT_TRUE(only.allowed);
  EXPECT_EQ(only.reset_after, never);
  EXPECT_EQ(log_algorithm::step(s, q, int64_max, 1).retry_after, never);
}

TEST(SlidingLog, ClockValuesNearInt64MinDoNotOverflow) {
  const quota q = quota::per_second(1);
  auto s = log_algorithm::fresh(q, int64_min);
  EXPECT_TRUE(log_algorithm::step(s, q, int64_min, 1).allowed);
  EXPECT_EQ(log_algorithm::step(s, q, int64_min, 1).retry_after, 1s);
  EXPECT_FALSE(log_algorithm::step(s, q, int64_min + seconds - 1, 1).allowed);
  EXPECT_TRUE(log_algorithm::step(s, q, int64_min + seconds, 1).allowed);
  EXPECT_TRUE(log_algorithm::step(s, q, int64_max, 1).allowed);
}

TEST(SlidingLog, PeriodsOfYearsAndOnePerNanosecond) {
  const quota years = quota::per(2, 200 * 8760h);
  auto y = log_algorithm::fresh(years, 0);
  EXPECT_EQ(admitted_of<log_algorithm>(y, years, 0, 1), 1);
  EXPECT_EQ(admitted_of<log_algorithm>(y, years, 100 * seconds, 2), 1);
  EXPECT_EQ(log_algorithm::step(y, years, 100 * seconds, 1).retry_after,
            std::chrono::nanoseconds{6'307'200'000'000'000'000 - 100 * seconds});

  const quota q = quota::per(1, 1ns);
  auto s = log_algorithm::fresh(q, 0);
  for (std::int64_t t = 0; t < 1'000; ++t) {
    ASSERT_TRUE(log_algorithm::step(s, q, t, 1).allowed) << t;
    ASSERT_EQ(log_algorithm::step(s, q, t, 1).retry_after, 1ns) << t;
  }
}

TEST(SlidingLog, ClockSteppedBackStampsAtTheNewestInstant) {
  // 2 per 10s: one at 100s; back at 95s, the second is stamped at 100s, so both count
  // until 110s and the key is fresh only then.
  const quota q = quota::per(2, 10s);
  auto s = log_algorithm::fresh(q, 0);
  ASSERT_TRUE(log_algorithm::step(s, q, 100 * seconds, 1).allowed);
  const decision second = log_algorithm::step(s, q, 95 * seconds, 1);
  EXPECT_TRUE(second.allowed);
  EXPECT_EQ(second.reset_after, 15s);
  const decision third = log_algorithm::step(s, q, 95 * seconds, 1);
  EXPECT_FALSE(third.allowed);
  EXPECT_EQ(third.retry_after, 15s);
  EXPECT_FALSE(log_algorithm::step(s, q, 110 * seconds - 1, 1).allowed);
  EXPECT_EQ(admitted_of<log_algorithm>(s, q, 110 * seconds, 3), 2);
}

// A clock stepped back from 0 to INT64_MIN: the stamp at 0 leaves at 1s, 2^63 + 1s later, a
// wait int64 nanoseconds cannot hold. It must saturate to nanoseconds::max(); the i128
// difference is narrowed to int64 and wraps to a negative wait instead.
TEST(SlidingLog, WaitsTooLongForTheClockSaturate) {
  const quota q = quota::per_second(1);
  auto s = log_algorithm::fresh(q, 0);
  ASSERT_TRUE(log_algorithm::step(s, q, 0, 1).allowed);
  const decision d = log_algorithm::step(s, q, int64_min, 1);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, never);
  EXPECT_EQ(d.reset_after, never);
}

TEST(SlidingLog, LimiterWithAManualClockDecidesTheSame) {
  ratelimit::manual_clock clock;
  ratelimit::sliding_log<ratelimit::manual_clock> limiter{quota::per(2, 10s), clock};
  ASSERT_TRUE(limiter.try_acquire("key").allowed);
  clock.advance(4s);
  ASSERT_TRUE(limiter.try_acquire("key").allowed);
  const decision third = limiter.try_acquire("key");
  EXPECT_FALSE(third.allowed);
  EXPECT_EQ(third.retry_after, 6s);
  clock.advance(third.retry_after - 1ns);
  EXPECT_FALSE(limiter.try_acquire("key").allowed);
  clock.advance(1ns);
  EXPECT_TRUE(limiter.try_acquire("key").allowed);
}

TEST(SlidingLog, CostOfZeroOrLessThrows) {
  ratelimit::sliding_log<ratelimit::manual_clock> limiter{quota::per(3, 10s)};
  EXPECT_THROW((void)limiter.try_acquire("key", 0), std::invalid_argument);
  EXPECT_THROW((void)limiter.try_acquire("key", -1), std::invalid_argument);
  EXPECT_EQ(limiter.try_acquire("key", 3).remaining, 0);
}

}  // namespace
