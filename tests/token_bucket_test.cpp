// The token bucket of DESIGN section 2, one rule per test, with the numbers written out.

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
using bucket = ratelimit::algorithms::token_bucket;
using ratelimit_test::admitted_of;
using ratelimit_test::int64_max;
using ratelimit_test::int64_min;

constexpr auto never = std::chrono::nanoseconds::max();
constexpr std::int64_t seconds = 1'000'000'000;
// per_minute(7): a token every 60s/7 = 8'571'428'571.43 ns, rounded up against the caller.
constexpr std::int64_t seventh_of_a_minute = 8'571'428'572;

TEST(TokenBucket, StartsFullWithBurstTokens) {
  const quota q = quota::per_minute(7).with_burst(3);
  auto s = bucket::fresh(q, 0);
  for (std::int64_t left : {2, 1, 0}) {
    const decision d = bucket::step(s, q, 0, 1);
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.remaining, left);
    EXPECT_EQ(d.limit, 7);
    EXPECT_EQ(d.retry_after, 0ns);
    EXPECT_EQ(d.delay, 0ns);
    EXPECT_FALSE(d.degraded);
  }
  EXPECT_FALSE(bucket::step(s, q, 0, 1).allowed);

  const quota default_burst = quota::per_minute(7);
  auto full = bucket::fresh(default_burst, 0);
  EXPECT_EQ(admitted_of<bucket>(full, default_burst, 0, 8), 7);
}

TEST(TokenBucket, EighthRequestOfSevenPerMinuteWaitsASeventhOfAMinuteRoundedUp) {
  const quota q = quota::per_minute(7);
  auto s = bucket::fresh(q, 0);
  ASSERT_EQ(admitted_of<bucket>(s, q, 0, 7), 7);

  const decision eighth = bucket::step(s, q, 0, 1);
  EXPECT_FALSE(eighth.allowed);
  EXPECT_EQ(eighth.remaining, 0);
  EXPECT_EQ(eighth.retry_after, std::chrono::nanoseconds{8'571'428'572});

  const decision early = bucket::step(s, q, 8'571'428'571, 1);
  EXPECT_FALSE(early.allowed);
  EXPECT_EQ(early.retry_after, 1ns);
  EXPECT_TRUE(bucket::step(s, q, 8'571'428'572, 1).allowed);
}

TEST(TokenBucket, RefillsAtTheExactRationalRateWithoutDrift) {
  // Drained at 0, the k-th token is whole at ceil(k·60s/7): over an hour exactly 420 tokens,
  // the last at exactly 3600s, with no rounding error piling up.
  const quota q = quota::per_minute(7);
  auto s = bucket::fresh(q, 0);
  ASSERT_EQ(admitted_of<bucket>(s, q, 0, 7), 7);
  std::int64_t token_at = 0;
  for (std::int64_t k = 1; k <= 420; ++k) {
    token_at = (k * 60 * seconds + 6) / 7;
    const decision early = bucket::step(s, q, token_at - 1, 1);
    ASSERT_FALSE(early.allowed) << "token " << k;
    ASSERT_EQ(early.retry_after, 1ns) << "token " << k;
    ASSERT_TRUE(bucket::step(s, q, token_at, 1).allowed) << "token " << k;
  }
  EXPECT_EQ(token_at, 3'600 * seconds);
  EXPECT_EQ(bucket::step(s, q, token_at, 1).retry_after,
            std::chrono::nanoseconds{seventh_of_a_minute});
}

TEST(TokenBucket, RefillIsCappedAtTheBurst) {
  const quota q = quota::per_second(10).with_burst(2);
  auto s = bucket::fresh(q, 0);
  ASSERT_EQ(admitted_of<bucket>(s, q, 0, 2), 2);
  EXPECT_EQ(admitted_of<bucket>(s, q, 3'600 * seconds, 2), 2);
  const decision third = bucket::step(s, q, 3'600 * seconds, 1);
  EXPECT_FALSE(third.allowed);
  EXPECT_EQ(third.retry_after, 100ms);
}

TEST(TokenBucket, AdmitsIffTheTokensCoverTheCost) {
  const quota q = quota::per_second(10);
  auto s = bucket::fresh(q, 0);
  const decision seven = bucket::step(s, q, 0, 7);
  EXPECT_TRUE(seven.allowed);
  EXPECT_EQ(seven.remaining, 3);

  const decision four = bucket::step(s, q, 0, 4);
  EXPECT_FALSE(four.allowed);
  EXPECT_EQ(four.remaining, 3);
  EXPECT_EQ(four.retry_after, 100ms);

  const decision three = bucket::step(s, q, 0, 3);
  EXPECT_TRUE(three.allowed);
  EXPECT_EQ(three.remaining, 0);
}

TEST(TokenBucket, PartialTokensDoNotCount) {
  const quota q = quota::per_second(10);
  auto s = bucket::fresh(q, 0);
  ASSERT_EQ(admitted_of<bucket>(s, q, 0, 10), 10);
  const decision almost = bucket::step(s, q, 99'999'999, 1);
  EXPECT_FALSE(almost.allowed);
  EXPECT_EQ(almost.remaining, 0);
  EXPECT_EQ(almost.retry_after, 1ns);
  EXPECT_TRUE(bucket::step(s, q, 100'000'000, 1).allowed);
}

TEST(TokenBucket, RemainingIsTheWholeTokensLeft) {
  // 4 per second: drained at 0, 2.4 tokens at 600ms and 1.8 at 700ms.
  const quota q = quota::per_second(4);
  auto s = bucket::fresh(q, 0);
  ASSERT_EQ(admitted_of<bucket>(s, q, 0, 4), 4);

  const decision one = bucket::step(s, q, 600'000'000, 1);
  EXPECT_TRUE(one.allowed);
  EXPECT_EQ(one.remaining, 1);

  const decision two = bucket::step(s, q, 700'000'000, 2);
  EXPECT_FALSE(two.allowed);
  EXPECT_EQ(two.remaining, 1);
  EXPECT_EQ(two.retry_after, 50ms);
}

TEST(TokenBucket, RetryAfterCountsEveryMissingTokenOfTheCost) {
  const quota q = quota::per_minute(7);
  auto s = bucket::fresh(q, 0);
  ASSERT_EQ(admitted_of<bucket>(s, q, 0, 7), 7);
  // ceil(3·60s/7) = ceil(25'714'285'714.29ns)
  const decision three = bucket::step(s, q, 0, 3);
  EXPECT_EQ(three.retry_after, std::chrono::nanoseconds{25'714'285'715});
  EXPECT_FALSE(bucket::step(s, q, 25'714'285'714, 3).allowed);
  EXPECT_TRUE(bucket::step(s, q, 25'714'285'715, 3).allowed);
}

TEST(TokenBucket, RetryAfterIsExactToTheNanosecondInManyStates) {
  ratelimit_test::for_many_states<bucket>(ratelimit_test::retry_after_is_exact<bucket>);
}

TEST(TokenBucket, ResetAfterIsTheWaitUntilTheBucketIsFull) {
  const quota q = quota::per_minute(7);
  auto s = bucket::fresh(q, 0);
  EXPECT_EQ(bucket::step(s, q, 0, 8).reset_after, 0ns);  // rejected, still full
  EXPECT_EQ(bucket::step(s, q, 0, 1).reset_after, std::chrono::nanoseconds{8'571'428'572});
  EXPECT_EQ(bucket::step(s, q, 0, 1).reset_after, std::chrono::nanoseconds{17'142'857'143});

  EXPECT_FALSE(bucket::step(s, q, 17'142'857'142, 7).allowed);
  EXPECT_EQ(admitted_of<bucket>(s, q, 17'142'857'143, 8), 7);
}

TEST(TokenBucket, ResetAfterLeavesAKeyIndistinguishableFromAFreshOne) {
  ratelimit_test::for_many_states<bucket>(ratelimit_test::reset_after_is_exact<bucket>);
}

TEST(TokenBucket, CostAboveTheBurstIsNeverAdmittedAndConsumesNothing) {
  const quota q = quota::per_second(10).with_burst(5);
  auto s = bucket::fresh(q, 0);
  for (std::int64_t cost : {std::int64_t{6}, quota::max_units, int64_max}) {
    const decision d = bucket::step(s, q, 0, cost);
    EXPECT_FALSE(d.allowed) << cost;
    EXPECT_EQ(d.retry_after, never) << cost;
    EXPECT_EQ(d.remaining, 5) << cost;
    EXPECT_EQ(d.reset_after, 0ns) << cost;
  }
  EXPECT_EQ(admitted_of<bucket>(s, q, 0, 6), 5);
}

TEST(TokenBucket, RejectionConsumesNothing) {
  // At 150ms 1.5 tokens: a rejected request of 2 takes none of them, so at 200ms 2 pass.
  const quota q = quota::per_second(10);
  auto s = bucket::fresh(q, 0);
  ASSERT_EQ(admitted_of<bucket>(s, q, 0, 10), 10);
  EXPECT_FALSE(bucket::step(s, q, 150'000'000, 2).allowed);
  EXPECT_TRUE(bucket::step(s, q, 200'000'000, 2).allowed);
}

TEST(TokenBucket, RejectionConsumesNothingInManyStates) {
  ratelimit_test::for_many_states<bucket>(ratelimit_test::rejection_consumes_nothing<bucket>);
}

TEST(TokenBucket, NeverAdmitsMoreThanTheBurstPlusTheRateOverALongRun) {
  // A greedy client with random costs retries exactly at retry_after. What it got plus the
  // whole tokens left never passes burst + floor(t·limit/period). With costs below the burst
  // and at most one token per ns, the bucket never sits full, so no refill is lost and the
  // two are equal: rounding neither adds a unit nor drifts.
  for (const quota& q : ratelimit_test::awkward_quotas()) {
    const bool never_full = q.burst > 1 && q.limit <= q.period.count();
    const std::int64_t most = std::max<std::int64_t>(1, std::min<std::int64_t>(q.burst - 1, 5));
    ratelimit_test::random_requests random(q, q.burst, 7);
    auto s = bucket::fresh(q, 0);
    ratelimit_test::i128 admitted = 0;
    std::int64_t now = 0;
    for (int i = 0; i < 2'000; ++i) {
      const std::int64_t cost = random.between(1, most);
      decision d = bucket::step(s, q, now, cost);
      if (!d.allowed) {
        now += d.retry_after.count();
        d = bucket::step(s, q, now, cost);
        ASSERT_TRUE(d.allowed) << ratelimit_test::describe(q) << " at " << now;
      }
      admitted += cost;
      const ratelimit_test::i128 allowed_by_now =
          q.burst + ratelimit_test::i128{now} * q.limit / q.period.count();
      ASSERT_LE(admitted + d.remaining, allowed_by_now)
          << ratelimit_test::describe(q) << " at " << now;
      if (never_full) {
        ASSERT_EQ(admitted + d.remaining, allowed_by_now)
            << ratelimit_test::describe(q) << " at " << now;
      }
    }
  }
}

TEST(TokenBucket, LimitsAndBurstsOfTwoToThe62DoNotOverflow) {
  // 2^62 tokens per INT64_MAX ns: one token every 1.99999... ns, rounded up to 2ns.
  const quota slow = quota::per(quota::max_units, never);
  auto s = bucket::fresh(slow, 0);
  const decision all = bucket::step(s, slow, 0, quota::max_units);
  EXPECT_TRUE(all.allowed);
  EXPECT_EQ(all.remaining, 0);
  EXPECT_EQ(all.reset_after, never);  // exactly INT64_MAX ns to refill 2^62 tokens
  EXPECT_EQ(bucket::step(s, slow, 0, 1).retry_after, 2ns);
  EXPECT_FALSE(bucket::step(s, slow, 1, 1).allowed);
  EXPECT_TRUE(bucket::step(s, slow, 2, 1).allowed);

  const quota fast = quota::per(quota::max_units, 1ns);
  auto f = bucket::fresh(fast, 0);
  EXPECT_TRUE(bucket::step(f, fast, 0, quota::max_units).allowed);
  EXPECT_EQ(bucket::step(f, fast, 0, quota::max_units).retry_after, 1ns);
  EXPECT_TRUE(bucket::step(f, fast, 1, quota::max_units).allowed);
}

TEST(TokenBucket, PeriodsOfYearsRefillExactly) {
  // 3 per 200 years of 8760h: a token every 2'102'400'000'000'000'000ns.
  const quota q = quota::per(3, 200 * 8760h);
  auto s = bucket::fresh(q, 0);
  ASSERT_EQ(admitted_of<bucket>(s, q, 0, 3), 3);
  const decision d = bucket::step(s, q, 0, 1);
  EXPECT_EQ(d.retry_after, std::chrono::nanoseconds{2'102'400'000'000'000'000});
  EXPECT_EQ(d.reset_after, std::chrono::nanoseconds{6'307'200'000'000'000'000});
  EXPECT_FALSE(bucket::step(s, q, 2'102'400'000'000'000'000 - 1, 1).allowed);
  EXPECT_TRUE(bucket::step(s, q, 2'102'400'000'000'000'000, 1).allowed);
}

TEST(TokenBucket, CostsUpToInt64MaxAreDecidedWithoutOverflow) {
  const quota q = quota::per(1, 1ns).with_burst(quota::max_units);
  auto s = bucket::fresh(q, 0);
  EXPECT_EQ(bucket::step(s, q, 0, int64_max).retry_after, never);
  EXPECT_EQ(bucket::step(s, q, 0, quota::max_units + 1).retry_after, never);
  EXPECT_TRUE(bucket::step(s, q, 0, quota::max_units).allowed);
  // Refilling 2^62 tokens at one per ns takes 2^62 ns.
  EXPECT_EQ(bucket::step(s, q, 0, quota::max_units).retry_after,
            std::chrono::nanoseconds{quota::max_units});
}

TEST(TokenBucket, WaitsSaturateWhenTheInstantLiesBeyondTheClock) {
  const quota q = quota::per_second(1);
  auto late = bucket::fresh(q, int64_max - 10);
  const decision last_token = bucket::step(late, q, int64_max - 10, 1);
  EXPECT_TRUE(last_token.allowed);
  EXPECT_EQ(last_token.reset_after, never);
  const decision d = bucket::step(late, q, int64_max, 1);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, never);

  // One second before the end of the clock the refill is still reachable, to the ns.
  auto edge = bucket::fresh(q, int64_max - seconds);
  ASSERT_TRUE(bucket::step(edge, q, int64_max - seconds, 1).allowed);
  EXPECT_EQ(bucket::step(edge, q, int64_max - seconds, 1).retry_after, 1s);
  EXPECT_FALSE(bucket::step(edge, q, int64_max - 1, 1).allowed);
  EXPECT_TRUE(bucket::step(edge, q, int64_max, 1).allowed);
}

TEST(TokenBucket, ClockValuesNearInt64MinDoNotOverflow) {
  const quota q = quota::per_second(1);
  auto s = bucket::fresh(q, int64_min);
  ASSERT_TRUE(bucket::step(s, q, int64_min, 1).allowed);
  const decision d = bucket::step(s, q, int64_min + 999'999'999, 1);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, 1ns);
  // The whole range of the clock elapses at once: the bucket is full, not overflowed.
  const decision full = bucket::step(s, q, int64_max, 1);
  EXPECT_TRUE(full.allowed);
  EXPECT_EQ(full.remaining, 0);
}

TEST(TokenBucket, OnePerNanosecond) {
  const quota q = quota::per(1, 1ns);
  auto s = bucket::fresh(q, 0);
  for (std::int64_t t = 0; t < 1'000; ++t) {
    ASSERT_TRUE(bucket::step(s, q, t, 1).allowed) << t;
    const decision second = bucket::step(s, q, t, 1);
    ASSERT_FALSE(second.allowed) << t;
    ASSERT_EQ(second.retry_after, 1ns) << t;
  }

  const quota billion = quota::per_second(1'000'000'000);
  auto b = bucket::fresh(billion, 0);
  ASSERT_TRUE(bucket::step(b, billion, 0, 1'000'000'000).allowed);
  EXPECT_EQ(bucket::step(b, billion, 0, 1).retry_after, 1ns);
  EXPECT_EQ(admitted_of<bucket>(b, billion, 1, 2), 1);
  EXPECT_EQ(bucket::step(b, billion, 11, 10).remaining, 0);
}

TEST(TokenBucket, ClockSteppedBackRefillsNothingUntilItCatchesUp) {
  // Drained at 100s; the clock steps back to 99s. Every ms from 99s to 100.1s asks for a
  // token: only the one due at 100.1s passes.
  const quota q = quota::per_second(10);
  auto s = bucket::fresh(q, 100 * seconds);
  ASSERT_EQ(admitted_of<bucket>(s, q, 100 * seconds, 10), 10);
  std::int64_t admitted = 0;
  for (std::int64_t t = 99 * seconds; t <= 100 * seconds + 100'000'000; t += 1'000'000) {
    admitted += bucket::step(s, q, t, 1).allowed ? 1 : 0;
  }
  EXPECT_EQ(admitted, 1);
}

// The bucket waits for the clock to pass 100s again before it refills (the token bucket's own
// rule), so from 99s the token due at 100.1s is 1.1s away, not 100ms: DESIGN's retry_after
// is "the wait until this same request would be allowed".
TEST(TokenBucket, RetryAfterIsHonouredAfterTheClockStepsBack) {
  const quota q = quota::per_second(10);
  auto s = bucket::fresh(q, 100 * seconds);
  ASSERT_EQ(admitted_of<bucket>(s, q, 100 * seconds, 10), 10);
  const decision d = bucket::step(s, q, 99 * seconds, 1);
  ASSERT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, 1'100ms);
  EXPECT_TRUE(bucket::step(s, q, 99 * seconds + d.retry_after.count(), 1).allowed);
}

// Likewise the bucket is full at 101s, 2s after 99s: reset_after reports 1s, after which the
// key is not yet as a fresh one.
TEST(TokenBucket, ResetAfterIsHonouredAfterTheClockStepsBack) {
  const quota q = quota::per_second(10);
  auto s = bucket::fresh(q, 100 * seconds);
  ASSERT_EQ(admitted_of<bucket>(s, q, 100 * seconds, 10), 10);
  const decision d = bucket::step(s, q, 99 * seconds, 1);
  EXPECT_EQ(d.reset_after, 2s);
  EXPECT_TRUE(bucket::step(s, q, 99 * seconds + d.reset_after.count(), 10).allowed);
}

// What the short reset_after costs: the storage expires the key at 99s + reset_after = 100s,
// a sweep at 100s forgets it, and the key gets a second burst of 10 at 100s, where its own
// state would have admitted none.
TEST(TokenBucket, LimiterAdmitsNoSecondBurstAfterTheClockStepsBack) {
  ratelimit::manual_clock clock;
  ratelimit::token_bucket<ratelimit::manual_clock> limiter{
      quota::per_second(10), clock, ratelimit::in_memory_storage{{.max_keys = 16, .shards = 1}}};
  clock.set(ratelimit::manual_clock::time_point{100s});
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(limiter.try_acquire("key").allowed);
  clock.set(ratelimit::manual_clock::time_point{99s});
  ASSERT_FALSE(limiter.try_acquire("key").allowed);
  clock.set(ratelimit::manual_clock::time_point{100s});
  (void)limiter.try_acquire("another key");
  limiter.storage().sweep();

  int admitted = 0;
  for (int i = 0; i < 10; ++i) admitted += limiter.try_acquire("key").allowed ? 1 : 0;
  EXPECT_EQ(admitted, 0);
}

TEST(TokenBucket, LimiterWithAManualClockDecidesTheSame) {
  ratelimit::manual_clock clock;
  ratelimit::token_bucket<ratelimit::manual_clock> limiter{quota::per_minute(7), clock};
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(limiter.try_acquire("key").allowed);
  const decision eighth = limiter.try_acquire("key");
  EXPECT_FALSE(eighth.allowed);
  EXPECT_EQ(eighth.retry_after, std::chrono::nanoseconds{seventh_of_a_minute});
  clock.advance(eighth.retry_after - 1ns);
  EXPECT_FALSE(limiter.try_acquire("key").allowed);
  clock.advance(1ns);
  EXPECT_TRUE(limiter.try_acquire("key").allowed);
  EXPECT_TRUE(limiter.try_acquire("another key").allowed);
}

TEST(TokenBucket, CostOfZeroOrLessThrows) {
  ratelimit::token_bucket<ratelimit::manual_clock> limiter{quota::per_minute(7)};
  EXPECT_THROW((void)limiter.try_acquire("key", 0), std::invalid_argument);
  EXPECT_THROW((void)limiter.try_acquire("key", -1), std::invalid_argument);
  EXPECT_THROW((void)limiter.try_acquire("key", int64_min), std::invalid_argument);
  EXPECT_EQ(limiter.try_acquire("key", 7).remaining, 0);
}

}  // namespace
