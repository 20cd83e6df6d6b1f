// One key hammered at once, by threads and by processes that share one Redis: together they
// are admitted exactly the quota, for every algorithm. Each decision is one script run
// atomically by the server; any read-then-write from the client would admit more.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <latch>
#include <mutex>
#include <ratelimit/redis.hpp>
#include <string>
#include <thread>
#include <vector>

#include "support/algorithm_probe.hpp"
#include "support/algorithm_types.hpp"
#include "support/child_process.hpp"
#include "support/decision_options.hpp"
#include "support/redis_server.hpp"
#include "support/shared_redis_server.hpp"

namespace {

using namespace std::chrono_literals;
namespace algorithms = ratelimit::algorithms;
using ratelimit::decision;
using ratelimit::manual_clock;
using ratelimit::quota;
using ratelimit::redis_options;
using ratelimit::redis_storage;
using ratelimit::time_source;
using ratelimit_test::child_process;
using ratelimit_test::describe;
using ratelimit_test::redis_server;
using ratelimit_test::start_gate;

using ratelimit_test::redis_limiter;

auto* const environment = ratelimit_test::shared_redis_server::install();

std::string test_prefix() {
  const auto* info = testing::UnitTest::GetInstance()->current_test_info();
  return std::string{"rl-atomic:"} + info->test_suite_name() + "." + info->name() + ":";
}

/// Generous timeout: a call that gave up would be degraded, and these tests count only what
/// Redis decided.
redis_options options(std::string prefix, time_source time) {
  return {.port = environment->server().port(),
          .timeout = 5s,
          .key_prefix = std::move(prefix),
          .time = time,
          .client_time_unit = std::chrono::nanoseconds{1}};
}

/// The instant every client-time test decides at: the clock never moves, so nothing refills.
constexpr manual_clock::time_point frozen{1'234'567'890'123ns};

using ratelimit_test::algorithm_name;
using ratelimit_test::all_algorithms;

template <class A>
class RedisAtomicity : public testing::Test {};

TYPED_TEST_SUITE(RedisAtomicity, all_algorithms, algorithm_name);

/// The `remaining` of every admitted request, from many callers: each unit of the quota
/// must have been handed out once, so they are capacity - 1, ..., 1, 0, each once.
void expect_each_unit_once(std::vector<std::int64_t> remaining, std::int64_t capacity) {
  std::sort(remaining.begin(), remaining.end());
  std::vector<std::int64_t> expected(static_cast<std::size_t>(capacity));
  for (std::int64_t i = 0; i < capacity; ++i) expected[static_cast<std::size_t>(i)] = i;
  EXPECT_EQ(remaining, expected);
}

// First in the suite: the children are forked before this test starts any thread.
TYPED_TEST(RedisAtomicity, ProcessesOnOneKeyAdmitExactlyTheQuotaInTotal) {
  using A = TypeParam;
  const quota q = quota::per_hour(50);
  const std::string prefix = test_prefix();
  constexpr int processes = 3;
  constexpr int calls = 100;
  start_gate gate;
  const auto hammer = [&]() -> std::int64_t {
    // Each process has a storage, a pool and a limiter of its own, as a fleet would.
    manual_clock clock;
    clock.set(frozen);
    redis_limiter<A> limiter{q, clock, redis_storage{options(prefix, time_source::client)}};
    gate.wait();
    std::int64_t admitted = 0;
    for (int i = 0; i < calls; ++i) {
      const decision d = limiter.try_acquire("shared");
      EXPECT_FALSE(d.degraded) << describe(d);
      admitted += d.allowed ? 1 : 0;
    }
    return admitted;
  };
  std::vector<child_process> children;
  for (int p = 0; p < processes; ++p) children.emplace_back(hammer);
  gate.open();
  std::int64_t admitted = 0;
  for (child_process& child : children) admitted += child.result();
  EXPECT_EQ(admitted, ratelimit_test::capacity<A>(q));
}

TYPED_TEST(RedisAtomicity, ThreadsOnOneKeyAdmitExactlyTheQuota) {
  using A = TypeParam;
  const quota q = quota::per_hour(100);
  const std::int64_t capacity = ratelimit_test::capacity<A>(q);
  manual_clock clock;
  clock.set(frozen);
  redis_limiter<A> limiter{q, clock, redis_storage{options(test_prefix(), time_source::client)}};
  std::mutex mutex;
  std::vector<std::int64_t> remaining;
  std::atomic<std::int64_t> degraded{0};
  // All threads start together: on 2 cores, spinning while waiting would starve the rest.
  std::latch go{9};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      go.arrive_and_wait();
      for (int i = 0; i < 100; ++i) {
        const decision d = limiter.try_acquire("shared");
        degraded += d.degraded ? 1 : 0;
        if (d.allowed) {
          std::lock_guard lock{mutex};
          remaining.push_back(d.remaining);
        }
      }
    });
  }
  go.arrive_and_wait();
  for (auto& t : threads) t.join();
  EXPECT_EQ(degraded.load(), 0);
  EXPECT_EQ(static_cast<std::int64_t>(remaining.size()), capacity);
  expect_each_unit_once(remaining, capacity);
}

TYPED_TEST(RedisAtomicity, ThreadsSendingBatchesAdmitExactlyTheQuota) {
  using A = TypeParam;
  const quota q = quota::per_hour(100).with_burst(60);
  const std::int64_t capacity = ratelimit_test::capacity<A>(q);
  manual_clock clock;
  clock.set(frozen);
  redis_limiter<A> limiter{q, clock, redis_storage{options(test_prefix(), time_source::client)}};
  std::atomic<std::int64_t> admitted{0};
  std::atomic<std::int64_t> degraded{0};
  std::latch go{9};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      // Pipelined batches from 8 connections interleave on the server; each script in them
      // still runs alone.
      const std::vector<ratelimit::request> batch = {
          {"shared", 1}, {"shared", 2}, {"other", 1}, {"shared", 1}};
      go.arrive_and_wait();
      for (int i = 0; i < 25; ++i) {
        const std::vector<decision> decided = limiter.try_acquire_many(batch);
        for (std::size_t r = 0; r < batch.size(); ++r) {
          degraded += decided[r].degraded ? 1 : 0;
          if (batch[r].key == "shared" && decided[r].allowed) admitted += batch[r].cost;
        }
      }
    });
  }
  go.arrive_and_wait();
  for (auto& t : threads) t.join();
  EXPECT_EQ(degraded.load(), 0);
  // Units of cost 1 always fit what cost-2 requests leave over, so the whole quota is used.
  EXPECT_EQ(admitted.load(), capacity);
}

TYPED_TEST(RedisAtomicity, ThreadsWithServerTimeAdmitExactlyTheBurst) {
  using A = TypeParam;
  // A refill of one unit every 864 s, and a test that lasts well under one: nothing comes
  // back while it runs. (A fixed window would reset if the run straddled midnight UTC.)
  const quota q = quota::per(100, 24h).with_burst(40);
  const std::int64_t capacity = ratelimit_test::capacity<A>(q);
  manual_clock clock;  // unused by the scripts: they read the server's TIME
  redis_limiter<A> limiter{q, clock, redis_storage{options(test_prefix(), time_source::server)}};
  std::mutex mutex;
  std::vector<std::int64_t> remaining;
  std::atomic<std::int64_t> degraded{0};
  std::latch go{9};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      go.arrive_and_wait();
      for (int i = 0; i < 50; ++i) {
        const decision d = limiter.try_acquire("shared");
        degraded += d.degraded ? 1 : 0;
        if (d.allowed) {
          std::lock_guard lock{mutex};
          remaining.push_back(d.remaining);
        }
      }
    });
  }
  go.arrive_and_wait();
  for (auto& t : threads) t.join();
  EXPECT_EQ(degraded.load(), 0);
  EXPECT_EQ(static_cast<std::int64_t>(remaining.size()), capacity);
  expect_each_unit_once(remaining, capacity);
}

}  // namespace
