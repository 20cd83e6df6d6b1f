// Several rules at once on Redis: one script, one round trip, all or nothing. With the
// client's time its decisions are the in-memory storage's, rule by rule; a rejected set
// writes nothing; a lost script is loaded again; a server away leaves the decision to the
// failure policy, within the timeout; and every key left behind has a TTL.
//
// One server for the decision tests (each writes under a prefix of its own, and the
// environment checks every key's TTL at the end); the fault tests start their own.

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <ratelimit/ratelimit.hpp>
#include <ratelimit/redis.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "support/algorithm_probe.hpp"
#include "support/decision_options.hpp"
#include "support/fault_options.hpp"
#include "support/redis_server.hpp"
#include "support/shared_redis_server.hpp"

namespace {

using namespace std::chrono_literals;
namespace algorithms = ratelimit::algorithms;
using ratelimit::decision;
using ratelimit::failure_policy;
using ratelimit::manual_clock;
using ratelimit::quota;
using ratelimit::redis_options;
using ratelimit::redis_storage;
using ratelimit::rule;
using ratelimit::rule_scope;
using ratelimit_test::describe;
using ratelimit_test::redis_reply;
using ratelimit_test::redis_server;
using kind = redis_reply::kind;
using steady = std::chrono::steady_clock;

template <class... As>
using redis_multi = ratelimit::basic_multi_limiter<manual_clock, redis_storage, As...>;
template <class... As>
using memory_multi =
    ratelimit::basic_multi_limiter<manual_clock, ratelimit::in_memory_storage, As...>;

constexpr std::string_view prefix_root = "rl-multi-test:";

auto* const environment =
    ratelimit_test::shared_redis_server::install(std::string{prefix_root} + "*");

redis_server& server() { return environment->server(); }

std::string test_prefix() {
  const auto* info = testing::UnitTest::GetInstance()->current_test_info();
  return std::string{prefix_root} + info->test_suite_name() + "." + info->name() + ":";
}

/// Client time in nanoseconds: decisions identical to the in-memory storage's.
redis_options client_options(std::string prefix) {
  return ratelimit_test::client_time_options(server().port(), std::move(prefix));
}

redis_storage client_storage() { return redis_storage{client_options(test_prefix())}; }

/// Every key under `prefix` with what it holds (DUMP: the value, whatever its type).
std::map<std::string, std::string> contents(const redis_server& s, const std::string& prefix) {
  std::map<std::string, std::string> out;
  for (const auto& [key, ttl] : s.key_ttls(prefix + "*")) {
    const redis_reply dumped = s.command("DUMP", key);
    out[key] = dumped.type == kind::string ? dumped.text : "?";
  }
  return out;
}

template <std::size_t N>
std::string describe_all(const ratelimit::multi_decision<N>& m) {
  std::string out = "allowed=" + std::to_string(m.allowed);
  for (const decision& d : m.rules) out += " " + describe(d);
  return out;
}

template <std::size_t N>
::testing::AssertionResult same_sets(const ratelimit::multi_decision<N>& expected,
                                     const ratelimit::multi_decision<N>& actual) {
  bool same = expected.allowed == actual.allowed && expected.rejected_by == actual.rejected_by &&
              expected.most_restrictive == actual.most_restrictive;
  for (std::size_t i = 0; i < N; ++i) {
    same = same && ratelimit_test::same(expected.rules[i], actual.rules[i]);
  }
  if (same) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "in memory: " << describe_all(expected) << "\n    redis: " << describe_all(actual);
}

// ---------------------------------------------------------------------------------------
// The in-memory multi_limiter's scenarios, on Redis

TEST(RedisMultiLimiter, ARequestRejectedByOneRuleConsumesFromNone) {
  manual_clock clock;
  redis_multi<algorithms::token_bucket, algorithms::fixed_window> limits{
      clock, client_storage(),
      rule<algorithms::token_bucket>{"burst", quota::per_second(10).with_burst(2)},
      rule<algorithms::fixed_window>{"minute", quota::per_minute(3)}};

  EXPECT_TRUE(limits.try_acquire("alice"));
  EXPECT_TRUE(limits.try_acquire("alice"));
  const auto third = limits.try_acquire("alice");
  EXPECT_FALSE(third.allowed);
  EXPECT_EQ(third.rejected_by, 0u);
  EXPECT_EQ(third.most_restrictive, 0u);
  EXPECT_EQ(third.combined().retry_after, 100ms);
  EXPECT_TRUE(third.rules[1].allowed);
  EXPECT_EQ(third.rules[1].remaining, 0);
  EXPECT_FALSE(third.combined().degraded);

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

TEST(RedisMultiLimiter, AGlobalRuleIsSharedByEveryKey) {
  manual_clock clock;
  redis_multi<algorithms::token_bucket, algorithms::fixed_window> limits{
      clock, client_storage(), rule<algorithms::token_bucket>{"user", quota::per_second(100)},
      rule<algorithms::fixed_window>{"service", quota::per_minute(3), rule_scope::global}};
  EXPECT_TRUE(limits.try_acquire("a"));
  EXPECT_TRUE(limits.try_acquire("b"));
  EXPECT_TRUE(limits.try_acquire("c"));
  const auto d = limits.try_acquire("d");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rejected_by, 1u);
  EXPECT_EQ(d.combined().limit, 3);
  clock.advance(60s);
  EXPECT_EQ(limits.try_acquire("d").rules[0].remaining, 99);
}

TEST(RedisMultiLimiter, TheSetWaitsForItsSlowestRejectingRule) {
  manual_clock clock;
  redis_multi<algorithms::token_bucket, algorithms::sliding_log, algorithms::fixed_window> limits{
      clock, client_storage(), rule<algorithms::token_bucket>{"second", quota::per_second(1)},
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

TEST(RedisMultiLimiter, ASlidingLogRuleIsTakenBackExactly) {
  manual_clock clock;
  redis_multi<algorithms::sliding_log, algorithms::token_bucket> limits{
      clock, client_storage(), rule<algorithms::sliding_log>{"log", quota::per_minute(2)},
      rule<algorithms::token_bucket>{"bucket", quota::per_second(1)}};
  ASSERT_TRUE(limits.try_acquire("k"));
  for (int i = 0; i < 5; ++i) {
    const auto d = limits.try_acquire("k");
    ASSERT_FALSE(d.allowed);
    ASSERT_EQ(d.rules[0].remaining, 0);
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

TEST(RedisMultiLimiter, RulesOfOneAlgorithmKeepSeparateStates) {
  manual_clock clock;
  redis_multi<algorithms::fixed_window, algorithms::fixed_window> limits{
      clock, client_storage(), rule<algorithms::fixed_window>{"second", quota::per_second(2)},
      rule<algorithms::fixed_window>{"minute", quota::per_minute(3)}};
  EXPECT_TRUE(limits.try_acquire("k"));
  const auto d = limits.try_acquire("k");
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.rules[0].remaining, 0);
  EXPECT_EQ(d.rules[1].remaining, 1);
}

TEST(RedisMultiLimiter, LongKeysAndAnyBytesAreComposedToo) {
  manual_clock clock;
  redis_multi<algorithms::fixed_window> limits{
      clock, client_storage(), rule<algorithms::fixed_window>{"m", quota::per_minute(1)}};
  const std::string long_key(1024, 'x');
  EXPECT_TRUE(limits.try_acquire(long_key));
  EXPECT_FALSE(limits.try_acquire(long_key));
  EXPECT_TRUE(limits.try_acquire(long_key.substr(1)));
  const std::string odd{"a}{b\r\n\0c", 9};
  EXPECT_TRUE(limits.try_acquire(odd));
  EXPECT_FALSE(limits.try_acquire(odd));
}

// ---------------------------------------------------------------------------------------
// All or nothing, in Redis

TEST(RedisMultiLimiter, ARejectedSetWritesNothing) {
  manual_clock clock;
  const std::string prefix = test_prefix();
  redis_multi<algorithms::token_bucket, algorithms::sliding_log, algorithms::fixed_window> limits{
      clock, redis_storage{client_options(prefix)},
      rule<algorithms::token_bucket>{"user", quota::per_second(10)},
      rule<algorithms::sliding_log>{"log", quota::per_minute(5)},
      rule<algorithms::fixed_window>{"service", quota::per_minute(2), rule_scope::global}};
  ASSERT_TRUE(limits.try_acquire("first"));
  clock.advance(1ms);
  ASSERT_TRUE(limits.try_acquire("second"));
  const auto before = contents(server(), prefix);
  EXPECT_EQ(before.size(), 5u);  // two buckets, two logs, one window

  // New keys rejected by the global rule: no key of theirs appears.
  clock.advance(1ms);
  for (int i = 0; i < 20; ++i) {
    const auto d = limits.try_acquire("new:" + std::to_string(i));
    ASSERT_FALSE(d.allowed) << describe_all(d);
    ASSERT_EQ(d.rejected_by, 2u);
    ASSERT_TRUE(d.rules[0].allowed && d.rules[1].allowed) << describe_all(d);
  }
  // Known keys rejected: their bucket and log are not touched, nor trimmed.
  for (int i = 0; i < 5; ++i) ASSERT_FALSE(limits.try_acquire("first"));
  EXPECT_EQ(contents(server(), prefix), before);
}

TEST(RedisMultiLimiter, ThreadsOnSharedRulesAdmitExactlyTheTightestQuota) {
  manual_clock clock;
  redis_multi<algorithms::token_bucket, algorithms::fixed_window> limits{
      clock, client_storage(), rule<algorithms::token_bucket>{"user", quota::per_second(1000)},
      rule<algorithms::fixed_window>{"service", quota::per_minute(300), rule_scope::global}};
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const std::string key = "thread:" + std::to_string(t);
      int mine = 0;
      for (int i = 0; i < 250; ++i) mine += limits.try_acquire(key).allowed;
      admitted += mine;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 300);
  int left = 0;
  for (int t = 0; t < 4; ++t) {
    left += static_cast<int>(limits.try_acquire("thread:" + std::to_string(t)).rules[0].remaining);
  }
  EXPECT_EQ(left, 4000 - 300 - 4);
}

TEST(RedisMultiLimiter, EveryKeyWrittenHasATtl) {
  manual_clock clock;
  const std::string prefix = test_prefix();
  redis_multi<algorithms::leaky_bucket, algorithms::sliding_window_counter, algorithms::sliding_log>
      limits{clock, redis_storage{client_options(prefix)},
             rule<algorithms::leaky_bucket>{"queue", quota::per_second(5)},
             rule<algorithms::sliding_window_counter>{"hour", quota::per_hour(50)},
             rule<algorithms::sliding_log>{"log", quota::per_minute(20), rule_scope::global}};
  for (int i = 0; i < 30; ++i) {
    (void)limits.try_acquire("k" + std::to_string(i % 3));
    clock.advance(70ms);
  }
  const auto ttls = server().key_ttls(prefix + "*");
  EXPECT_EQ(ttls.size(), 7u);
  for (const auto& [key, ttl] : ttls) EXPECT_GT(ttl, 0) << testing::PrintToString(key);
}

TEST(RedisMultiLimiter, ServerTimeDecidesToo) {
  manual_clock clock;
  redis_multi<algorithms::token_bucket, algorithms::sliding_log> limits{
      clock, redis_storage{{.port = server().port(), .timeout = 5s, .key_prefix = test_prefix()}},
      rule<algorithms::token_bucket>{"burst", quota::per_hour(3)},
      rule<algorithms::sliding_log>{"hour", quota::per_hour(2)}};
  EXPECT_TRUE(limits.try_acquire("k"));
  EXPECT_TRUE(limits.try_acquire("k"));
  const auto third = limits.try_acquire("k");
  EXPECT_FALSE(third.allowed);
  EXPECT_FALSE(third.combined().degraded);
  EXPECT_EQ(third.rejected_by, 1u);
  EXPECT_TRUE(third.rules[0].allowed);
  EXPECT_EQ(third.rules[0].remaining, 0);
  EXPECT_GT(third.combined().retry_after, 59min);
}

TEST(RedisMultiLimiter, AQuotaTheScriptsCannotDecideIsNamedWhenTheLimiterIsBuilt) {
  manual_clock clock;
  // Server time counts microseconds: 1500ns is not a whole number of them.
  try {
    redis_multi<algorithms::fixed_window, algorithms::token_bucket> limits{
        clock, redis_storage{{.port = server().port(), .timeout = 5s, .key_prefix = test_prefix()}},
        rule<algorithms::fixed_window>{"minute", quota::per_minute(5)},
        rule<algorithms::token_bucket>{"odd", quota{1, 1500ns, 1}}};
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("\"odd\""), std::string::npos) << what;
    EXPECT_NE(what.find("period"), std::string::npos) << what;
  }
}

// ---------------------------------------------------------------------------------------
// Differential: identical decisions to the in-memory storage on random traces

template <class... As>
void compare_on_random_trace(std::uint32_t seed, const std::array<quota, sizeof...(As)>& quotas,
                             const std::array<rule_scope, sizeof...(As)>& scopes) {
  manual_clock clock;
  clock.advance(std::chrono::nanoseconds{1'000'000'007});
  const auto make = [&]<class Storage>(Storage storage) {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return ratelimit::basic_multi_limiter<manual_clock, Storage, As...>{
          clock, std::move(storage), rule<As>{"rule" + std::to_string(I), quotas[I], scopes[I]}...};
    }
    (std::index_sequence_for<As...>{});
  };
  auto redis = make(client_storage());
  auto memory = make(ratelimit::in_memory_storage{});

  std::mt19937 random{seed};
  const std::array<std::string, 4> keys{"alice", "bob", "carol", "dave"};
  int admitted = 0;
  for (int step = 0; step < 2500; ++step) {
    switch (random() % 8) {
      case 0:
        clock.advance(std::chrono::nanoseconds{random() % 2'000'000'000});
        break;
      case 1:
      case 2:
        clock.advance(std::chrono::nanoseconds{random() % 50'000'000});
        break;
      case 3:
        clock.advance(std::chrono::nanoseconds{random() % 1000});
        break;
      default:
        break;  // several requests at one instant
    }
    const std::string& key = keys[random() % keys.size()];
    const std::int64_t cost = random() % 10 == 0 ? 1 + random() % 12 : 1;
    const auto expected = memory.try_acquire(key, cost);
    const auto actual = redis.try_acquire(key, cost);
    ASSERT_TRUE(same_sets(expected, actual))
        << "seed " << seed << ", step " << step << ", key " << key << ", cost " << cost;
    admitted += expected.allowed;
  }
  // The trace exercised both outcomes.
  EXPECT_GT(admitted, 100);
  EXPECT_LT(admitted, 2400);
}

TEST(RedisMultiLimiterDifferential, BucketLogAndGlobalWindow) {
  compare_on_random_trace<algorithms::token_bucket, algorithms::sliding_log,
                          algorithms::fixed_window>(
      20261127, {quota::per_second(5).with_burst(8), quota{12, 3s, 12}, quota::per_second(10)},
      {rule_scope::per_key, rule_scope::per_key, rule_scope::global});
}

TEST(RedisMultiLimiterDifferential, QueueCounterAndGlobalLog) {
  compare_on_random_trace<algorithms::leaky_bucket, algorithms::sliding_window_counter,
                          algorithms::sliding_log>(
      7, {quota::per_second(4).with_burst(6), quota{15, 2s, 15}, quota::per_second(9)},
      {rule_scope::per_key, rule_scope::per_key, rule_scope::global});
}

// ---------------------------------------------------------------------------------------
// Faults: a server of each test's own

constexpr auto timeout = ratelimit_test::fault_timeout;
constexpr auto slack = ratelimit_test::fault_slack;

redis_options fault_options(const redis_server& server, failure_policy policy) {
  return ratelimit_test::fault_options(server, policy, "rl-multi-faults:", 1ns);
}

using pair_limiter = redis_multi<algorithms::token_bucket, algorithms::sliding_log>;

pair_limiter make_pair(manual_clock clock, const redis_options& o) {
  return pair_limiter{clock, redis_storage{o},
                      rule<algorithms::token_bucket>{"second", quota::per_second(3)},
                      rule<algorithms::sliding_log>{"minute", quota::per_minute(4)}};
}

TEST(RedisMultiLimiterFaults, AScriptFlushBetweenCallsStillDecides) {
  redis_server s;
  s.start();
  manual_clock clock;
  redis_options o = fault_options(s, failure_policy::fail_closed);
  o.breaker_threshold = 1;
  auto limits = make_pair(clock, o);
  memory_multi<algorithms::token_bucket, algorithms::sliding_log> memory{
      clock, ratelimit::in_memory_storage{},
      rule<algorithms::token_bucket>{"second", quota::per_second(3)},
      rule<algorithms::sliding_log>{"minute", quota::per_minute(4)}};
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(s.command("SCRIPT", "FLUSH"), redis_reply::of_status("OK"));
    const auto started = steady::now();
    const auto d = limits.try_acquire("k");
    EXPECT_LE(steady::now() - started, timeout);
    EXPECT_FALSE(d.combined().degraded) << describe_all(d);
    EXPECT_TRUE(same_sets(memory.try_acquire("k"), d)) << i;
    clock.advance(200ms);
  }
  EXPECT_FALSE(limits.storage().degraded());
}

/// Down from the start: every policy answers for the set, degraded, within the timeout.
void down_policy(failure_policy policy) {
  redis_server s;
  s.start();
  s.stop();
  manual_clock clock;
  auto limits = make_pair(clock, fault_options(s, policy));
  int admitted = 0;
  for (int i = 0; i < 10; ++i) {
    const auto started = steady::now();
    const auto d = limits.try_acquire("k");
    EXPECT_LE(steady::now() - started, timeout + slack);
    for (const decision& r : d.rules) EXPECT_TRUE(r.degraded) << describe(r);
    admitted += d.allowed;
    if (policy == failure_policy::fail_closed) {
      EXPECT_EQ(d.combined().retry_after, 30ms);
    }
  }
  switch (policy) {
    case failure_policy::fail_open:
      EXPECT_EQ(admitted, 10);
      break;
    case failure_policy::fail_closed:
      EXPECT_EQ(admitted, 0);
      break;
    case failure_policy::local_fallback:
      // Half of each quota: the bucket's 3 become 1, the log's 4 become 2.
      EXPECT_EQ(admitted, 1);
      break;
  }
  EXPECT_TRUE(limits.storage().degraded());
}

TEST(RedisMultiLimiterFaults, DownFailOpenAdmitsTheSet) { down_policy(failure_policy::fail_open); }
TEST(RedisMultiLimiterFaults, DownFailClosedRejectsTheSet) {
  down_policy(failure_policy::fail_closed);
}
TEST(RedisMultiLimiterFaults, DownLocalFallbackDecidesTheSetOnShares) {
  down_policy(failure_policy::local_fallback);
}

TEST(RedisMultiLimiterFaults, ARuleRedisRejectedStaysRejectedWhileRedisIsAway) {
  redis_server s;
  s.start();
  manual_clock clock;
  auto limits = make_pair(clock, fault_options(s, failure_policy::fail_open));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(limits.try_acquire("k"));
  const auto rejected = limits.try_acquire("k");
  ASSERT_FALSE(rejected.allowed);
  ASSERT_FALSE(rejected.combined().degraded);
  s.stop();
  const auto d = limits.try_acquire("k");
  EXPECT_FALSE(d.allowed) << describe_all(d);
  EXPECT_TRUE(d.combined().degraded);
  EXPECT_EQ(d.rejected_by, 0u);
  EXPECT_TRUE(limits.try_acquire("other").allowed);  // fail_open for keys not rejected
  clock.advance(rejected.combined().retry_after);
  EXPECT_TRUE(limits.try_acquire("k").allowed);
}

TEST(RedisMultiLimiterFaults, OutOfMemoryIsABackendFailureNeverAPlainAllow) {
  redis_server s;
  s.start();
  manual_clock clock;
  auto limits = make_pair(clock, fault_options(s, failure_policy::fail_closed));
  ASSERT_TRUE(limits.try_acquire("k"));
  ASSERT_EQ(s.command("CONFIG", "SET", "maxmemory", "1"), redis_reply::of_status("OK"));
  const auto d = limits.try_acquire("new");
  EXPECT_FALSE(d.allowed) << describe_all(d);
  EXPECT_TRUE(d.combined().degraded);
  ASSERT_EQ(s.command("CONFIG", "SET", "maxmemory", "0"), redis_reply::of_status("OK"));
}

}  // namespace
