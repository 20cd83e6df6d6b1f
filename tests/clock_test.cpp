#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <ratelimit/ratelimit.hpp>
#include <ratio>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using ratelimit::manual_clock;
using ratelimit::detail::to_nanoseconds;

constexpr std::int64_t int64_max = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t int64_min = std::numeric_limits<std::int64_t>::min();

manual_clock::time_point at(std::int64_t ns) {
  return manual_clock::time_point{std::chrono::nanoseconds{ns}};
}

std::int64_t since_epoch(const manual_clock& clock) {
  return clock.now().time_since_epoch().count();
}

// A clock a user could write: state of its own, a non-static now(), whole seconds.
class seconds_clock {
 public:
  using rep = std::int64_t;
  using period = std::ratio<1>;
  using duration = std::chrono::seconds;
  using time_point = std::chrono::time_point<seconds_clock>;

  time_point now() const { return time_point{duration{*seconds_}}; }
  void set(std::int64_t seconds) { *seconds_ = seconds; }

 private:
  std::shared_ptr<std::int64_t> seconds_ = std::make_shared<std::int64_t>(0);
};

struct no_time_point {
  using duration = std::chrono::nanoseconds;
  std::chrono::nanoseconds now() const { return {}; }
};

struct wrong_now {
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<wrong_now>;
  std::int64_t now() const { return 0; }
};

struct mutable_now {
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<mutable_now>;
  time_point now() { return {}; }
};

static_assert(ratelimit::clock_source<std::chrono::steady_clock>);
static_assert(ratelimit::clock_source<std::chrono::system_clock>);
static_assert(ratelimit::clock_source<std::chrono::high_resolution_clock>);
static_assert(ratelimit::clock_source<manual_clock>);
static_assert(ratelimit::clock_source<seconds_clock>);
static_assert(!ratelimit::clock_source<int>);
static_assert(!ratelimit::clock_source<no_time_point>);
static_assert(!ratelimit::clock_source<wrong_now>);
static_assert(!ratelimit::clock_source<mutable_now>);

TEST(ManualClock, StartsAtItsEpoch) {
  const manual_clock clock;
  EXPECT_EQ(since_epoch(clock), 0);
  EXPECT_EQ(clock.now(), manual_clock::time_point{});
}

TEST(ManualClock, AdvanceAndSetMoveTime) {
  manual_clock clock;
  clock.advance(5s);
  EXPECT_EQ(since_epoch(clock), 5'000'000'000);
  clock.advance(1ns);
  EXPECT_EQ(since_epoch(clock), 5'000'000'001);
  clock.set(at(42));
  EXPECT_EQ(since_epoch(clock), 42);
  clock.advance(0ns);
  EXPECT_EQ(since_epoch(clock), 42);
}

TEST(ManualClock, CanGoBackwards) {
  manual_clock clock;
  clock.advance(-3ns);
  EXPECT_EQ(since_epoch(clock), -3);
  clock.set(at(100));
  clock.set(at(-100));
  EXPECT_EQ(since_epoch(clock), -100);
}

TEST(ManualClock, CopiesShareOneTime) {
  manual_clock original;
  manual_clock copy = original;
  manual_clock assigned;
  assigned = copy;
  copy.advance(7ns);
  EXPECT_EQ(since_epoch(original), 7);
  assigned.set(at(11));
  EXPECT_EQ(since_epoch(original), 11);
  EXPECT_EQ(since_epoch(copy), 11);

  // A separately constructed clock has a time of its own.
  const manual_clock other;
  EXPECT_EQ(since_epoch(other), 0);
}

TEST(ManualClock, AdvanceSaturatesAtTheEndsOfInt64) {
  manual_clock clock;
  clock.set(at(int64_max - 5));
  clock.advance(10ns);
  EXPECT_EQ(since_epoch(clock), int64_max);
  clock.advance(std::chrono::nanoseconds::max());
  EXPECT_EQ(since_epoch(clock), int64_max);
  clock.advance(-1ns);
  EXPECT_EQ(since_epoch(clock), int64_max - 1);

  clock.set(at(int64_min + 5));
  clock.advance(-10ns);
  EXPECT_EQ(since_epoch(clock), int64_min);
  clock.advance(std::chrono::nanoseconds::min());
  EXPECT_EQ(since_epoch(clock), int64_min);

  clock.set(at(0));
  clock.advance(std::chrono::nanoseconds::min());
  EXPECT_EQ(since_epoch(clock), int64_min);
  clock.advance(std::chrono::nanoseconds::max());
  EXPECT_EQ(since_epoch(clock), -1);
}

TEST(ManualClock, AdvancesFromManyThreadsAddUpExactly) {
  manual_clock clock;
  constexpr int threads = 4;
  constexpr int steps = 10'000;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    // Each thread holds its own copy, as each limiter would.
    workers.emplace_back([copy = clock, t]() mutable {
      for (int i = 0; i < steps; ++i) copy.advance(std::chrono::nanoseconds{t + 1});
    });
  }
  for (auto& worker : workers) worker.join();
  EXPECT_EQ(since_epoch(clock), std::int64_t{steps} * (1 + 2 + 3 + 4));
}

TEST(ToNanoseconds, NanosecondsPassThrough) {
  EXPECT_EQ(to_nanoseconds(std::chrono::nanoseconds{int64_max}), int64_max);
  EXPECT_EQ(to_nanoseconds(std::chrono::nanoseconds{int64_min}), int64_min);
  EXPECT_EQ(to_nanoseconds(-7ns), -7);
}

TEST(ToNanoseconds, CoarseDurationsConvertExactlyWhileTheyFit) {
  EXPECT_EQ(to_nanoseconds(3s), 3'000'000'000);
  EXPECT_EQ(to_nanoseconds(-2min), -120'000'000'000);
  EXPECT_EQ(to_nanoseconds(5us), 5'000);
  EXPECT_EQ(to_nanoseconds(std::chrono::seconds{9'223'372'036}), 9'223'372'036'000'000'000);
  EXPECT_EQ(to_nanoseconds(std::chrono::seconds{-9'223'372'036}), -9'223'372'036'000'000'000);
  EXPECT_EQ(to_nanoseconds(std::chrono::duration<std::int32_t>{-1}), -1'000'000'000);
}

TEST(ToNanoseconds, CoarseDurationsSaturateInsteadOfOverflowing) {
  EXPECT_EQ(to_nanoseconds(std::chrono::seconds{9'223'372'037}), int64_max);
  EXPECT_EQ(to_nanoseconds(std::chrono::seconds{-9'223'372'037}), int64_min);
  EXPECT_EQ(to_nanoseconds(std::chrono::seconds{int64_max}), int64_max);
  EXPECT_EQ(to_nanoseconds(std::chrono::seconds{int64_min}), int64_min);
  EXPECT_EQ(to_nanoseconds(std::chrono::hours{int64_max / 2}), int64_max);
  EXPECT_EQ(to_nanoseconds(std::chrono::duration<std::int32_t, std::ratio<60>>{
                std::numeric_limits<std::int32_t>::min()}),
            int64_min);
  EXPECT_EQ(to_nanoseconds(std::chrono::microseconds{int64_max}), int64_max);
  EXPECT_EQ(to_nanoseconds(std::chrono::microseconds{int64_min}), int64_min);
}

TEST(ToNanoseconds, FinerAndOddPeriodsAreDividedWithoutOverflow) {
  using picoseconds = std::chrono::duration<std::int64_t, std::pico>;
  using thirds = std::chrono::duration<std::int64_t, std::ratio<1, 3>>;
  EXPECT_EQ(to_nanoseconds(picoseconds{5'000}), 5);
  EXPECT_EQ(to_nanoseconds(picoseconds{int64_max}), int64_max / 1000);
  EXPECT_EQ(to_nanoseconds(thirds{3}), 1'000'000'000);
  EXPECT_EQ(to_nanoseconds(thirds{int64_max}), int64_max);
  EXPECT_EQ(to_nanoseconds(thirds{int64_min}), int64_min);
}

// Some clocks count in unsigned integers; past INT64_MAX they must saturate, not wrap.
TEST(ToNanoseconds, UnsignedCountsSaturate) {
  using unsigned_nanoseconds = std::chrono::duration<std::uint64_t, std::nano>;
  using unsigned_microseconds = std::chrono::duration<std::uint64_t, std::micro>;
  constexpr std::uint64_t uint64_max = std::numeric_limits<std::uint64_t>::max();
  EXPECT_EQ(to_nanoseconds(unsigned_nanoseconds{42}), 42);
  EXPECT_EQ(to_nanoseconds(unsigned_microseconds{uint64_max}), int64_max);
  EXPECT_EQ(to_nanoseconds(unsigned_nanoseconds{std::uint64_t{1} << 63}), int64_max);
  EXPECT_EQ(to_nanoseconds(unsigned_nanoseconds{uint64_max}), int64_max);
}

TEST(ToNanoseconds, UserClockFarValuesSaturate) {
  seconds_clock clock;
  clock.set(int64_max);
  EXPECT_EQ(ratelimit::detail::now_nanoseconds(clock), int64_max);
  clock.set(int64_min);
  EXPECT_EQ(ratelimit::detail::now_nanoseconds(clock), int64_min);
  clock.set(-4);
  EXPECT_EQ(ratelimit::detail::now_nanoseconds(clock), -4'000'000'000);
}

TEST(ClockSource, LimiterRunsOnManualClock) {
  manual_clock clock;
  ratelimit::token_bucket<manual_clock> limiter{ratelimit::quota::per_second(2), clock};
  EXPECT_TRUE(limiter.try_acquire("k", 2).allowed);
  const ratelimit::decision rejected = limiter.try_acquire("k");
  EXPECT_FALSE(rejected.allowed);
  EXPECT_EQ(rejected.retry_after, 500ms);
  clock.advance(499'999'999ns);
  EXPECT_FALSE(limiter.try_acquire("k").allowed);
  clock.advance(1ns);
  EXPECT_TRUE(limiter.try_acquire("k").allowed);
  // The limiter holds a copy of the clock that shares the caller's time.
  EXPECT_EQ(limiter.clock().now(), clock.now());
}

TEST(ClockSource, LimiterRunsOnUserClockWithCoarseDuration) {
  seconds_clock clock;
  ratelimit::fixed_window<seconds_clock> limiter{ratelimit::quota::per_minute(1), clock};
  clock.set(59);
  EXPECT_TRUE(limiter.try_acquire("k").allowed);
  const ratelimit::decision rejected = limiter.try_acquire("k");
  EXPECT_FALSE(rejected.allowed);
  EXPECT_EQ(rejected.retry_after, 1s);
  clock.set(60);
  EXPECT_TRUE(limiter.try_acquire("k").allowed);
}

template <class Limiter>
void expect_first_admitted_at_far_time(std::int64_t seconds) {
  seconds_clock clock;
  clock.set(seconds);
  Limiter limiter{ratelimit::quota::per_hour(1), clock};
  EXPECT_TRUE(limiter.try_acquire("k").allowed);
  EXPECT_FALSE(limiter.try_acquire("k").allowed);
}

TEST(ClockSource, LimitersSurviveUserClockAtItsFarEnds) {
  for (const std::int64_t seconds : {int64_max, int64_min, std::int64_t{9'223'372'037}}) {
    SCOPED_TRACE(seconds);
    expect_first_admitted_at_far_time<ratelimit::token_bucket<seconds_clock>>(seconds);
    expect_first_admitted_at_far_time<ratelimit::leaky_bucket<seconds_clock>>(seconds);
    expect_first_admitted_at_far_time<ratelimit::fixed_window<seconds_clock>>(seconds);
    expect_first_admitted_at_far_time<ratelimit::sliding_log<seconds_clock>>(seconds);
    expect_first_admitted_at_far_time<ratelimit::sliding_window_counter<seconds_clock>>(seconds);
  }
}

// Real clocks: one request a century, so no clock step while the test runs can refill it.
template <class Clock>
void expect_limiter_on_real_clock() {
  const auto century = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<std::int64_t, std::ratio<3'155'695'200>>{1});
  ratelimit::token_bucket<Clock> limiter{ratelimit::quota::per(1, century)};
  EXPECT_TRUE(limiter.try_acquire("k").allowed);
  const ratelimit::decision rejected = limiter.try_acquire("k");
  EXPECT_FALSE(rejected.allowed);
  EXPECT_GT(rejected.retry_after, century - std::chrono::hours{24});
  EXPECT_LE(rejected.retry_after, century);
}

TEST(ClockSource, LimiterRunsOnSteadyClock) {
  expect_limiter_on_real_clock<std::chrono::steady_clock>();
}

TEST(ClockSource, LimiterRunsOnSystemClock) {
  expect_limiter_on_real_clock<std::chrono::system_clock>();
}

TEST(ClockSource, LimiterRunsOnCoarseSteadyClock) {
  expect_limiter_on_real_clock<ratelimit::coarse_steady_clock>();
}

TEST(CoarseSteadyClock, NeverGoesBackAndLagsSteadyClockByAtMostATick) {
  // Both count from the same boot-time epoch on Linux: the coarse one is the fine one as
  // of the last tick. A tick is at most 10 ms at any kernel HZ; allow scheduling on top.
  constexpr auto most_lag = std::chrono::milliseconds{50};
  auto previous = ratelimit::coarse_steady_clock::now();
  for (int i = 0; i < 100'000; ++i) {
    const auto fine_before = std::chrono::steady_clock::now().time_since_epoch();
    const auto coarse = ratelimit::coarse_steady_clock::now();
    const auto fine_after = std::chrono::steady_clock::now().time_since_epoch();
    ASSERT_GE(coarse, previous);
    ASSERT_LE(coarse.time_since_epoch(), fine_after);
    ASSERT_LE(fine_before - coarse.time_since_epoch(), most_lag);
    previous = coarse;
  }
}

TEST(ClockSource, DefaultClockIsSteadyClock) {
  ratelimit::token_bucket limiter{ratelimit::quota::per_second(1)};
  static_assert(std::is_same_v<decltype(limiter)::clock_type, std::chrono::steady_clock>);
  static_assert(std::is_same_v<decltype(limiter)::storage_type, ratelimit::in_memory_storage>);
  EXPECT_EQ(limiter.quota(), ratelimit::quota::per_second(1));
}

}  // namespace
