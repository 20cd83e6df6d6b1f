// The leaky bucket of DESIGN section 2, one rule per test, with the numbers written out.

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
using leaky = ratelimit::algorithms::leaky_bucket;
using ratelimit_test::admitted_of;
using ratelimit_test::int64_max;
using ratelimit_test::int64_min;

constexpr auto never = std::chrono::nanoseconds::max();
constexpr std::int64_t seconds = 1'000'000'000;
constexpr std::int64_t milliseconds = 1'000'000;

/// Checks that admitted requests, served at (admit time + delay), leave at least
/// `cost · interval` after the request served before them.
class departures {
 public:
  explicit departures(std::int64_t interval) : interval_(interval) {}

  testing::AssertionResult admit(std::int64_t now, std::int64_t cost, const decision& d) {
    const ratelimit_test::i128 served = ratelimit_test::i128{now} + d.delay.count();
    const ratelimit_test::i128 earliest = free_from_;
    free_from_ = served + ratelimit_test::i128{cost} * interval_;
    if (served >= earliest) return testing::AssertionSuccess();
    return testing::AssertionFailure()
           << "served at " << static_cast<std::int64_t>(served) << ", "
           << static_cast<std::int64_t>(earliest - served) << "ns before the queue ahead leaves";
  }

 private:
  std::int64_t interval_;
  ratelimit_test::i128 free_from_ = ratelimit_test::i128{int64_min} - 1;
};

TEST(LeakyBucket, FirstRequestIsServedAtOnce) {
  const quota q = quota::per_second(10).with_burst(5);
  auto s = leaky::fresh(q, 0);
  const decision d = leaky::step(s, q, 0, 1);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.delay, 0ns);
  EXPECT_EQ(d.limit, 10);
  EXPECT_EQ(d.remaining, 4);
  EXPECT_EQ(d.reset_after, 100ms);
}

TEST(LeakyBucket, DelayIsTheWaitInTheQueue) {
  // 10 per second, a queue of 5: one request leaves every 100ms.
  const quota q = quota::per_second(10).with_burst(5);
  auto s = leaky::fresh(q, 0);
  for (std::int64_t k = 0; k < 5; ++k) {
    const decision d = leaky::step(s, q, 0, 1);
    EXPECT_TRUE(d.allowed) << k;
    EXPECT_EQ(d.delay, std::chrono::nanoseconds{k * 100 * milliseconds}) << k;
    EXPECT_EQ(d.remaining, 4 - k) << k;
    EXPECT_EQ(d.reset_after, std::chrono::nanoseconds{(k + 1) * 100 * milliseconds}) << k;
  }
  const decision sixth = leaky::step(s, q, 0, 1);
  EXPECT_FALSE(sixth.allowed);
  EXPECT_EQ(sixth.delay, 0ns);
  EXPECT_EQ(sixth.retry_after, 100ms);
  EXPECT_EQ(sixth.reset_after, 500ms);

  const decision later = leaky::step(s, q, 100 * milliseconds, 1);
  EXPECT_TRUE(later.allowed);
  EXPECT_EQ(later.delay, 400ms);  // served at 500ms, right after the fifth
}

TEST(LeakyBucket, DelaysOfAnAwkwardRateAreRoundedUp) {
  // per_minute(7): the k-th request in the queue leaves at ceil(k·60s/7).
  const quota q = quota::per_minute(7);
  auto s = leaky::fresh(q, 0);
  const std::vector<std::int64_t> expected{0,
                                           8'571'428'572,
                                           17'142'857'143,
                                           25'714'285'715,
                                           34'285'714'286,
                                           42'857'142'858,
                                           51'428'571'429};
  for (std::int64_t delay : expected) {
    EXPECT_EQ(leaky::step(s, q, 0, 1).delay, std::chrono::nanoseconds{delay});
  }
  const decision eighth = leaky::step(s, q, 0, 1);
  EXPECT_FALSE(eighth.allowed);
  EXPECT_EQ(eighth.retry_after, std::chrono::nanoseconds{8'571'428'572});
}

TEST(LeakyBucket, AdmitsIffTheQueueHasRoomForTheCost) {
  // Room for 5 intervals of 100ms: delay + cost·100ms <= 500ms.
  const quota q = quota::per_second(10).with_burst(5);
  auto s = leaky::fresh(q, 0);
  const decision three = leaky::step(s, q, 0, 3);
  EXPECT_TRUE(three.allowed);
  EXPECT_EQ(three.delay, 0ns);
  EXPECT_EQ(three.remaining, 2);

  const decision three_more = leaky::step(s, q, 0, 3);  // 300ms + 300ms > 500ms
  EXPECT_FALSE(three_more.allowed);
  EXPECT_EQ(three_more.retry_after, 100ms);

  const decision two = leaky::step(s, q, 0, 2);  // 300ms + 200ms = 500ms
  EXPECT_TRUE(two.allowed);
  EXPECT_EQ(two.delay, 300ms);
  EXPECT_EQ(two.remaining, 0);

  const decision one = leaky::step(s, q, 0, 1);
  EXPECT_FALSE(one.allowed);
  EXPECT_EQ(one.retry_after, 100ms);
  EXPECT_EQ(leaky::step(s, q, 100 * milliseconds, 1).delay, 400ms);
}

TEST(LeakyBucket, RemainingIsTheFreePlacesInTheQueue) {
  // Five queued at 0; at 150ms one and a half have left.
  const quota q = quota::per_second(10).with_burst(5);
  auto s = leaky::fresh(q, 0);
  ASSERT_EQ(admitted_of<leaky>(s, q, 0, 5), 5);
  const decision one = leaky::step(s, q, 150 * milliseconds, 1);
  EXPECT_TRUE(one.allowed);
  EXPECT_EQ(one.delay, 350ms);
  EXPECT_EQ(one.remaining, 0);
  const decision another = leaky::step(s, q, 150 * milliseconds, 1);
  EXPECT_FALSE(another.allowed);
  EXPECT_EQ(another.remaining, 0);
  EXPECT_EQ(another.retry_after, 50ms);
}

TEST(LeakyBucket, ServedRequestsAreNeverCloserThanOneInterval) {
  // Whole-nanosecond intervals, random arrivals and costs: each admitted request leaves at
  // least cost·interval after the one served before it.
  const std::vector<quota> quotas{quota::per_second(10),
                                  quota::per(3, 12ns),
                                  quota::per(1, 1ns),
                                  quota::per(5, 1s).with_burst(2),
                                  quota::per(4, 1us).with_burst(9),
                                  quota::per(2, 2h).with_burst(40)};
  std::int64_t admitted = 0;
  for (const quota& q : quotas) {
    const std::int64_t interval = q.period.count() / q.limit;
    ASSERT_EQ(interval * q.limit, q.period.count());
    for (std::uint64_t seed = 1; seed <= 10; ++seed) {
      ratelimit_test::random_requests random(q, q.burst, seed);
      auto s = leaky::fresh(q, 0);
      departures queue(interval);
      decision d{};
      for (int i = 0; i < 300; ++i) {
        const ratelimit_test::request r = random.next(d);
        d = leaky::step(s, q, r.at, r.cost);
        if (!d.allowed) continue;
        ++admitted;
        ASSERT_TRUE(queue.admit(r.at, r.cost, d))
            << ratelimit_test::describe(q) << ", seed " << seed;
      }
    }
  }
  EXPECT_GT(admitted, 5'000);
}

TEST(LeakyBucket, DeparturesOfAFractionalIntervalNeverDrift) {
  // per_minute(7) with room for 7000: requests leave floor(I) or ceil(I) apart
  // (8'571'428'571 or 8'571'428'572 ns), and the 7000th leaves 999 minutes and
  // 8'571'428'571 ns in, exactly on the rational schedule.
  const quota q = quota::per_minute(7).with_burst(7'000);
  auto s = leaky::fresh(q, 0);
  std::int64_t previous = 0;
  decision d{};
  for (std::int64_t k = 0; k < 7'000; ++k) {
    d = leaky::step(s, q, 0, 1);
    ASSERT_TRUE(d.allowed) << k;
    ASSERT_EQ(d.delay.count(), (k * 60 * seconds + 6) / 7) << k;
    if (k > 0) {
      const std::int64_t gap = d.delay.count() - previous;
      ASSERT_TRUE(gap == 8'571'428'571 || gap == 8'571'428'572) << k << ": " << gap;
    }
    previous = d.delay.count();
  }
  EXPECT_EQ(d.delay, std::chrono::nanoseconds{59'991'428'571'429});
  EXPECT_EQ(d.reset_after, 1000min);
}

TEST(LeakyBucket, RetryAfterIsExactToTheNanosecondInManyStates) {
  ratelimit_test::for_many_states<leaky>(ratelimit_test::retry_after_is_exact<leaky>);
}

TEST(LeakyBucket, ResetAfterIsWhenTheQueueHasDrained) {
  const quota q = quota::per_second(10).with_burst(5);
  auto s = leaky::fresh(q, 0);
  ASSERT_EQ(admitted_of<leaky>(s, q, 0, 2), 2);
  const decision third = leaky::step(s, q, 50 * milliseconds, 1);
  EXPECT_EQ(third.delay, 150ms);
  EXPECT_EQ(third.reset_after, 250ms);
  EXPECT_FALSE(leaky::step(s, q, 300 * milliseconds - 1, 5).allowed);
  EXPECT_TRUE(leaky::step(s, q, 300 * milliseconds, 5).allowed);
}

TEST(LeakyBucket, ResetAfterLeavesAKeyIndistinguishableFromAFreshOne) {
  ratelimit_test::for_many_states<leaky>(ratelimit_test::reset_after_is_exact<leaky>);
}

TEST(LeakyBucket, CostAboveTheBurstIsNeverAdmittedAndConsumesNothing) {
  const quota q = quota::per_second(10).with_burst(5);
  auto s = leaky::fresh(q, 0);
  for (std::int64_t cost : {std::int64_t{6}, quota::max_units, int64_max}) {
    const decision d = leaky::step(s, q, 0, cost);
    EXPECT_FALSE(d.allowed) << cost;
    EXPECT_EQ(d.retry_after, never) << cost;
    EXPECT_EQ(d.delay, 0ns) << cost;
    EXPECT_EQ(d.remaining, 5) << cost;
  }
  EXPECT_EQ(admitted_of<leaky>(s, q, 0, 6), 5);
}

TEST(LeakyBucket, RejectionConsumesNothing) {
  const quota q = quota::per_second(10).with_burst(5);
  auto s = leaky::fresh(q, 0);
  ASSERT_EQ(admitted_of<leaky>(s, q, 0, 4), 4);
  EXPECT_FALSE(leaky::step(s, q, 0, 2).allowed);
  const decision one = leaky::step(s, q, 0, 1);
  EXPECT_TRUE(one.allowed);
  EXPECT_EQ(one.delay, 400ms);
}

TEST(LeakyBucket, RejectionConsumesNothingInManyStates) {
  ratelimit_test::for_many_states<leaky>(ratelimit_test::rejection_consumes_nothing<leaky>);
}

TEST(LeakyBucket, QueuesOfTwoToThe62DoNotOverflow) {
  // 2^62 per ns: 2^61 units take half a nanosecond, rounded up.
  const quota q = quota::per(quota::max_units, 1ns);
  auto s = leaky::fresh(q, 0);
  EXPECT_EQ(leaky::step(s, q, 0, quota::max_units / 2).delay, 0ns);
  const decision second = leaky::step(s, q, 0, quota::max_units / 2);
  EXPECT_TRUE(second.allowed);
  EXPECT_EQ(second.delay, 1ns);
  EXPECT_EQ(second.remaining, 0);
  const decision full = leaky::step(s, q, 0, 1);
  EXPECT_FALSE(full.allowed);
  EXPECT_EQ(full.retry_after, 1ns);
  EXPECT_EQ(leaky::step(s, q, 0, int64_max).retry_after, never);
}

TEST(LeakyBucket, PeriodsOfYearsSpaceRequestsExactly) {
  const quota q = quota::per(2, 200 * 8760h);
  auto s = leaky::fresh(q, 0);
  EXPECT_EQ(leaky::step(s, q, 0, 1).delay, 0ns);
  EXPECT_EQ(leaky::step(s, q, 0, 1).delay, std::chrono::nanoseconds{3'153'600'000'000'000'000});
  EXPECT_EQ(leaky::step(s, q, 0, 1).retry_after,
            std::chrono::nanoseconds{3'153'600'000'000'000'000});
}

TEST(LeakyBucket, NoRequestIsAdmittedToLeaveAfterTheEndOfTheClock) {
  // The second request would leave 1s after INT64_MAX - 10, after the end of the clock:
  // it is never admitted, and the queue never drains.
  const quota q = quota::per_second(1).with_burst(2);
  auto s = leaky::fresh(q, int64_max - 10);
  EXPECT_EQ(leaky::step(s, q, int64_max - 10, 1).delay, 0ns);
  const decision second = leaky::step(s, q, int64_max - 10, 1);
  EXPECT_FALSE(second.allowed);
  EXPECT_EQ(second.retry_after, never);
  EXPECT_EQ(second.reset_after, never);
  EXPECT_EQ(leaky::step(s, q, int64_max, 1).retry_after, never);

  auto early = leaky::fresh(q, int64_min);
  EXPECT_EQ(leaky::step(early, q, int64_min, 1).delay, 0ns);
  EXPECT_EQ(leaky::step(early, q, int64_min, 1).delay, 1s);
  EXPECT_EQ(leaky::step(early, q, int64_min, 1).retry_after, 1s);
}

TEST(LeakyBucket, OnePerNanosecond) {
  const quota q = quota::per(1, 1ns).with_burst(3);
  auto s = leaky::fresh(q, 0);
  for (std::int64_t k = 0; k < 3; ++k) EXPECT_EQ(leaky::step(s, q, 0, 1).delay.count(), k);
  EXPECT_EQ(leaky::step(s, q, 0, 1).retry_after, 1ns);
  EXPECT_EQ(leaky::step(s, q, 1, 1).delay, 2ns);
}

// DESIGN pins the leaky bucket as `delay = max(0, tat − now)` for the request's `now`. Once
// the clock steps back from 10s to 9s, the queue due to drain at 11s holds 2s of work:
// 2s + 1s > 2s rejects, with 1s to wait. The library measures from the latest instant it saw
// (10s) instead, admits, and serves the request at 9s + 1s = 10s, the same instant as the
// first one.
TEST(LeakyBucket, ClockSteppedBackMeasuresTheQueueFromTheNewNow) {
  const quota q = quota::per_second(1).with_burst(2);
  auto s = leaky::fresh(q, 10 * seconds);
  ASSERT_EQ(leaky::step(s, q, 10 * seconds, 1).delay, 0ns);
  const decision d = leaky::step(s, q, 9 * seconds, 1);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, 1s);
}

TEST(LeakyBucket, ServedRequestsStayOneIntervalApartWhenTheClockStepsBack) {
  const quota q = quota::per_second(10).with_burst(4);
  std::int64_t admitted = 0;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    ratelimit_test::random_requests random(q, q.burst, seed, {.backward = true});
    auto s = leaky::fresh(q, 0);
    departures queue(100 * milliseconds);
    decision d{};
    for (int i = 0; i < 300; ++i) {
      const ratelimit_test::request r = random.next(d);
      d = leaky::step(s, q, r.at, r.cost);
      if (!d.allowed) continue;
      ++admitted;
      ASSERT_TRUE(queue.admit(r.at, r.cost, d)) << "seed " << seed << ", request " << i;
    }
  }
  EXPECT_GT(admitted, 1'000);
}

TEST(LeakyBucket, LimiterWithAManualClockDecidesTheSame) {
  ratelimit::manual_clock clock;
  ratelimit::leaky_bucket<ratelimit::manual_clock> limiter{quota::per_second(10).with_burst(5),
                                                           clock};
  for (std::int64_t k = 0; k < 5; ++k) {
    EXPECT_EQ(limiter.try_acquire("key").delay, std::chrono::nanoseconds{k * 100 * milliseconds});
  }
  const decision sixth = limiter.try_acquire("key");
  EXPECT_FALSE(sixth.allowed);
  clock.advance(sixth.retry_after - 1ns);
  EXPECT_FALSE(limiter.try_acquire("key").allowed);
  clock.advance(1ns);
  EXPECT_EQ(limiter.try_acquire("key").delay, 400ms);
}

TEST(LeakyBucket, CostOfZeroOrLessThrows) {
  ratelimit::leaky_bucket<ratelimit::manual_clock> limiter{quota::per_second(10)};
  EXPECT_THROW((void)limiter.try_acquire("key", 0), std::invalid_argument);
  EXPECT_THROW((void)limiter.try_acquire("key", -5), std::invalid_argument);
  EXPECT_TRUE(limiter.try_acquire("key", 10).allowed);
}

}  // namespace
