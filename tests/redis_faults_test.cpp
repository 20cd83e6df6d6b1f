// The Redis storage when Redis fails for real: scripts flushed, the server killed and
// restarted, stopped for longer than the timeout, down from the start, out of memory; the
// pool's bound under many threads; and replies that cannot be trusted.
//
// Each test has a redis-server of its own. Latencies are measured with steady_clock, never
// waited for: the tests drive time through manual_clock and real calls only.

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <signal.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <latch>
#include <mutex>
#include <optional>
#include <ratelimit/metrics.hpp>
#include <ratelimit/redis.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include "support/algorithm_probe.hpp"
#include "support/algorithm_types.hpp"
#include "support/decision_options.hpp"
#include "support/fault_options.hpp"
#include "support/redis_server.hpp"

namespace {

using namespace std::chrono_literals;
namespace algorithms = ratelimit::algorithms;
using ratelimit::decision;
using ratelimit::failure_policy;
using ratelimit::manual_clock;
using ratelimit::quota;
using ratelimit::redis_options;
using ratelimit::redis_storage;
using ratelimit::time_source;
using ratelimit_test::describe;
using ratelimit_test::redis_client;
using ratelimit_test::redis_reply;
using ratelimit_test::redis_server;
using kind = redis_reply::kind;
using std::chrono::nanoseconds;
using steady = std::chrono::steady_clock;

using ratelimit_test::memory_limiter;
using ratelimit_test::redis_limiter;
using bucket = redis_limiter<algorithms::token_bucket>;

constexpr auto timeout = ratelimit_test::fault_timeout;
constexpr auto slack = ratelimit_test::fault_slack;
constexpr auto probe_interval = ratelimit_test::fault_probe_interval;

redis_options fault_options(const redis_server& server, failure_policy policy) {
  return ratelimit_test::fault_options(server, policy, "rl-faults:");
}

double milliseconds_of(nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }

/// Latencies of real calls, for bounds and for the report.
class latencies {
 public:
  void add(nanoseconds d) {
    std::lock_guard lock{mutex_};
    samples_.push_back(d);
  }
  std::size_t size() const { return samples_.size(); }
  nanoseconds max() const { return *std::max_element(samples_.begin(), samples_.end()); }
  nanoseconds quantile(double q) const {
    std::vector<nanoseconds> sorted = samples_;
    std::sort(sorted.begin(), sorted.end());
    return sorted[static_cast<std::size_t>(q * static_cast<double>(sorted.size() - 1))];
  }
  /// Printed for the record, and kept as a test property.
  void report(const char* what) const {
    std::printf("[  latency ] %s: %zu calls, median %.3f ms, p99 %.3f ms, max %.3f ms\n", what,
                size(), milliseconds_of(quantile(0.5)), milliseconds_of(quantile(0.99)),
                milliseconds_of(max()));
    testing::Test::RecordProperty(std::string{what} + "_max_us",
                                  static_cast<int>(max().count() / 1000));
  }

 private:
  std::mutex mutex_;
  std::vector<nanoseconds> samples_;
};

template <class Limiter>
decision timed_acquire(Limiter& limiter, std::string_view key, latencies& into,
                       std::int64_t cost = 1) {
  const auto started = steady::now();
  const decision d = limiter.try_acquire(key, cost);
  into.add(steady::now() - started);
  return d;
}

/// Real calls on `key` until one is decided by Redis again; the real time that took. Gives
/// up after 5 s, which the caller's bound then reports.
template <class Limiter>
nanoseconds time_to_recover(Limiter& limiter, std::string_view key) {
  const auto started = steady::now();
  while (limiter.try_acquire(key).degraded && steady::now() - started < 5s) {
  }
  return steady::now() - started;
}

/// The longest a return to service may take once Redis is back: the probe waits out the
/// rest of one interval, then one call that takes at most the timeout.
constexpr nanoseconds recovery_bound = probe_interval + timeout + slack;

std::int64_t connected_clients(redis_client& client) {
  const redis_reply info = client.command("INFO", "clients");
  const std::string_view field = "connected_clients:";
  const std::size_t at = info.text.find(field);
  if (info.type != kind::string || at == std::string::npos) return -1;
  return std::stoll(info.text.substr(at + field.size()));
}

using ratelimit_test::algorithm_name;
using ratelimit_test::all_algorithms;

// ---------------------------------------------------------------------------------------
// SCRIPT FLUSH

template <class A>
class RedisScriptFlush : public testing::Test {};
TYPED_TEST_SUITE(RedisScriptFlush, all_algorithms, algorithm_name);

TYPED_TEST(RedisScriptFlush, TheNextCallIsStillDecidedByRedisWithTheKeysStateIntact) {
  using A = TypeParam;
  redis_server server;
  server.start();
  manual_clock clock;
  // One failure would open the breaker: a lost script must not count as one.
  redis_options o = fault_options(server, failure_policy::fail_open);
  o.breaker_threshold = 1;
  redis_limiter<A> limiter{quota::per_minute(3), clock, redis_storage{o}};
  memory_limiter<A> memory{quota::per_minute(3), clock, ratelimit::in_memory_storage{}};
  latencies calls;

  for (int i = 0; i < 3; ++i) {
    const decision d = limiter.try_acquire("k");
    EXPECT_TRUE(d.allowed && !d.degraded) << describe(d);
    (void)memory.try_acquire("k");
  }
  ASSERT_EQ(server.command("SCRIPT", "FLUSH"), redis_reply::of_status("OK"));
  const decision fourth = timed_acquire(limiter, "k", calls);
  EXPECT_FALSE(fourth.allowed) << describe(fourth);
  EXPECT_FALSE(fourth.degraded);
  EXPECT_TRUE(ratelimit_test::same(fourth, memory.try_acquire("k"))) << describe(fourth);
  EXPECT_FALSE(limiter.storage().degraded());

  // A batch whose every request finds the script gone: each is run again once it is loaded.
  clock.advance(7s);
  ASSERT_EQ(server.command("SCRIPT", "FLUSH"), redis_reply::of_status("OK"));
  const std::vector<ratelimit::request> batch = {{"k", 1}, {"new", 1}, {"new", 2}, {"k", 1}};
  const auto started = steady::now();
  const std::vector<decision> batched = limiter.try_acquire_many(batch);
  calls.add(steady::now() - started);
  const std::vector<decision> expected = memory.try_acquire_many(batch);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    EXPECT_TRUE(ratelimit_test::same(batched[i], expected[i]))
        << i << ": redis " << describe(batched[i]) << ", in memory " << describe(expected[i]);
  }
  EXPECT_LE(calls.max(), timeout);
  calls.report("after SCRIPT FLUSH");
}

// ---------------------------------------------------------------------------------------
// kill -9, then restart

/// What the policy makes of a key Redis never saw, while Redis is down.
void expect_policy_outcome(failure_policy policy, const std::vector<decision>& fresh_key) {
  std::int64_t admitted = 0;
  for (const decision& d : fresh_key) {
    EXPECT_TRUE(d.degraded) << describe(d);
    admitted += d.allowed ? 1 : 0;
    if (policy == failure_policy::fail_closed) {
      EXPECT_EQ(d.retry_after, probe_interval);
    }
  }
  switch (policy) {
    case failure_policy::fail_open:
      EXPECT_EQ(admitted, static_cast<std::int64_t>(fresh_key.size()));
      break;
    case failure_policy::fail_closed:
      EXPECT_EQ(admitted, 0);
      break;
    case failure_policy::local_fallback:
      // per_minute(4) over 2 instances: 2 each.
      EXPECT_EQ(admitted, 2);
      break;
  }
}

void kill_then_restart(failure_policy policy) {
  redis_server server;
  server.start();
  manual_clock clock;
  redis_storage storage{fault_options(server, policy)};
  bucket limiter{quota::per_minute(4), clock, storage};

  // Redis rejects "spent" before the outage: it must stay rejected for its retry_after.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(limiter.try_acquire("spent").allowed);
  const decision rejected = limiter.try_acquire("spent");
  ASSERT_FALSE(rejected.allowed);
  ASSERT_FALSE(rejected.degraded);
  ASSERT_EQ(rejected.retry_after, 15s);

  server.signal(SIGKILL);
  latencies down;
  std::vector<decision> fresh_key;
  for (int i = 0; i < 10; ++i) {
    fresh_key.push_back(timed_acquire(limiter, "fresh", down));
    const decision spent = timed_acquire(limiter, "spent", down);
    EXPECT_TRUE(spent.degraded);
    EXPECT_FALSE(spent.allowed) << describe(spent);
    EXPECT_EQ(spent.retry_after, 15s) << describe(spent);
  }
  expect_policy_outcome(policy, fresh_key);
  EXPECT_TRUE(storage.degraded());

  // The deny cache holds "spent" exactly until its retry_after, then the policy decides.
  clock.advance(15s - 1ns);
  const decision still = timed_acquire(limiter, "spent", down);
  EXPECT_FALSE(still.allowed);
  EXPECT_EQ(still.retry_after, 1ns);
  clock.advance(1ns);
  const decision after = timed_acquire(limiter, "spent", down);
  EXPECT_TRUE(after.degraded);
  EXPECT_EQ(after.allowed, policy != failure_policy::fail_closed) << describe(after);
  EXPECT_LE(down.max(), timeout + slack);
  down.report("redis killed");

  server.restart();
  const nanoseconds recovery = time_to_recover(limiter, "probe");
  EXPECT_LE(recovery, recovery_bound);
  std::printf("[  latency ] back in service %.3f ms after the restart\n",
              milliseconds_of(recovery));

  // The restart lost every key's state, so each key gets a fresh quota: over the outage a
  // key is admitted at most one quota more than it should (plus what the failure policy
  // itself admits). "spent" has its 4 units again, decided by Redis.
  for (int i = 0; i < 4; ++i) {
    const decision d = limiter.try_acquire("spent");
    EXPECT_TRUE(d.allowed && !d.degraded) << i << ": " << describe(d);
  }
  const decision spent_again = limiter.try_acquire("spent");
  EXPECT_FALSE(spent_again.allowed);
  EXPECT_FALSE(spent_again.degraded);
  EXPECT_FALSE(storage.degraded());
}

TEST(RedisKilled, FailOpenAdmitsExceptKeysRedisRejectedThenRecovers) {
  kill_then_restart(failure_policy::fail_open);
}

TEST(RedisKilled, FailClosedRejectsThenRecovers) { kill_then_restart(failure_policy::fail_closed); }

TEST(RedisKilled, LocalFallbackAdmitsItsShareOfTheQuotaThenRecovers) {
  kill_then_restart(failure_policy::local_fallback);
}

// A busy process holds several pooled connections, all of which the kill leaves dead.
TEST(RedisKilled, RecoversWithinOneProbeIntervalWithEveryPooledConnectionDead) {
  redis_server server;
  server.start();
  manual_clock clock;
  redis_options o = fault_options(server, failure_policy::fail_closed);
  redis_storage storage{o};
  bucket limiter{quota::per_second(1'000'000), clock, storage};
  redis_client observer{server.port(), 1000ms};

  std::latch go{9};
  std::vector<std::thread> threads;
  std::int64_t most_connected = 0;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      go.arrive_and_wait();
      for (int i = 0; i < 200; ++i) {
        EXPECT_FALSE(limiter.try_acquire("warm-" + std::to_string(t)).degraded);
      }
    });
  }
  go.arrive_and_wait();
  for (int i = 0; i < 50; ++i) {
    most_connected = std::max(most_connected, connected_clients(observer) - 1);
  }
  for (auto& t : threads) t.join();
  most_connected = std::max(most_connected, connected_clients(observer) - 1);
  std::printf("[   pool   ] %lld connections open before the kill\n",
              static_cast<long long>(most_connected));
  ASSERT_GE(most_connected, 4) << "the pool did not warm up; the test proves nothing";

  server.signal(SIGKILL);
  latencies down;
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(timed_acquire(limiter, "down", down).degraded);
  EXPECT_LE(down.max(), timeout + slack);
  down.report("redis killed, warm pool");

  server.restart();
  const nanoseconds recovery = time_to_recover(limiter, "probe");
  std::printf("[  latency ] back in service %.3f ms after the restart (warm pool)\n",
              milliseconds_of(recovery));
  EXPECT_LE(recovery, recovery_bound)
      << "a pooled connection the kill left dead failed a probe after Redis was back";
}

// A request Redis rejected because it can never pass (cost above the capacity) says nothing
// about the key's use: during the outage the key's ordinary requests are the policy's to
// decide, not rejected "forever".
TEST(RedisKilled, ARequestThatCouldNeverPassDoesNotLockItsKeyOut) {
  redis_server server;
  server.start();
  manual_clock clock;
  bucket limiter{quota::per_minute(10), clock,
                 redis_storage{fault_options(server, failure_policy::fail_open)}};
  const decision never = limiter.try_acquire("k", 11);
  ASSERT_FALSE(never.allowed);
  ASSERT_FALSE(never.degraded);
  ASSERT_EQ(never.retry_after, nanoseconds::max());
  const decision admitted = limiter.try_acquire("k", 1);
  ASSERT_TRUE(admitted.allowed && !admitted.degraded) << describe(admitted);
  EXPECT_EQ(admitted.remaining, 9);

  server.signal(SIGKILL);
  for (int i = 0; i < 5; ++i) {
    const decision d = limiter.try_acquire("k", 1);
    EXPECT_TRUE(d.degraded);
    EXPECT_TRUE(d.allowed) << "fail_open rejected a key whose quota Redis had left 9 of: "
                           << describe(d);
  }
}

// ---------------------------------------------------------------------------------------
// A slow server

// Another client keeps the server busy in 20 ms stretches, each shorter than the timeout,
// so that no single read or write times out: the batch's deadline must still hold.
TEST(RedisSlow, ABatchReturnsWithinTheTimeoutWhileTheServerKeepsStalling) {
  redis_server server;
  server.start();
  manual_clock clock;
  bucket limiter{quota::per_second(1'000'000), clock,
                 redis_storage{fault_options(server, failure_policy::fail_closed)}};
  ASSERT_FALSE(limiter.try_acquire("warm").degraded);  // connected, script loaded

  std::atomic<bool> done{false};
  std::atomic<int> stalls{0};
  std::thread staller{[&] {
    redis_client client{server.port(), 5000ms};
    // Busy for ARGV[1] microseconds of the server's own time.
    const std::string busy = R"lua(
      local start = redis.call('TIME')
      local now
      repeat now = redis.call('TIME')
      until (now[1] - start[1]) * 1000000 + now[2] - start[2] >= tonumber(ARGV[1])
      return 1)lua";
    while (!done.load()) {
      EXPECT_EQ(client.command("EVAL", busy, "0", "20000"), redis_reply::of_integer(1));
      ++stalls;
    }
  }};
  while (stalls.load() < 2) {  // the staller is under way
    (void)limiter.try_acquire("warm");
  }

  // One decision at a time waits out at most one stall: within the timeout.
  latencies single;
  for (int i = 0; i < 20; ++i) (void)timed_acquire(limiter, "single", single);
  EXPECT_LE(single.max(), timeout + slack);
  single.report("single calls while the server stalls");

  std::vector<std::string> keys;
  for (int i = 0; i < 2000; ++i) keys.push_back("k" + std::to_string(i));
  std::vector<ratelimit::request> batch;
  for (const std::string& k : keys) batch.push_back({k, 1});
  const auto started = steady::now();
  const std::vector<decision> decided = limiter.try_acquire_many(batch);
  const nanoseconds took = steady::now() - started;
  done = true;
  staller.join();

  std::int64_t degraded = 0;
  for (const decision& d : decided) degraded += d.degraded ? 1 : 0;
  // Requests the deadline left undecided are then decided by the policy, which takes time
  // of its own (much of it under the sanitizers): measure it, with the breaker open.
  redis_options unreachable = fault_options(server, failure_policy::fail_closed);
  unreachable.port = 1;
  unreachable.breaker_threshold = 1;
  bucket by_policy{quota::per_second(1'000'000), clock, redis_storage{unreachable}};
  (void)by_policy.try_acquire_many(batch);  // opens the breaker
  const auto policy_started = steady::now();
  (void)by_policy.try_acquire_many(batch);
  const nanoseconds policy_only = steady::now() - policy_started;

  std::printf(
      "[  latency ] a batch of %zu while the server stalls: %.3f ms, %lld degraded (the "
      "policy alone: %.3f ms)\n",
      batch.size(), milliseconds_of(took), static_cast<long long>(degraded),
      milliseconds_of(policy_only));
  // Past its deadline a batch still finishes the few commands it was formatting and closes
  // its connection: three slacks, not one.
  EXPECT_LE(took, timeout + 3 * slack + policy_only);
}

// ---------------------------------------------------------------------------------------
// kill -STOP, then -CONT

/// A storage whose pool has room for the threads below, and whose breaker probes seldom
/// enough that no probe falls into the stretch where calls must all be fast.
redis_options stop_options(const redis_server& server) {
  redis_options o = fault_options(server, failure_policy::fail_open);
  o.pool_size = 4;
  o.probe_interval = 200ms;
  return o;
}

/// Runs `call` `calls` times on each of 4 threads at once.
template <class F>
void on_four_threads(int calls, F call) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < calls; ++i) call(t);
    });
  }
  for (auto& t : threads) t.join();
}

TEST(RedisStopped, CallsReturnWithinTheTimeoutThenTheBreakerAnswersFast) {
  redis_server server;
  server.start();
  manual_clock clock;
  const redis_options o = stop_options(server);
  redis_storage storage{o};
  bucket limiter{quota::per_hour(1'000'000), clock, storage};
  ASSERT_FALSE(limiter.try_acquire("warm").degraded);

  server.signal(SIGSTOP);
  latencies stopped;
  on_four_threads(12, [&](int t) {
    EXPECT_TRUE(timed_acquire(limiter, "k" + std::to_string(t), stopped).degraded);
  });
  EXPECT_LE(stopped.max(), timeout + slack);
  stopped.report("redis stopped");

  // The breaker is open: answers come from the policy without waiting for Redis.
  EXPECT_TRUE(storage.degraded());
  latencies open;
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(timed_acquire(limiter, "k", open).degraded);
  EXPECT_LT(open.max(), timeout / 2);
  EXPECT_LT(open.quantile(0.99), 1ms);
  open.report("breaker open");

  server.signal(SIGCONT);
  const nanoseconds recovery = time_to_recover(limiter, "probe");
  EXPECT_LE(recovery, o.probe_interval + timeout + slack);
  std::printf("[  latency ] back in service %.3f ms after SIGCONT\n", milliseconds_of(recovery));
}

TEST(RedisStopped, RepliesAreNeverMismatchedBetweenKeysAfterSigcont) {
  redis_server server;
  server.start();
  manual_clock clock;
  const redis_options o = stop_options(server);
  redis_storage storage{o};
  bucket one_per_hour{quota::per_hour(1), clock, storage};
  bucket many_per_hour{quota::per_hour(1'000'000), clock, storage};
  ASSERT_TRUE(one_per_hour.try_acquire("a").allowed);
  const decision a_rejected = one_per_hour.try_acquire("a");
  ASSERT_FALSE(a_rejected.allowed);
  ASSERT_FALSE(a_rejected.degraded);
  ASSERT_EQ(a_rejected.retry_after, 1h);

  // Requests sent while the server is stopped stay queued in it, to be answered late on
  // connections that gave up: a late "c" reply read as an "a" one would admit "a" below.
  server.signal(SIGSTOP);
  on_four_threads(6, [&](int) {
    const decision c = many_per_hour.try_acquire("c");
    const decision a = one_per_hour.try_acquire("a");
    EXPECT_TRUE(c.degraded && c.allowed) << describe(c);
    EXPECT_TRUE(a.degraded && !a.allowed) << describe(a);
  });
  server.signal(SIGCONT);
  const nanoseconds recovery = time_to_recover(many_per_hour, "probe");
  EXPECT_LE(recovery, o.probe_interval + timeout + slack);

  // "a" is spent and "b" fresh: each answer must be its own key's, on every thread.
  constexpr int rounds = 250;
  std::mutex mutex;
  std::vector<std::int64_t> b_remaining;
  on_four_threads(rounds, [&](int) {
    const decision a = one_per_hour.try_acquire("a");
    EXPECT_TRUE(ratelimit_test::same(a, a_rejected)) << describe(a);
    const decision b = many_per_hour.try_acquire("b");
    EXPECT_TRUE(b.allowed && !b.degraded) << describe(b);
    std::lock_guard lock{mutex};
    b_remaining.push_back(b.remaining);
  });
  // Each of b's units was handed out exactly once.
  std::sort(b_remaining.begin(), b_remaining.end());
  std::vector<std::int64_t> expected(4 * rounds);
  for (std::size_t i = 0; i < expected.size(); ++i) {
    expected[i] = 1'000'000 - static_cast<std::int64_t>(expected.size() - i);
  }
  EXPECT_EQ(b_remaining, expected);
}

// ---------------------------------------------------------------------------------------
// Down from the start

TEST(RedisDownAtConstruction, CallsAreDegradedAndFastThenServiceComesBack) {
  redis_server server;
  server.start();
  server.stop();  // its port is now one where nothing listens
  manual_clock clock;
  const redis_options o = fault_options(server, failure_policy::fail_closed);
  std::optional<bucket> limiter;
  EXPECT_NO_THROW(limiter.emplace(quota::per_minute(10), clock, redis_storage{o}));
  ASSERT_TRUE(limiter.has_value());

  latencies down;
  for (int i = 0; i < 50; ++i) {
    const decision d = timed_acquire(*limiter, "k", down);
    EXPECT_TRUE(d.degraded && !d.allowed) << describe(d);
  }
  EXPECT_TRUE(limiter->storage().degraded());
  EXPECT_LE(down.max(), timeout + slack);
  EXPECT_LT(down.quantile(0.9), 1ms);
  down.report("redis down from the start");

  server.restart();
  const nanoseconds recovery = time_to_recover(*limiter, "probe");
  EXPECT_LE(recovery, recovery_bound);
  std::printf("[  latency ] back in service %.3f ms after the start\n", milliseconds_of(recovery));
  const decision d = limiter->try_acquire("k");
  EXPECT_TRUE(d.allowed && !d.degraded) << describe(d);
  EXPECT_EQ(d.remaining, 9);
}

TEST(RedisDownAtConstruction, TheObserverHearsEveryFailureAndEveryDegradedDecision) {
  redis_server server;
  server.start();
  server.stop();
  manual_clock clock;
  redis_options o = fault_options(server, failure_policy::fail_open);
  o.breaker_threshold = 2;
  ratelimit::metrics metrics{"api"};
  ratelimit::token_bucket<manual_clock, redis_storage, ratelimit::metrics> limiter{
      quota::per_minute(10), clock, redis_storage{o}, metrics};
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter.try_acquire("k").degraded);
  // Two calls tried and failed; then the breaker opened and the rest were not tried.
  EXPECT_EQ(metrics.backend_errors("redis", "unavailable"), 2u);
  EXPECT_EQ(metrics.backend_errors("redis", "breaker_open"), 3u);
  const auto counts = metrics.rule_counts();
  EXPECT_EQ(counts.allowed, 5u);
  EXPECT_EQ(counts.degraded, 5u);
  EXPECT_NE(
      metrics.prometheus().find(
          R"(ratelimit_backend_errors_total{limiter="api",backend="redis",kind="unavailable"} 2)"),
      std::string::npos);
}

// ---------------------------------------------------------------------------------------
// Out of memory

template <class A>
class RedisOutOfMemory : public testing::Test {};
TYPED_TEST_SUITE(RedisOutOfMemory, all_algorithms, algorithm_name);

TYPED_TEST(RedisOutOfMemory, ANewKeyIsABackendFailureNeverAPlainAllow) {
  using A = TypeParam;
  redis_server server{{"--maxmemory", "64mb", "--maxmemory-policy", "noeviction"}};
  server.start();
  manual_clock clock;
  const quota q = quota::per_hour(1);
  // One storage per policy: each has a breaker of its own.
  redis_limiter<A> closed{q, clock,
                          redis_storage{fault_options(server, failure_policy::fail_closed)}};
  redis_options open_options = fault_options(server, failure_policy::fail_open);
  open_options.key_prefix = "rl-faults-open:";
  redis_limiter<A> open{q, clock, redis_storage{open_options}};
  // Keys Redis rejected before memory ran out (which also loads the scripts).
  for (auto* limiter : {&closed, &open}) {
    ASSERT_TRUE(limiter->try_acquire("spent").allowed);
    ASSERT_FALSE(limiter->try_acquire("spent").allowed);
  }

  // Memory far over the limit, so that no buffer the server frees brings it back under:
  // a value of 4 MiB, then a limit of 1 MiB.
  ASSERT_EQ(server.command("SET", "filler", std::string(4 << 20, 'x')),
            redis_reply::of_status("OK"));
  ASSERT_EQ(server.command("CONFIG", "SET", "maxmemory", "1mb"), redis_reply::of_status("OK"));
  const redis_reply refused = server.command("SET", "filler:small", "x");
  ASSERT_EQ(refused.type, kind::error) << refused;
  ASSERT_EQ(refused.text.rfind("OOM", 0), 0u) << refused;
  const redis_reply keys_before = server.command("DBSIZE");

  latencies calls;
  for (int i = 0; i < 5; ++i) {
    // A key whose state is unchanged needs no write: Redis still decides it.
    const decision spent = timed_acquire(closed, "spent", calls);
    EXPECT_FALSE(spent.allowed) << describe(spent);
    const decision c = timed_acquire(closed, "new", calls);
    EXPECT_TRUE(c.degraded) << describe(c);
    EXPECT_FALSE(c.allowed) << describe(c);
    const decision o = timed_acquire(open, "new", calls);
    // Admitted only because the policy says so, and said to be.
    EXPECT_TRUE(o.degraded) << describe(o);
    EXPECT_TRUE(o.allowed) << describe(o);
  }
  EXPECT_EQ(server.command("DBSIZE"), keys_before);
  EXPECT_LE(calls.max(), timeout + slack);
  calls.report("out of memory");

  // Memory back: Redis decides again.
  ASSERT_EQ(server.command("DEL", "filler"), redis_reply::of_integer(1));
  ASSERT_EQ(server.command("CONFIG", "SET", "maxmemory", "0"), redis_reply::of_status("OK"));
  const nanoseconds recovery = time_to_recover(closed, "probe");
  EXPECT_LE(recovery, recovery_bound);
  const decision d = closed.try_acquire("new");
  EXPECT_TRUE(d.allowed && !d.degraded) << describe(d);
}

// ---------------------------------------------------------------------------------------
// The pool's bound

TEST(RedisPool, NeverOpensMoreConnectionsThanItsSize) {
  redis_server server;
  server.start();
  manual_clock clock;
  redis_options o = fault_options(server, failure_policy::fail_closed);
  o.pool_size = 3;
  o.timeout = 5s;  // waiting for a connection is part of a call; none may give up here
  bucket limiter{quota::per_second(1'000'000'000), clock, redis_storage{o}};
  redis_client observer{server.port(), 1000ms};

  std::atomic<int> running{8};
  std::atomic<std::int64_t> degraded{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        degraded += limiter.try_acquire("k" + std::to_string((t + i) % 5)).degraded ? 1 : 0;
      }
      --running;
    });
  }
  std::int64_t most = 0;
  int samples = 0;
  while (running.load() > 0) {
    most = std::max(most, connected_clients(observer) - 1);  // minus the observer
    ++samples;
  }
  for (auto& t : threads) t.join();
  most = std::max(most, connected_clients(observer) - 1);
  std::printf("[   pool   ] at most %lld connections seen in %d samples\n",
              static_cast<long long>(most), samples);
  EXPECT_LE(most, 3);
  EXPECT_GE(most, 1);
  EXPECT_EQ(degraded.load(), 0);
}

// ---------------------------------------------------------------------------------------
// Replies that cannot be trusted

/// A redisReply built by hand, as hiredis would hand it over; not copyable, since arrays
/// point into it.
class reply {
 public:
  static reply integer(long long v) {
    reply r;
    r.reply_.type = REDIS_REPLY_INTEGER;
    r.reply_.integer = v;
    return r;
  }
  static reply text(int type, std::string s) {
    reply r;
    r.reply_.type = type;
    r.text_ = std::move(s);
    return r;
  }
  static reply nil() {
    reply r;
    r.reply_.type = REDIS_REPLY_NIL;
    return r;
  }
  static reply array(std::vector<reply> elements) {
    reply r;
    r.reply_.type = REDIS_REPLY_ARRAY;
    r.elements_ = std::move(elements);
    return r;
  }
  static reply decision_of(std::array<long long, 5> fields) {
    std::vector<reply> elements;
    for (const long long f : fields) elements.push_back(integer(f));
    return array(std::move(elements));
  }

  reply(reply&&) = default;
  reply& operator=(reply&&) = default;

  /// The hiredis view, with its pointers set for where this object now lives.
  const redisReply* get() {
    reply_.str = reply_.type == REDIS_REPLY_ARRAY || reply_.type == REDIS_REPLY_INTEGER ||
                         reply_.type == REDIS_REPLY_NIL
                     ? nullptr
                     : text_.data();
    reply_.len = text_.size();
    pointers_.clear();
    for (reply& e : elements_) pointers_.push_back(const_cast<redisReply*>(e.get()));
    if (reply_.type == REDIS_REPLY_ARRAY) {
      reply_.elements = pointers_.size();
      reply_.element = pointers_.data();
    }
    return &reply_;
  }

  /// An array whose element `i` is a null pointer.
  const redisReply* with_null_element(std::size_t i) {
    get();
    pointers_[i] = nullptr;
    return &reply_;
  }

 private:
  reply() = default;
  redisReply reply_{};
  std::string text_;
  std::vector<reply> elements_;
  std::vector<redisReply*> pointers_;
};

TEST(RedisReply, AnythingButFiveSaneIntegersIsAFailureThatAdmitsNothing) {
  using ratelimit::detail::redis::decode;
  using ratelimit::detail::redis::outcome;
  const quota q = quota::per_minute(7);
  const auto failed = [&](const redisReply* r) {
    const auto d = decode(r, q, 1000);
    return d.result == outcome::failed && !d.value.allowed;
  };
  constexpr long long huge = LLONG_MAX;

  EXPECT_TRUE(failed(nullptr));
  EXPECT_TRUE(failed(reply::nil().get()));
  EXPECT_TRUE(failed(reply::integer(1).get()));
  EXPECT_TRUE(failed(reply::text(REDIS_REPLY_STRING, "1").get()));
  EXPECT_TRUE(failed(reply::text(REDIS_REPLY_STATUS, "OK").get()));
  EXPECT_TRUE(failed(
      reply::text(REDIS_REPLY_ERROR, "OOM command not allowed when used memory > 'maxmemory'.")
          .get()));
  EXPECT_TRUE(failed(reply::text(REDIS_REPLY_ERROR, "BUSY Redis is busy running a script.").get()));
  EXPECT_TRUE(
      failed(reply::text(REDIS_REPLY_ERROR, "ERR ratelimit: now must be an integer").get()));
  EXPECT_TRUE(failed(reply::text(REDIS_REPLY_ERROR, "").get()));
  EXPECT_TRUE(failed(reply::array({}).get()));

  std::vector<reply> four;
  for (int i = 0; i < 4; ++i) four.push_back(reply::integer(0));
  EXPECT_TRUE(failed(reply::array(std::move(four)).get()));
  std::vector<reply> six;
  for (int i = 0; i < 6; ++i) six.push_back(reply::integer(0));
  EXPECT_TRUE(failed(reply::array(std::move(six)).get()));
  std::vector<reply> with_string;
  with_string.push_back(reply::text(REDIS_REPLY_STRING, "1"));
  for (int i = 0; i < 4; ++i) with_string.push_back(reply::integer(0));
  EXPECT_TRUE(failed(reply::array(std::move(with_string)).get()));
  std::vector<reply> with_nil;
  for (int i = 0; i < 4; ++i) with_nil.push_back(reply::integer(1));
  with_nil.push_back(reply::nil());
  EXPECT_TRUE(failed(reply::array(std::move(with_nil)).get()));
  std::vector<reply> nested;
  nested.push_back(reply::decision_of({1, 1, 0, 0, 0}));
  for (int i = 0; i < 4; ++i) nested.push_back(reply::integer(0));
  EXPECT_TRUE(failed(reply::array(std::move(nested)).get()));
  EXPECT_TRUE(failed(reply::decision_of({1, 1, 0, 0, 0}).with_null_element(2)));

  EXPECT_TRUE(failed(reply::decision_of({2, 1, 0, 0, 0}).get()));  // allowed is 0 or 1
  EXPECT_TRUE(failed(reply::decision_of({-1, 1, 0, 0, 0}).get()));
  EXPECT_TRUE(failed(reply::decision_of({1, -1, 0, 0, 0}).get()));  // negative remaining
  EXPECT_TRUE(failed(reply::decision_of({0, -5, 10, 10, 0}).get()));
  EXPECT_TRUE(failed(reply::decision_of({1, huge, 0, 0, 0}).get()));  // past any quota
  EXPECT_TRUE(failed(reply::decision_of({1, (1LL << 62) + 1, 0, 0, 0}).get()));
  EXPECT_TRUE(failed(reply::decision_of({0, 0, -2, 0, 0}).get()));
  EXPECT_TRUE(failed(reply::decision_of({0, 0, 5, -2, 0}).get()));
  EXPECT_TRUE(failed(reply::decision_of({1, 0, 0, 5, -1}).get()));
  EXPECT_TRUE(failed(reply::decision_of({1, 0, 5, 5, 0}).get()));  // admitted with a wait
}

TEST(RedisReply, LostScriptsAndSaneDecisionsAreToldApart) {
  using ratelimit::detail::redis::decode;
  using ratelimit::detail::redis::outcome;
  const quota q = quota::per_minute(7);

  EXPECT_EQ(
      decode(reply::text(REDIS_REPLY_ERROR, "NOSCRIPT No matching script. Please use EVAL.").get(),
             q, 1000)
          .result,
      outcome::noscript);

  const auto admitted = decode(reply::decision_of({1, 4, 0, 7, 3}).get(), q, 1000);
  ASSERT_EQ(admitted.result, outcome::decided);
  EXPECT_TRUE(ratelimit_test::same(
      admitted.value,
      decision{.allowed = true, .limit = 7, .remaining = 4, .reset_after = 7us, .delay = 3us}))
      << describe(admitted.value);

  const auto never = decode(reply::decision_of({0, 6, -1, 0, 0}).get(), q, 1);
  ASSERT_EQ(never.result, outcome::decided);
  EXPECT_FALSE(never.value.allowed);
  EXPECT_EQ(never.value.retry_after, nanoseconds::max());
  EXPECT_EQ(never.value.remaining, 6);

  // Durations too long for int64 nanoseconds saturate to "never", not wrap.
  const auto huge = decode(reply::decision_of({0, 0, LLONG_MAX, LLONG_MAX / 2, 0}).get(), q, 1000);
  ASSERT_EQ(huge.result, outcome::decided);
  EXPECT_EQ(huge.value.retry_after, nanoseconds::max());
  EXPECT_EQ(huge.value.reset_after, nanoseconds::max());
  EXPECT_FALSE(huge.value.degraded);
}

}  // namespace
