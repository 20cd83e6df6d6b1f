// The unique-key flood (issue 7, item 5), scaled down so that it stays cheap under the
// sanitizers: 5x10^4 distinct keys into an in_memory_storage bounded to 5x10^3. The keys
// held never exceed the bound, a key still limited is not the one dropped to make room,
// and the keys go once time passes. Speed, latency and memory under the full flood (10^7
// keys into 10^6) are measured and checked by benchmarks/flood_check.cpp, not here.
//
// Every key is one request on a quota of 1000 an hour, with the time supplied
// (manual_clock, 100 ns a key): the flood lasts 5 ms of the clock's time, so no key goes
// fresh during it and every key past the bound has to evict one still in use.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <ratelimit/ratelimit.hpp>
#include <string>
#include <string_view>
#include <thread>

#include "support/algorithm_types.hpp"

namespace {

using namespace std::chrono_literals;
namespace algorithms = ratelimit::algorithms;
using ratelimit::in_memory_storage;
using ratelimit::manual_clock;
using ratelimit::quota;

constexpr std::size_t flood_keys = 50'000;
constexpr std::size_t max_keys = 5'000;
/// storage.size() is read after every this many keys of a flood.
constexpr std::size_t sample_every = 500;
const quota flood_quota = quota::per_hour(1000);
/// Later than any key of a flood is fresh again: a token bucket's hot key, used up, is full
/// an hour on; a sliding window counter's keys, two windows (2 h) after theirs began.
constexpr auto long_after = 3h;

template <class A>
using limiter = ratelimit::basic_limiter<A, manual_clock, in_memory_storage>;

/// "flood:<i>", formatted in place: the flood is most of this file's run time.
class flood_key {
 public:
  std::string_view operator()(std::size_t i) {
    const char* end = std::to_chars(buffer_ + prefix, buffer_ + sizeof buffer_, i).ptr;
    return {buffer_, static_cast<std::size_t>(end - buffer_)};
  }

 private:
  static constexpr std::size_t prefix = 6;
  char buffer_[32] = "flood:";
};

/// What a flood saw: the most keys held at any sample, and at its end.
struct flood_result {
  std::size_t most_held = 0;
  std::size_t held_at_end = 0;
  std::size_t admitted = 0;
};

/// `keys` distinct keys, one request each, 100 ns apart, reading size() as it goes.
template <class A>
flood_result flood(limiter<A>& l, std::size_t keys) {
  flood_result r;
  flood_key key;
  for (std::size_t i = 0; i < keys; ++i) {
    l.clock().advance(100ns);
    r.admitted += l.try_acquire(key(i)).allowed;
    if (i % sample_every == sample_every - 1)
      r.most_held = std::max(r.most_held, l.storage().size());
  }
  r.held_at_end = l.storage().size();
  r.most_held = std::max(r.most_held, r.held_at_end);
  // A new key is always admitted: when the table is full, a key still in use makes room
  // (the documented over-admission), never the newcomer.
  EXPECT_EQ(r.admitted, keys);
  return r;
}

/// One decision that stores nothing (a cost above the capacity, rejected on a fresh key),
/// so that the storage sees the time: sweeps drop what is fresh at the latest time seen.
template <class A>
void tell_the_time(limiter<A>& l, std::string_view key = "probe") {
  EXPECT_FALSE(l.try_acquire(key, 1001).allowed);
}

template <class A>
class Flood : public testing::Test {};

TYPED_TEST_SUITE(Flood, ratelimit_test::all_algorithms, ratelimit_test::algorithm_name);

TYPED_TEST(Flood, StoredKeysNeverExceedMaxKeysAndSweepDropsThemOnceTimePasses) {
  limiter<TypeParam> l{flood_quota, manual_clock(), in_memory_storage({.max_keys = max_keys})};
  const flood_result r = flood(l, flood_keys);
  EXPECT_LE(r.most_held, max_keys);
  // Ten times the bound in distinct keys fills every shard: the bound is reached, and held.
  EXPECT_EQ(r.held_at_end, max_keys);

  l.clock().advance(long_after);
  tell_the_time(l);
  // (That decision may itself have swept a shard or two: sweep() drops the rest.)
  EXPECT_GT(l.storage().sweep(), 0u);
  EXPECT_EQ(l.storage().size(), 0u);
}

// Light traffic on one key after the flood, and no sweep() call: that key's shard sweeps
// itself within max(1024, keys) of its decisions (79 keys a shard here), then one other
// shard in turn each 1024 decisions: 64 x 1024 decisions reach them all. The path is the
// same for every algorithm (each only sets its keys' expiry), so one suffices.
TEST(Flood, KeysGoOnTheirOwnOnceTimePasses) {
  limiter<algorithms::token_bucket> l{flood_quota, manual_clock(),
                                      in_memory_storage({.max_keys = max_keys})};
  ASSERT_EQ(flood(l, flood_keys).held_at_end, max_keys);
  l.clock().advance(long_after);
  for (int i = 0; i < 64 * 1024 + 1024; ++i) tell_the_time(l);
  EXPECT_EQ(l.storage().size(), 0u);
}

// A bucket that has used up its quota is the last key to go fresh (in an hour; the flood's
// keys, one unit used, in 3.6 s), so eviction, which drops the key that goes fresh first,
// never picks it: a flood cannot reset a busy key's limit. Not so for the sliding log and
// the windows, where a key used once goes fresh as late as one used up (a period after its
// request, or when its window ends): there a flood may drop a limited key, which then
// starts again from a full quota, the over-admission in_memory_options documents.
template <class A>
class FloodOfBuckets : public testing::Test {};

using buckets = testing::Types<algorithms::token_bucket, algorithms::leaky_bucket>;
TYPED_TEST_SUITE(FloodOfBuckets, buckets, ratelimit_test::algorithm_name);

TYPED_TEST(FloodOfBuckets, KeysThatUsedTheirQuotaAreNotEvictedToMakeRoom) {
  // Seven, one fewer than eviction's sample, in one shard whose sample the flood moves over
  // every place of the table: each sample holds a flood key, which goes fresh first. More
  // in one shard can fill a sample, which then drops one of them, the documented
  // over-admission: nine here fail this test, and a hundred over 64 shards did for a seed.
  constexpr int busy_keys = 7;
  limiter<TypeParam> l{flood_quota, manual_clock(),
                       in_memory_storage({.max_keys = max_keys, .shards = 1})};
  for (int i = 0; i < busy_keys; ++i) {
    ASSERT_TRUE(l.try_acquire("busy:" + std::to_string(i), 1000).allowed);
    ASSERT_FALSE(l.try_acquire("busy:" + std::to_string(i)).allowed);
  }
  ASSERT_EQ(flood(l, flood_keys).held_at_end, max_keys);
  int evicted = 0;
  for (int i = 0; i < busy_keys; ++i) evicted += l.try_acquire("busy:" + std::to_string(i)).allowed;
  EXPECT_EQ(evicted, 0) << "the flood evicted keys that had used their quota";
}

// The flood on one thread while another uses a hot key (used up first) and reads size():
// under ThreadSanitizer, eviction and sweeps against concurrent decisions and size().
TEST(Flood, BoundHoldsWhileAnotherThreadUsesAHotKey) {
  limiter<algorithms::token_bucket> l{flood_quota, manual_clock(),
                                      in_memory_storage({.max_keys = max_keys})};
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(l.try_acquire("hot").allowed);
  std::atomic<bool> hot_started{false};
  std::atomic<bool> flooding{true};
  std::size_t hot_calls = 0;
  std::size_t hot_admitted = 0;
  std::size_t most_held_seen_by_hot = 0;
  std::thread hot([&] {
    do {
      ++hot_calls;
      hot_admitted += l.try_acquire("hot").allowed;
      if (hot_calls % 64 == 1) {
        most_held_seen_by_hot = std::max(most_held_seen_by_hot, l.storage().size());
      }
      hot_started.store(true);
    } while (flooding.load());
  });
  // The two overlap however the threads are scheduled.
  while (!hot_started.load()) std::this_thread::yield();
  const flood_result r = flood(l, flood_keys);
  flooding.store(false);
  hot.join();
  EXPECT_LE(r.most_held, max_keys);
  EXPECT_LE(most_held_seen_by_hot, max_keys);
  EXPECT_EQ(r.held_at_end, max_keys);
  // 5 ms of the clock refill 0.0014 of a token: the hot key stayed limited, and stored.
  EXPECT_EQ(hot_admitted, 0u) << "of " << hot_calls << " calls";

  l.clock().advance(long_after);
  tell_the_time(l);
  EXPECT_GT(l.storage().sweep(), 0u);
  EXPECT_EQ(l.storage().size(), 0u);
}

}  // namespace
