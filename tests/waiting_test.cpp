// Waiting instead of rejecting: acquire blocks until admitted or returns the rejection at
// once; reserve books now for later. Every wait sleeps on a manual_clock and is woken by
// advancing it, never by real time passing.

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <ratelimit/ratelimit.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>

#include "support/algorithm_types.hpp"

namespace {

using namespace std::chrono_literals;
using ratelimit::manual_clock;
using ratelimit::quota;

/// A call made on another thread, so that the test can watch it block and wake it.
class waiter {
 public:
  explicit waiter(std::function<ratelimit::decision()> call)
      : thread_([this, call = std::move(call)] {
          result_ = call();
          done_.store(true);
        }) {}
  ~waiter() {
    if (thread_.joinable()) thread_.join();
  }

  bool done() const { return done_.load(); }
  ratelimit::decision result() {
    thread_.join();
    return *result_;
  }

 private:
  std::optional<ratelimit::decision> result_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

/// Returns once `n` threads sleep on the clock, or the call under test returned.
void until_asleep(const manual_clock& clock, int n, const waiter& w) {
  while (clock.sleepers() < n && !w.done()) std::this_thread::yield();
}

template <class A>
class Acquire : public testing::Test {};
TYPED_TEST_SUITE(Acquire, ratelimit_test::all_algorithms, ratelimit_test::algorithm_name);

template <class A>
using limiter_of = ratelimit::basic_limiter<A, manual_clock, ratelimit::in_memory_storage>;

template <class A>
constexpr bool is_leaky = std::is_same_v<A, ratelimit::algorithms::leaky_bucket>;

/// Fills `key` and returns the wait until one more unit would be served: the token bucket
/// books it now and waits until it has refilled, the windows until their retry_after. The
/// leaky bucket books a place behind the full queue, served once the queue has drained.
template <class A>
std::chrono::nanoseconds fill(limiter_of<A>& limiter, std::string_view key) {
  while (limiter.try_acquire(key)) {
  }
  const auto rejected = limiter.try_acquire(key);
  return is_leaky<A> ? rejected.reset_after : rejected.retry_after;
}

TYPED_TEST(Acquire, AdmitsAtOnceWhenTheUnitsAreThere) {
  manual_clock clock;
  limiter_of<TypeParam> limiter{quota::per_second(4), clock, ratelimit::in_memory_storage{}};
  const auto d = limiter.acquire("k", 1, 10s);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.delay, 0ns);
  EXPECT_EQ(clock.sleepers(), 0);
}

TYPED_TEST(Acquire, SleepsUntilTheUnitsAreThereAndNotANanosecondLess) {
  manual_clock clock;
  limiter_of<TypeParam> limiter{quota::per(3, 7s), clock, ratelimit::in_memory_storage{}};
  const auto due = fill(limiter, "k");
  ASSERT_GT(due, 0ns);

  manual_clock::time_point admitted_at{};
  waiter w{[&] {
    const auto d = limiter.acquire("k", 1, 1h);
    admitted_at = clock.now();
    return d;
  }};
  until_asleep(clock, 1, w);
  ASSERT_FALSE(w.done()) << "returned without waiting";
  clock.advance(due - 1ns);
  until_asleep(clock, 1, w);
  EXPECT_FALSE(w.done()) << "woke before its units were there";
  clock.advance(1ns);
  const auto d = w.result();
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.delay, 0ns) << "acquire has waited the delay itself";
  EXPECT_GE(admitted_at.time_since_epoch(), due);
}

TYPED_TEST(Acquire, ReturnsTheRejectionAtOnceWhenTheWaitWouldBeLonger) {
  manual_clock clock;
  limiter_of<TypeParam> limiter{quota::per_minute(2), clock, ratelimit::in_memory_storage{}};
  // The longest wait that still falls short of the unit.
  const auto max_wait = fill(limiter, "k") - 1ns;
  waiter w{[&] { return limiter.acquire("k", 1, max_wait); }};
  until_asleep(clock, 1, w);
  if (!w.done()) {
    clock.advance(24h);  // releases it, to fail rather than hang
    FAIL() << "acquire slept though its wait could not be long enough";
  }
  const auto d = w.result();
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(clock.now().time_since_epoch(), 0ns) << "no time passed";
  // The wait until the same acquire would succeed.
  EXPECT_GT(d.retry_after, 0ns);
  clock.advance(d.retry_after);
  waiter again{[&] { return limiter.acquire("k", 1, max_wait); }};
  until_asleep(clock, 1, again);
  clock.advance(max_wait);
  EXPECT_TRUE(again.result().allowed);
}

TYPED_TEST(Acquire, ARequestLargerThanTheQuotaIsRejectedAtOnceAsNever) {
  manual_clock clock;
  limiter_of<TypeParam> limiter{quota::per_second(4), clock, ratelimit::in_memory_storage{}};
  const auto d = limiter.acquire("k", 5, 24h);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, std::chrono::nanoseconds::max());
  EXPECT_EQ(clock.sleepers(), 0);
}

TYPED_TEST(Acquire, AZeroWaitIsTryAcquireWithoutAQueue) {
  manual_clock clock;
  // A leaky bucket of one place admits only what it serves at once, as acquire does.
  const quota q = quota::per_second(3).with_burst(is_leaky<TypeParam> ? 1 : 3);
  limiter_of<TypeParam> twin{q, clock, ratelimit::in_memory_storage{}};
  limiter_of<TypeParam> limiter{quota::per_second(3), clock, ratelimit::in_memory_storage{}};
  for (int i = 0; i < 5; ++i) {
    const auto expected = twin.try_acquire("k");
    const auto d = limiter.acquire("k", 1, 0ns);
    EXPECT_EQ(d.allowed, expected.allowed) << i;
    if (!is_leaky<TypeParam>) {
      EXPECT_EQ(d.remaining, expected.remaining) << i;
    }
  }
  EXPECT_EQ(clock.sleepers(), 0);
}

TYPED_TEST(Acquire, JitterNeverWakesEarlyNorPastTheLongestWait) {
  // With the wait due exactly at max_wait, any jitter would overrun it: there is none.
  manual_clock clock;
  limiter_of<TypeParam> limiter{quota::per_second(1), clock, ratelimit::in_memory_storage{}};
  const auto due = fill(limiter, "k");
  waiter w{[&] { return limiter.acquire("k", 1, due, 10min); }};
  until_asleep(clock, 1, w);
  clock.advance(due - 1ns);
  until_asleep(clock, 1, w);
  EXPECT_FALSE(w.done());
  clock.advance(1ns);
  EXPECT_TRUE(w.result().allowed);
}

TEST(Acquire, WindowWaitersThatLoseTheRaceWaitAgainWithinTheirBudget) {
  // Two waiters for one slot of the next window: one gets it, the other waits for the
  // window after, still within its budget.
  manual_clock clock;
  ratelimit::fixed_window limiter{quota::per_second(1), clock};
  ASSERT_TRUE(limiter.try_acquire("k"));
  waiter first{[&] { return limiter.acquire("k", 1, 5s); }};
  waiter second{[&] { return limiter.acquire("k", 1, 5s); }};
  while (clock.sleepers() < 2) std::this_thread::yield();
  clock.advance(1s);
  // One of them is admitted in the second window; the other sleeps again for the third.
  while (!first.done() && !second.done()) std::this_thread::yield();
  while (clock.sleepers() < 1 && !(first.done() && second.done())) std::this_thread::yield();
  EXPECT_FALSE(first.done() && second.done()) << "two admitted in a window of one";
  clock.advance(1s);
  EXPECT_TRUE(first.result().allowed);
  EXPECT_TRUE(second.result().allowed);
  EXPECT_EQ(clock.now().time_since_epoch(), 2s);
}

TEST(Acquire, BucketWaitersAreServedInTheOrderTheyCame) {
  // Reservations line up: the n-th waiter's delay is n intervals, whoever wakes first.
  manual_clock clock;
  ratelimit::token_bucket limiter{quota::per_second(10).with_burst(1), clock};
  ASSERT_TRUE(limiter.try_acquire("k"));
  std::set<std::int64_t> delays;
  for (int n = 1; n <= 5; ++n) {
    auto r = limiter.reserve("k", 1, 1s);
    ASSERT_TRUE(r);
    delays.insert(r.delay().count());
    EXPECT_EQ(r.delay(), n * 100ms);
  }
  EXPECT_EQ(delays.size(), 5u);
}

TEST(Acquire, RejectsANegativeWaitOrJitterNamingIt) {
  ratelimit::token_bucket limiter{quota::per_second(1)};
  try {
    static_cast<void>(limiter.acquire("k", 1, -3ns));
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("max_wait must be >= 0ns (got -3ns)"), std::string::npos)
        << e.what();
  }
  try {
    static_cast<void>(limiter.acquire("k", 1, 1s, -7ns));
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("jitter must be >= 0ns (got -7ns)"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(static_cast<void>(limiter.acquire("k", 0, 1s)), std::invalid_argument);
  EXPECT_THROW(static_cast<void>(limiter.reserve("k", 1, -1ns)), std::invalid_argument);
}

TEST(Jitter, DrawsSpreadUniformlyWithinItsBound) {
  constexpr std::int64_t bound = 999;
  std::array<int, 10> deciles{};
  for (int i = 0; i < 100'000; ++i) {
    const std::int64_t j = ratelimit::detail::jitter_up_to(bound);
    ASSERT_GE(j, 0);
    ASSERT_LE(j, bound);
    ++deciles[static_cast<std::size_t>(j / 100)];
  }
  // 10,000 expected in each: 5 standard deviations is 475.
  for (const int n : deciles) EXPECT_NEAR(n, 10'000, 500);
  EXPECT_EQ(ratelimit::detail::jitter_up_to(0), 0);
}

// reserve: what it books, and what cancel gives back.

template <class A>
class Reserve : public testing::Test {};
using buckets =
    testing::Types<ratelimit::algorithms::token_bucket, ratelimit::algorithms::leaky_bucket>;
TYPED_TEST_SUITE(Reserve, buckets, ratelimit_test::algorithm_name);

TYPED_TEST(Reserve, ACancelledReservationLeavesTheKeyAsIfItNeverHappened) {
  manual_clock clock;
  const quota q = quota::per_minute(7).with_burst(3);
  limiter_of<TypeParam> twin{q, clock, ratelimit::in_memory_storage{}};
  limiter_of<TypeParam> limiter{q, clock, ratelimit::in_memory_storage{}};
  ASSERT_TRUE(twin.try_acquire("k", 2));
  ASSERT_TRUE(limiter.try_acquire("k", 2));
  auto r = limiter.reserve("k", 3, 1h);
  ASSERT_TRUE(r);
  EXPECT_GT(r.delay(), 0ns);
  clock.advance(5s);
  limiter.cancel("k", r);
  EXPECT_FALSE(r.outstanding());
  for (int i = 0; i < 40; ++i) {
    const auto expected = twin.try_acquire("k");
    const auto d = limiter.try_acquire("k");
    ASSERT_EQ(d.allowed, expected.allowed) << i;
    ASSERT_EQ(d.remaining, expected.remaining) << i;
    ASSERT_EQ(d.retry_after, expected.retry_after) << i;
    ASSERT_EQ(d.reset_after, expected.reset_after) << i;
    ASSERT_EQ(d.delay, expected.delay) << i;
    clock.advance(1700ms);
  }
}

TYPED_TEST(Reserve, ARejectedOrAlreadyCancelledReservationGivesNothingBack) {
  manual_clock clock;
  limiter_of<TypeParam> twin{quota::per_second(2), clock, ratelimit::in_memory_storage{}};
  limiter_of<TypeParam> limiter{quota::per_second(2), clock, ratelimit::in_memory_storage{}};
  auto taken = limiter.reserve("k", 2, 0ns);
  ASSERT_TRUE(twin.try_acquire("k", 2));
  ASSERT_TRUE(taken);
  auto rejected = limiter.reserve("k", 1, 100ms);
  ASSERT_FALSE(rejected);
  EXPECT_FALSE(rejected.outstanding());
  // Until the same reservation succeeds: a token has refilled 100 ms from now, or the
  // queue drains to 100 ms.
  EXPECT_EQ(rejected.decision().retry_after, is_leaky<TypeParam> ? 900ms : 400ms);
  limiter.cancel("k", rejected);

  auto moved = std::move(taken);
  limiter.cancel("k", taken);  // moved from: nothing
  const auto after_nothing = limiter.try_acquire("k");
  EXPECT_EQ(after_nothing.allowed, twin.try_acquire("k").allowed);
  limiter.cancel("k", moved);
  limiter.cancel("k", moved);  // twice: once
  const auto d = limiter.try_acquire("k", 2);
  EXPECT_TRUE(d.allowed);
  EXPECT_FALSE(limiter.try_acquire("k")) << "the second cancel gave back again";
}

TEST(ReserveLeakyBucket, AReservationMayQueueBeyondTheBurstWithinItsWait) {
  manual_clock clock;
  ratelimit::leaky_bucket limiter{quota::per_second(4), clock};
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(limiter.try_acquire("k"));
  EXPECT_FALSE(limiter.try_acquire("k")) << "the queue is full";
  auto r = limiter.reserve("k", 1, 1s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r.delay(), 1s) << "after the four queued, one interval each";
  EXPECT_FALSE(limiter.reserve("k", 1, 1249ms));
}

}  // namespace
