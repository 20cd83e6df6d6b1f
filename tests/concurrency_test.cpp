// Many threads on one limiter. Only totals are asserted, never timings: the clock is a
// manual_clock that moves only when a test thread says so.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <latch>
#include <ratelimit/ratelimit.hpp>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "support/algorithm_types.hpp"

namespace {

using namespace std::chrono_literals;
using ratelimit::in_memory_options;
using ratelimit::in_memory_storage;
using ratelimit::manual_clock;
using ratelimit::quota;

constexpr int threads = 4;
constexpr int calls_per_thread = 10'000;

template <class Limiter>
class Concurrency : public ::testing::Test {};

using limiters =
    ::testing::Types<ratelimit::token_bucket<manual_clock>, ratelimit::leaky_bucket<manual_clock>,
                     ratelimit::fixed_window<manual_clock>, ratelimit::sliding_log<manual_clock>,
                     ratelimit::sliding_window_counter<manual_clock>>;

using ratelimit_test::algorithm_name;

TYPED_TEST_SUITE(Concurrency, limiters, algorithm_name);

// Starts `count` threads at once on `body(thread_index)` and waits for them.
template <class Body>
void run_threads(int count, Body body) {
  std::latch start{count};
  std::vector<std::thread> workers;
  for (int t = 0; t < count; ++t) {
    workers.emplace_back([&start, &body, t] {
      start.arrive_and_wait();
      body(t);
    });
  }
  for (auto& worker : workers) worker.join();
}

TYPED_TEST(Concurrency, OneKeyFrozenClockAdmitsExactlyTheQuota) {
  // Burst for the buckets, limit for the windows: 1000 either way.
  constexpr std::int64_t allowed = 1000;
  manual_clock clock;
  TypeParam limiter{quota::per_second(allowed), clock};
  std::vector<std::vector<ratelimit::decision>> admitted(threads);
  run_threads(threads, [&](int t) {
    for (int i = 0; i < calls_per_thread; ++i) {
      const ratelimit::decision d = limiter.try_acquire("the-one-key");
      if (d.allowed) admitted[t].push_back(d);
    }
  });

  // One decision at a time: each admission saw a different number of units left, and a
  // leaky bucket queued each one a further interval (1ms) back.
  std::vector<std::int64_t> remaining;
  std::vector<std::chrono::nanoseconds> delays;
  for (const auto& decisions : admitted) {
    for (const auto& d : decisions) {
      remaining.push_back(d.remaining);
      delays.push_back(d.delay);
    }
  }
  ASSERT_EQ(remaining.size(), std::size_t{allowed});
  std::sort(remaining.begin(), remaining.end());
  std::sort(delays.begin(), delays.end());
  const bool shaping =
      std::is_same_v<typename TypeParam::algorithm_type, ratelimit::algorithms::leaky_bucket>;
  for (std::int64_t i = 0; i < allowed; ++i) {
    ASSERT_EQ(remaining[static_cast<std::size_t>(i)], i);
    ASSERT_EQ(delays[static_cast<std::size_t>(i)], shaping ? i * 1ms : 0ns);
  }
  EXPECT_FALSE(limiter.try_acquire("the-one-key"));
}

TYPED_TEST(Concurrency, DistinctKeysEachGetExactlyTheirQuota) {
  constexpr int keys_per_thread = 8;
  constexpr std::int64_t allowed = 1000;
  manual_clock clock;
  // Two shards: the threads' keys share locks.
  TypeParam limiter{quota::per_second(allowed), clock,
                    in_memory_storage{in_memory_options{.max_keys = 1024, .shards = 2}}};
  std::vector<std::vector<std::int64_t>> admitted(threads,
                                                  std::vector<std::int64_t>(keys_per_thread));
  run_threads(threads, [&](int t) {
    for (int i = 0; i < calls_per_thread; ++i) {
      const int key = i % keys_per_thread;
      admitted[t][key] +=
          limiter.try_acquire(std::to_string(t) + "/" + std::to_string(key)).allowed;
    }
  });
  for (int t = 0; t < threads; ++t) {
    for (int key = 0; key < keys_per_thread; ++key) {
      EXPECT_EQ(admitted[t][key], allowed) << "thread " << t << ", key " << key;
    }
  }
  EXPECT_EQ(limiter.storage().size(), std::size_t{threads * keys_per_thread});
}

// Admits on `limiter` until the first rejection, at the clock's current time.
template <class Limiter>
std::int64_t drain(Limiter& limiter) {
  std::int64_t admitted = 0;
  while (limiter.try_acquire("k")) ++admitted;
  return admitted;
}

constexpr int steps = 100;
constexpr std::chrono::nanoseconds step = 100ms + 1ns;
// More calls between two steps than any step can admit, so each time is drained.
constexpr std::int64_t calls_per_step = 400;

TYPED_TEST(Concurrency, ClockMovingUnderAcquirersAdmitsWhatTheQuotaAllows) {
  const quota q = quota::per_second(100);

  // The same clock schedule, one thread: drained at each of the step times.
  manual_clock sequential_clock;
  TypeParam sequential{q, sequential_clock};
  std::int64_t expected = drain(sequential);
  for (int k = 0; k < steps; ++k) {
    sequential_clock.advance(step);
    expected += drain(sequential);
  }

  manual_clock clock;
  TypeParam limiter{q, clock};
  std::atomic<std::int64_t> calls{0};
  std::atomic<bool> done{false};
  std::vector<std::int64_t> admitted(threads, 0);
  run_threads(threads, [&](int t) {
    if (t == 0) {
      // Moves time only once the others have made enough calls at the current time;
      // counting calls, not waiting for time, keeps the outcome independent of speed.
      for (int k = 0; k <= steps; ++k) {
        const std::int64_t target = calls.load() + calls_per_step;
        while (calls.load() < target) std::this_thread::yield();
        if (k < steps) clock.advance(step);
      }
      done = true;
      return;
    }
    while (!done.load()) {
      admitted[t] += limiter.try_acquire("k").allowed;
      calls.fetch_add(1);
    }
  });
  std::int64_t total = drain(limiter);
  for (const std::int64_t n : admitted) total += n;

  EXPECT_EQ(total, expected);
  // Whatever the algorithm: at most a quota per period begun, plus a burst; and, with
  // demand always above the rate, at least half the rate.
  const std::int64_t periods = (clock.now().time_since_epoch() / q.period) + 1;
  EXPECT_LE(total, q.limit * periods + q.burst);
  EXPECT_GE(total, q.limit * periods / 2);
}

TYPED_TEST(Concurrency, SweepsAndSizeRunAlongsideDecisions) {
  constexpr int keys_per_thread = 50;
  constexpr std::int64_t allowed = 20;
  manual_clock clock;
  TypeParam limiter{quota::per_minute(allowed), clock,
                    in_memory_storage{in_memory_options{.max_keys = 4096, .shards = 4}}};
  std::atomic<bool> done{false};
  std::vector<std::int64_t> admitted(threads, 0);
  std::size_t largest = 0;
  run_threads(threads, [&](int t) {
    if (t == 0) {
      // Nothing is fresh at a frozen clock: the sweeps run, drop nothing, break nothing.
      while (!done.load()) {
        EXPECT_EQ(limiter.storage().sweep(), 0u);
        largest = std::max(largest, limiter.storage().size());
      }
      return;
    }
    for (int i = 0; i < calls_per_thread; ++i) {
      const int key = i % keys_per_thread;
      admitted[t] += limiter.try_acquire(std::to_string(t) + "-" + std::to_string(key)).allowed;
    }
    if (t == 1) done = true;
  });
  for (int t = 1; t < threads; ++t) EXPECT_EQ(admitted[t], allowed * keys_per_thread) << t;
  EXPECT_LE(largest, std::size_t{(threads - 1) * keys_per_thread});
  EXPECT_EQ(limiter.storage().size(), std::size_t{(threads - 1) * keys_per_thread});
}

TEST(ConcurrentStorage, LimitersOfEveryAlgorithmStartTogetherOnOneStorage) {
  manual_clock clock;
  in_memory_storage storage;
  std::vector<std::int64_t> admitted(5, 0);
  const quota q = quota::per_second(100);
  const auto count = [&](auto limiter, int slot) {
    for (int i = 0; i < calls_per_thread; ++i) admitted[slot] += limiter.try_acquire("k").allowed;
  };
  run_threads(5, [&](int t) {
    // Each thread adds its algorithm's tables to the shared storage as it starts.
    switch (t) {
      case 0:
        return count(ratelimit::token_bucket<manual_clock>{q, clock, storage}, t);
      case 1:
        return count(ratelimit::leaky_bucket<manual_clock>{q, clock, storage}, t);
      case 2:
        return count(ratelimit::fixed_window<manual_clock>{q, clock, storage}, t);
      case 3:
        return count(ratelimit::sliding_log<manual_clock>{q, clock, storage}, t);
      default:
        return count(ratelimit::sliding_window_counter<manual_clock>{q, clock, storage}, t);
    }
  });
  for (int t = 0; t < 5; ++t) EXPECT_EQ(admitted[t], 100) << t;
  EXPECT_EQ(storage.size(), 5u);
}

TEST(ConcurrentStorage, FloodFromManyThreadsNeverPassesMaxKeys) {
  constexpr std::size_t bound = 256;
  manual_clock clock;
  ratelimit::token_bucket<manual_clock> limiter{
      quota::per_hour(1), clock,
      in_memory_storage{in_memory_options{.max_keys = bound, .shards = 8}}};
  std::atomic<bool> done{false};
  std::atomic<int> flooding{threads - 1};
  std::size_t largest = 0;
  std::vector<std::int64_t> rejected(threads, 0);
  run_threads(threads, [&](int t) {
    if (t == 0) {
      while (!done.load()) largest = std::max(largest, limiter.storage().size());
      return;
    }
    for (int i = 0; i < calls_per_thread; ++i) {
      const std::string key = "flood-" + std::to_string(t) + "-" + std::to_string(i);
      // A full shard evicts a key still limited, so a new key is always admitted.
      rejected[t] += !limiter.try_acquire(key).allowed;
    }
    if (flooding.fetch_sub(1) == 1) done = true;
  });
  EXPECT_LE(largest, bound);
  EXPECT_EQ(limiter.storage().size(), bound);
  for (int t = 1; t < threads; ++t) EXPECT_EQ(rejected[t], 0) << t;
}

}  // namespace
