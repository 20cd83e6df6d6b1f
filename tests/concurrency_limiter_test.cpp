// concurrency_limiter: at most N permits out per key, each a slot held until it is released
// or leaves scope.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <latch>
#include <optional>
#include <ratelimit/concurrency.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

using ratelimit::concurrency_limiter;
using permit = concurrency_limiter::permit;

static_assert(!std::is_copy_constructible_v<permit> && !std::is_copy_assignable_v<permit>);
static_assert(std::is_nothrow_move_constructible_v<permit> &&
              std::is_nothrow_move_assignable_v<permit>);
static_assert(!std::is_convertible_v<permit, bool>, "operator bool is explicit");

std::string message_of(const std::invalid_argument& e) { return e.what(); }

TEST(ConcurrencyLimiter, ANonPositiveMaximumThrowsNamingTheValue) {
  for (const std::int64_t bad : {std::int64_t{0}, std::int64_t{-3}}) {
    try {
      concurrency_limiter limiter{bad};
      ADD_FAILURE() << "no exception for " << bad;
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(message_of(e), "ratelimit::concurrency_limiter: max_in_flight must be > 0 (got " +
                                   std::to_string(bad) + ")");
    }
  }
}

TEST(ConcurrencyLimiter, BadOptionsThrowAsTheStorageWould) {
  EXPECT_THROW(concurrency_limiter(2, {.shards = 3}), std::invalid_argument);
  EXPECT_THROW(concurrency_limiter(2, {.max_keys = 4, .shards = 8}), std::invalid_argument);
}

TEST(ConcurrencyLimiter, GrantsExactlyTheMaximumThenRefuses) {
  concurrency_limiter limiter{3};
  std::vector<permit> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(limiter.try_acquire("k"));
    EXPECT_TRUE(held.back()) << "permit " << i;
    EXPECT_EQ(limiter.in_flight("k"), i + 1);
  }
  const permit fourth = limiter.try_acquire("k");
  EXPECT_FALSE(fourth);
  EXPECT_EQ(limiter.in_flight("k"), 3);
  EXPECT_EQ(limiter.max_in_flight(), 3);
}

TEST(ConcurrencyLimiter, AMaximumOfOneIsAMutexThatNeverBlocks) {
  concurrency_limiter limiter{1};
  permit first = limiter.try_acquire("k");
  ASSERT_TRUE(first);
  EXPECT_FALSE(limiter.try_acquire("k"));
  first.release();
  EXPECT_TRUE(limiter.try_acquire("k"));
}

TEST(ConcurrencyLimiter, ReleaseReturnsTheSlot) {
  concurrency_limiter limiter{2};
  permit a = limiter.try_acquire("k");
  permit b = limiter.try_acquire("k");
  ASSERT_TRUE(a && b);
  ASSERT_FALSE(limiter.try_acquire("k"));
  a.release();
  EXPECT_FALSE(a);
  EXPECT_EQ(limiter.in_flight("k"), 1);
  permit c = limiter.try_acquire("k");
  EXPECT_TRUE(c);
  EXPECT_FALSE(limiter.try_acquire("k"));
}

TEST(ConcurrencyLimiter, ReleasingTwiceFreesOneSlot) {
  concurrency_limiter limiter{3};
  permit a = limiter.try_acquire("k");
  permit b = limiter.try_acquire("k");
  a.release();
  a.release();
  EXPECT_EQ(limiter.in_flight("k"), 1);
  permit empty;
  empty.release();  // a default permit holds nothing either
  EXPECT_EQ(limiter.in_flight("k"), 1);
}

TEST(ConcurrencyLimiter, APermitLeavingScopeReleasesItsSlot) {
  concurrency_limiter limiter{1};
  {
    const permit p = limiter.try_acquire("k");
    ASSERT_TRUE(p);
    EXPECT_EQ(limiter.in_flight("k"), 1);
  }
  EXPECT_EQ(limiter.in_flight("k"), 0);
  EXPECT_TRUE(limiter.try_acquire("k"));
}

TEST(ConcurrencyLimiter, ARefusedPermitReleasesNothing) {
  concurrency_limiter limiter{1};
  const permit held = limiter.try_acquire("k");
  { const permit refused = limiter.try_acquire("k"); }
  EXPECT_EQ(limiter.in_flight("k"), 1);
  EXPECT_FALSE(limiter.try_acquire("k"));
}

TEST(ConcurrencyLimiter, AMovedFromPermitReleasesNothing) {
  concurrency_limiter limiter{2};
  std::optional<permit> original{limiter.try_acquire("k")};
  permit moved{std::move(*original)};
  EXPECT_FALSE(*original);  // NOLINT(bugprone-use-after-move): the contract under test
  EXPECT_TRUE(moved);
  original->release();  // NOLINT(bugprone-use-after-move)
  original.reset();     // destroyed too: nothing either
  EXPECT_EQ(limiter.in_flight("k"), 1);

  permit assigned;
  assigned = std::move(moved);
  EXPECT_FALSE(moved);  // NOLINT(bugprone-use-after-move)
  moved.release();
  EXPECT_EQ(limiter.in_flight("k"), 1);
  assigned.release();
  EXPECT_EQ(limiter.in_flight("k"), 0);
}

TEST(ConcurrencyLimiter, AssigningOverAHeldPermitReleasesItsSlot) {
  concurrency_limiter limiter{2};
  permit a = limiter.try_acquire("a");
  permit b = limiter.try_acquire("b");
  a = std::move(b);
  EXPECT_EQ(limiter.in_flight("a"), 0);
  EXPECT_EQ(limiter.in_flight("b"), 1);
  permit& same = a;
  a = std::move(same);  // self-move keeps the slot
  EXPECT_TRUE(a);
  EXPECT_EQ(limiter.in_flight("b"), 1);
}

TEST(ConcurrencyLimiter, KeysAreIndependent) {
  concurrency_limiter limiter{2};
  const permit a1 = limiter.try_acquire("alice");
  const permit a2 = limiter.try_acquire("alice");
  EXPECT_FALSE(limiter.try_acquire("alice"));
  const permit b1 = limiter.try_acquire("bob");
  EXPECT_TRUE(b1);
  EXPECT_EQ(limiter.in_flight("alice"), 2);
  EXPECT_EQ(limiter.in_flight("bob"), 1);
  EXPECT_EQ(limiter.in_flight("carol"), 0);
}

TEST(ConcurrencyLimiter, KeysOfAnyBytesAreTheirOwn) {
  concurrency_limiter limiter{1};
  const std::string nul{"a\0b", 3};
  const std::string long_key(1000, 'x');
  const std::vector<std::string> keys = {"",       "a",           nul, std::string{"a\0c", 3},
                                         long_key, long_key + "y"};
  std::vector<permit> held;
  for (const std::string& key : keys) {
    held.push_back(limiter.try_acquire(key));
    EXPECT_TRUE(held.back()) << "key of " << key.size() << " bytes";
  }
  for (const std::string& key : keys) EXPECT_FALSE(limiter.try_acquire(key));
  EXPECT_EQ(limiter.size(), keys.size());
  held.clear();
  EXPECT_EQ(limiter.size(), 0u);
}

TEST(ConcurrencyLimiter, AKeyWithNothingInFlightIsDropped) {
  concurrency_limiter limiter{4};
  EXPECT_EQ(limiter.size(), 0u);
  {
    const permit a = limiter.try_acquire("a");
    const permit b = limiter.try_acquire("b");
    const permit b2 = limiter.try_acquire("b");
    EXPECT_EQ(limiter.size(), 2u);
  }
  EXPECT_EQ(limiter.size(), 0u);
}

TEST(ConcurrencyLimiter, ManyKeysComeAndGoAndNoneStays) {
  // Past the compaction threshold of every shard: the tables give memory back as they go.
  concurrency_limiter limiter{2, {.max_keys = 1 << 16, .shards = 4}};
  std::vector<permit> held;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 20'000; ++i) {
      held.push_back(limiter.try_acquire("key-" + std::to_string(i)));
      ASSERT_TRUE(held.back()) << i;
    }
    EXPECT_EQ(limiter.size(), 20'000u);
    EXPECT_EQ(limiter.in_flight("key-12345"), 1);
    // Every other one first, so that the tables are sparse when they compact.
    for (std::size_t i = 0; i < held.size(); i += 2) held[i].release();
    EXPECT_EQ(limiter.size(), 10'000u);
    EXPECT_EQ(limiter.in_flight("key-12345"), 1);
    EXPECT_EQ(limiter.in_flight("key-12344"), 0);
    held.clear();
    EXPECT_EQ(limiter.size(), 0u);
  }
}

TEST(ConcurrencyLimiter, AFullLimiterRefusesNewKeysAndNeverEvictsOnesInFlight) {
  concurrency_limiter limiter{1, {.max_keys = 2, .shards = 1}};
  const permit a = limiter.try_acquire("a");
  permit b = limiter.try_acquire("b");
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(limiter.try_acquire("c"));
  EXPECT_FALSE(limiter.try_acquire("a"));  // still held: not evicted to make room
  EXPECT_EQ(limiter.in_flight("a"), 1);
  b.release();
  EXPECT_TRUE(limiter.try_acquire("c"));
}

TEST(ConcurrencyLimiter, APermitOutlivesItsLimiter) {
  std::optional<concurrency_limiter> limiter{std::in_place, 1};
  permit p = limiter->try_acquire("k");
  ASSERT_TRUE(p);
  limiter.reset();
  p.release();  // on the slots the permit still shares: AddressSanitizer checks it
  EXPECT_FALSE(p);
  std::optional<permit> dropped{std::in_place};
  {
    concurrency_limiter other{1};
    dropped = other.try_acquire("k");
  }
  dropped.reset();
}

TEST(ConcurrencyLimiter, CopiesShareTheirSlots) {
  concurrency_limiter limiter{1};
  concurrency_limiter copy = limiter;
  const permit p = limiter.try_acquire("k");
  EXPECT_FALSE(copy.try_acquire("k"));
  EXPECT_EQ(copy.in_flight("k"), 1);
}

TEST(ConcurrencyLimiter, ThreadsOnOneKeyNeverHoldMoreThanTheMaximum) {
  constexpr std::int64_t maximum = 3;
  constexpr int threads = 8;
  constexpr int calls = 20'000;
  concurrency_limiter limiter{maximum};
  std::atomic<std::int64_t> holding{0};
  std::atomic<std::int64_t> most{0};
  std::atomic<std::int64_t> granted{0};
  std::latch go{threads};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      go.arrive_and_wait();
      for (int i = 0; i < calls; ++i) {
        permit p = limiter.try_acquire("shared");
        if (!p) continue;
        ++granted;
        // Counted while the permit is held: the count is up before any other thread can get
        // this slot, and down before the slot is given back.
        const std::int64_t now_holding = ++holding;
        std::int64_t seen = most.load();
        while (now_holding > seen && !most.compare_exchange_weak(seen, now_holding)) {
        }
        if (i % 8 == 0) std::this_thread::yield();  // hold it a while, now and then
        --holding;
        p.release();
      }
    });
  }
  for (auto& w : workers) w.join();
  EXPECT_LE(most.load(), maximum);
  EXPECT_GE(most.load(), 1);
  EXPECT_GT(granted.load(), 0);
  std::printf("[  threads ] %lld granted, at most %lld held at once\n",
              static_cast<long long>(granted.load()), static_cast<long long>(most.load()));
  EXPECT_EQ(limiter.in_flight("shared"), 0);
  EXPECT_EQ(limiter.size(), 0u);
}

TEST(ConcurrencyLimiter, ThreadsOnManyKeysLeaveEveryKeyEmpty) {
  concurrency_limiter limiter{2};
  std::vector<std::thread> workers;
  std::latch go{4};
  std::atomic<std::int64_t> granted{0};
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&, t] {
      go.arrive_and_wait();
      std::vector<permit> held;
      for (int i = 0; i < 5'000; ++i) {
        held.push_back(limiter.try_acquire("k" + std::to_string((i * 7 + t) % 97)));
        if (held.back()) ++granted;
        if (held.size() == 4) held.erase(held.begin());
      }
    });
  }
  for (auto& w : workers) w.join();
  EXPECT_GT(granted.load(), 0);
  EXPECT_EQ(limiter.size(), 0u);
}

}  // namespace
