// Several rules at once, all or nothing, with the numbers written out.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <ratelimit/ratelimit.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using ratelimit::manual_clock;
using ratelimit::quota;
using ratelimit::rule;
using ratelimit::rule_scope;
namespace algorithms = ratelimit::algorithms;

template <class... As>
using limiter = ratelimit::basic_multi_limiter<manual_clock, ratelimit::in_memory_storage, As...>;

TEST(MultiLimiter, ARequestRejectedByOneRuleConsumesFromNone) {
  // 2 at once per user (a bucket refilling 10 a second), and 3 a minute per user.
  manual_clock clock;
  limiter<algorithms::token_bucket, algorithms::fixed_window> limits{
      clock, ratelimit::in_memory_storage{},
      rule<algorithms::token_bucket>{"burst", quota::per_second(10).with_burst(2)},
      rule<algorithms::fixed_window>{"minute", quota::per_minute(3)}};

  EXPECT_TRUE(limits.try_acquire("alice"));
  EXPECT_TRUE(limits.try_acquire("alice"));
  // The bucket is empty: the third fails on "burst" and must not count for "minute".
  const auto third = limits.try_acquire("alice");
  EXPECT_FALSE(third.allowed);
  EXPECT_EQ(third.rejected_by, 0u);
  EXPECT_EQ(third.most_restrictive, 0u);
  EXPECT_EQ(third.combined().retry_after, 100ms);
  EXPECT_TRUE(third.rules[1].allowed);  // "minute" alone would have admitted it
  EXPECT_EQ(third.rules[1].remaining, 0);

  // A second later the bucket is full again, and "minute" still has its third unit.
  clock.advance(1s);
  const auto fourth = limits.try_acquire("alice");
  EXPECT_TRUE(fourth.allowed);
  EXPECT_EQ(fourth.rules[1].remaining, 0);
  EXPECT_EQ(fourth.most_restrictive, 1u);
  const auto fifth = limits.try_acquire("alice");
  EXPECT_FALSE(fifth.allowed);
  EXPECT_EQ(fifth.rejected_by, 1u);
  EXPECT_EQ(fifth.combined().retry_after, 59s);
  EXPECT_TRUE(fifth.rules[0].allowed);
}

TEST(MultiLimiter, AGlobalRuleIsSharedByEveryKey) {
  manual_clock clock;
  limiter<algorithms::token_bucket, algorithms::fixed_window> limits{
      clock, ratelimit::in_memory_storage{},
      rule<algorithms::token_bucket>{"user", quota::per_second(100)},
      rule<algorithms::fixed_window>{"service", quota::per_minute(3), rule_scope::global}};
  EXPECT_TRUE(limits.try_acquire("a"));
  EXPECT_TRUE(limits.try_acquire("b"));
  EXPECT_TRUE(limits.try_acquire("c"));
  const auto d = limits.try_acquire("d");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rejected_by, 1u);
  EXPECT_EQ(d.combined().limit, 3);
  // "d" consumed nothing: its own bucket is full the moment the service has room again.
  clock.advance(60s);
  EXPECT_EQ(limits.try_acquire("d").rules[0].remaining, 99);
}

TEST(MultiLimiter, TheSetWaitsForItsSlowestRejectingRule) {
  manual_clock clock;
  limiter<algorithms::token_bucket, algorithms::sliding_log, algorithms::fixed_window> limits{
      clock, ratelimit::in_memory_storage{},
      rule<algorithms::token_bucket>{"second", quota::per_second(1)},
      rule<algorithms::sliding_log>{"ten_seconds", quota::per(1, 10s)},
      rule<algorithms::fixed_window>{"minute", quota::per_minute(5)}};
  ASSERT_TRUE(limits.try_acquire("k"));
  const auto d = limits.try_acquire("k");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rejected_by, 0u);
  EXPECT_EQ(d.rules[0].retry_after, 1s);
  EXPECT_EQ(d.rules[1].retry_after, 10s);
  EXPECT_EQ(d.most_restrictive, 1u);
  EXPECT_EQ(d.combined().retry_after, 10s);
  clock.advance(10s - 1ns);
  EXPECT_FALSE(limits.try_acquire("k"));
  clock.advance(1ns);
  EXPECT_TRUE(limits.try_acquire("k"));
}

TEST(MultiLimiter, ASlidingLogRuleIsTakenBackExactly) {
  // The log's state can't be copied cheaply: a rejection elsewhere undoes its step.
  manual_clock clock;
  limiter<algorithms::sliding_log, algorithms::token_bucket> limits{
      clock, ratelimit::in_memory_storage{},
      rule<algorithms::sliding_log>{"log", quota::per_minute(2)},
      rule<algorithms::token_bucket>{"bucket", quota::per_second(1)}};
  ASSERT_TRUE(limits.try_acquire("k"));
  for (int i = 0; i < 5; ++i) {
    const auto d = limits.try_acquire("k");  // the bucket rejects; the log would admit
    ASSERT_FALSE(d.allowed);
    ASSERT_EQ(d.rules[0].remaining, 0);  // what it would have left: 2 - 1 - 1
  }
  clock.advance(1s);
  const auto second = limits.try_acquire("k");
  EXPECT_TRUE(second.allowed);
  EXPECT_EQ(second.rules[0].remaining, 0);
  clock.advance(1s);
  const auto third = limits.try_acquire("k");
  EXPECT_FALSE(third.allowed);
  EXPECT_EQ(third.rejected_by, 0u);
  EXPECT_EQ(third.rules[0].retry_after, 58s);
}

TEST(MultiLimiter, ARejectedSetLeavesNoNewKeysBehind) {
  manual_clock clock;
  ratelimit::in_memory_storage storage;
  limiter<algorithms::token_bucket, algorithms::fixed_window> limits{
      clock, storage, rule<algorithms::token_bucket>{"user", quota::per_second(10)},
      rule<algorithms::fixed_window>{"service", quota::per_minute(1), rule_scope::global}};
  ASSERT_TRUE(limits.try_acquire("first"));
  const std::size_t keys = storage.size();
  EXPECT_EQ(keys, 2u);
  for (int i = 0; i < 100; ++i) ASSERT_FALSE(limits.try_acquire("new:" + std::to_string(i)));
  EXPECT_EQ(storage.size(), keys);
}

TEST(MultiLimiter, RulesOfOneAlgorithmKeepSeparateStates) {
  manual_clock clock;
  limiter<algorithms::fixed_window, algorithms::fixed_window> limits{
      clock, ratelimit::in_memory_storage{},
      rule<algorithms::fixed_window>{"second", quota::per_second(2)},
      rule<algorithms::fixed_window>{"minute", quota::per_minute(3)}};
  EXPECT_TRUE(limits.try_acquire("k"));
  const auto d = limits.try_acquire("k");
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.rules[0].remaining, 0);
  EXPECT_EQ(d.rules[1].remaining, 1);
}

TEST(MultiLimiter, LongKeysAreComposedToo) {
  manual_clock clock;
  limiter<algorithms::fixed_window> limits{
      clock, ratelimit::in_memory_storage{},
      rule<algorithms::fixed_window>{"m", quota::per_minute(1)}};
  const std::string long_key(1024, 'x');
  EXPECT_TRUE(limits.try_acquire(long_key));
  EXPECT_FALSE(limits.try_acquire(long_key));
  EXPECT_TRUE(limits.try_acquire(long_key.substr(1)));
}

TEST(MultiLimiter, ThreadsOnSharedRulesAdmitExactlyTheTightestQuota) {
  // A frozen clock, 4 threads on their own keys and one global rule of 600: exactly 600
  // pass, and the per-key buckets lose nothing to the rejections.
  manual_clock clock;
  ratelimit::in_memory_storage storage;
  limiter<algorithms::token_bucket, algorithms::fixed_window> limits{
      clock, storage, rule<algorithms::token_bucket>{"user", quota::per_second(1000)},
      rule<algorithms::fixed_window>{"service", quota::per_minute(600), rule_scope::global}};
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const std::string key = "thread:" + std::to_string(t);
      int mine = 0;
      for (int i = 0; i < 2000; ++i) mine += limits.try_acquire(key).allowed;
      admitted += mine;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 600);
  int left = 0;
  for (int t = 0; t < 4; ++t) {
    left += static_cast<int>(limits.try_acquire("thread:" + std::to_string(t)).rules[0].remaining);
  }
  // Each would have left its bucket one lower again: 4000 - 600 - 4 in all.
  EXPECT_EQ(left, 4000 - 600 - 4);
}

TEST(MultiLimiter, AnInvalidRuleIsNamed) {
  manual_clock clock;
  try {
    limiter<algorithms::fixed_window> limits{
        clock, ratelimit::in_memory_storage{},
        rule<algorithms::fixed_window>{"daily", quota{0, 24h, 0}}};
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("\"daily\""), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("limit"), std::string::npos) << e.what();
  }
}

TEST(MultiLimiter, CostOfZeroThrows) {
  manual_clock clock;
  limiter<algorithms::fixed_window> limits{
      clock, ratelimit::in_memory_storage{},
      rule<algorithms::fixed_window>{"m", quota::per_minute(1)}};
  EXPECT_THROW(static_cast<void>(limits.try_acquire("k", 0)), std::invalid_argument);
}

TEST(MultiLimiter, DefaultsToSteadyClockAndInMemoryStorage) {
  ratelimit::multi_limiter limits{
      rule<algorithms::token_bucket>{"second", quota::per_second(10)},
      rule<algorithms::sliding_window_counter>{"hour", quota::per_hour(1000)}};
  const auto d = limits.try_acquire("k");
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.rules[1].remaining, 999);
}

}  // namespace
