#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ratelimit/ratelimit.hpp>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using namespace std::chrono_literals;
using ratelimit::in_memory_options;
using ratelimit::manual_clock;
using ratelimit::quota;

template <class Storage>
using token_bucket = ratelimit::token_bucket<manual_clock, Storage>;
template <class Storage>
using fixed_window = ratelimit::fixed_window<manual_clock, Storage>;

template <class Limiter>
std::string algorithm_name() {
  using A = typename Limiter::algorithm_type;
  if (std::is_same_v<A, ratelimit::algorithms::token_bucket>) return "token_bucket";
  if (std::is_same_v<A, ratelimit::algorithms::leaky_bucket>) return "leaky_bucket";
  if (std::is_same_v<A, ratelimit::algorithms::fixed_window>) return "fixed_window";
  if (std::is_same_v<A, ratelimit::algorithms::sliding_log>) return "sliding_log";
  return "sliding_window_counter";
}

template <class Storage>
class InMemoryStorage : public ::testing::Test {
 protected:
  // Runs `f` once per algorithm with a limiter type over this storage.
  template <class F>
  static void for_each_algorithm(F f) {
    f(std::type_identity<ratelimit::token_bucket<manual_clock, Storage>>{});
    f(std::type_identity<ratelimit::leaky_bucket<manual_clock, Storage>>{});
    f(std::type_identity<ratelimit::fixed_window<manual_clock, Storage>>{});
    f(std::type_identity<ratelimit::sliding_log<manual_clock, Storage>>{});
    f(std::type_identity<ratelimit::sliding_window_counter<manual_clock, Storage>>{});
  }

  manual_clock clock;
};

using storages = ::testing::Types<ratelimit::in_memory_storage, ratelimit::in_memory_storage_st>;

struct storage_names {
  template <class Storage>
  static std::string GetName(int) {
    return std::is_same_v<Storage, ratelimit::in_memory_storage> ? "Mt" : "St";
  }
};

TYPED_TEST_SUITE(InMemoryStorage, storages, storage_names);

std::string with_last(std::string s, char c) {
  s.back() = c;
  return s;
}

// Keys whose bytes could confuse an encoding: NULs, padding-like bytes, lengths around
// the 15-byte inline limit, long keys, Redis hash-tag braces and line breaks.
std::vector<std::string> awkward_keys() {
  using std::string_literals::operator""s;
  std::vector<std::string> keys = {
      ""s,   "\0"s,   "\0\0"s,   "a"s,    "a\0"s,  "\0a"s,   "a\0b"s,
      "{"s,  "}"s,    "{}"s,     "{a}"s,  "}{"s,   "a{b}c"s, "\r"s,
      "\n"s, "\r\n"s, "a\r\nb"s, "\x80"s, "\xff"s, "\x0f"s,  "\xff\xff"s,
  };
  for (const std::size_t n : {7, 8, 14, 15, 16, 17, 31, 32, 33, 1024}) {
    const std::string x(n, 'x');
    keys.push_back(x);
    keys.push_back(with_last(x, 'y'));
    keys.push_back(with_last(x, '\0'));
    keys.push_back("z" + x.substr(1));
    keys.push_back(std::string(n, '\0'));
    keys.push_back(std::string(n, '\xff'));
  }
  std::string middle(1024, 'x');
  middle[512] = '{';
  keys.push_back(middle);
  return keys;
}

TYPED_TEST(InMemoryStorage, EveryKeyIsDistinctWhateverItsBytes) {
  const std::vector<std::string> keys = awkward_keys();
  ASSERT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), keys.size());

  TypeParam storage;
  token_bucket<TypeParam> limiter{quota::per_hour(1), this->clock, storage};
  for (const std::string& key : keys) {
    EXPECT_TRUE(limiter.try_acquire(key).allowed) << "key of " << key.size() << " bytes";
  }
  EXPECT_EQ(storage.size(), keys.size());
  for (const std::string& key : keys) {
    const std::string copy = key;  // found by its bytes, not by its address
    EXPECT_FALSE(limiter.try_acquire(copy).allowed) << "key of " << key.size() << " bytes";
  }
  EXPECT_EQ(storage.sweep(), 0u);
  EXPECT_EQ(storage.size(), keys.size());
}

TYPED_TEST(InMemoryStorage, ADecisionThatLeavesAKeyFreshStoresNothing) {
  this->for_each_algorithm([this](auto type) {
    using limiter_type = typename decltype(type)::type;
    SCOPED_TRACE(algorithm_name<limiter_type>());
    TypeParam storage;
    limiter_type limiter{quota::per_second(2), this->clock, storage};
    const ratelimit::decision too_big = limiter.try_acquire("new", 3);
    EXPECT_FALSE(too_big.allowed);
    EXPECT_EQ(too_big.reset_after, 0ns);
    EXPECT_EQ(storage.size(), 0u);
  });
}

TYPED_TEST(InMemoryStorage, AKeyBackToFreshIsDroppedByItsOwnNextDecision) {
  this->for_each_algorithm([this](auto type) {
    using limiter_type = typename decltype(type)::type;
    SCOPED_TRACE(algorithm_name<limiter_type>());
    TypeParam storage;
    limiter_type limiter{quota::per_second(2), this->clock, storage};
    EXPECT_TRUE(limiter.try_acquire("k").allowed);
    EXPECT_EQ(storage.size(), 1u);
    this->clock.advance(2s);
    EXPECT_FALSE(limiter.try_acquire("k", 3).allowed);
    EXPECT_EQ(storage.size(), 0u);
  });
}

TYPED_TEST(InMemoryStorage, SweepDropsExactlyTheKeysBackToFresh) {
  this->for_each_algorithm([this](auto type) {
    using limiter_type = typename decltype(type)::type;
    SCOPED_TRACE(algorithm_name<limiter_type>());
    TypeParam storage{in_memory_options{.max_keys = 1024, .shards = 1}};
    limiter_type limiter{quota::per_second(2), this->clock, storage};
    this->clock.set(manual_clock::time_point{});
    for (int i = 0; i < 10; ++i) EXPECT_TRUE(limiter.try_acquire("old" + std::to_string(i)));
    // Every algorithm is back to fresh 2 periods after a request, none sooner than 1/2.
    this->clock.advance(2s);
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter.try_acquire("new" + std::to_string(i)));
    EXPECT_EQ(storage.size(), 15u);
    // The storage knows only the times of its decisions: this one tells it the time.
    EXPECT_FALSE(limiter.try_acquire("probe", 3).allowed);
    EXPECT_EQ(storage.sweep(), 10u);
    EXPECT_EQ(storage.size(), 5u);
    EXPECT_EQ(storage.sweep(), 0u);
  });
}

TYPED_TEST(InMemoryStorage, IdleKeysDisappearWithoutASweepCall) {
  TypeParam storage{in_memory_options{.max_keys = 1 << 16, .shards = 1}};
  token_bucket<TypeParam> limiter{quota::per_second(1), this->clock, storage};
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(limiter.try_acquire("idle" + std::to_string(i)));
  this->clock.advance(1s);
  // A sweep runs within 1024 decisions of the shard; these probes store nothing.
  for (int i = 0; i < 1024; ++i) EXPECT_FALSE(limiter.try_acquire("probe", 2).allowed);
  EXPECT_EQ(storage.size(), 0u);
}

TYPED_TEST(InMemoryStorage, ManyIdleKeysDisappearWithinAsManyDecisions) {
  constexpr int keys = 5000;
  TypeParam storage{in_memory_options{.max_keys = 1 << 16, .shards = 1}};
  token_bucket<TypeParam> limiter{quota::per_second(1), this->clock, storage};
  for (int i = 0; i < keys; ++i) EXPECT_TRUE(limiter.try_acquire("idle" + std::to_string(i)));
  EXPECT_EQ(storage.size(), std::size_t{keys});
  this->clock.advance(1s);
  // Sweeps run every max(1024, keys) decisions of a shard.
  for (int i = 0; i < keys; ++i) EXPECT_FALSE(limiter.try_acquire("probe", 2).allowed);
  EXPECT_EQ(storage.size(), 0u);
}

// Keys fresh for an hour, in shards that none of the later traffic reaches: the sweeps
// (automatic and sweep()) reach them, as of the time of the latest decision.
template <class Storage>
void fill_shards_then_use_one_key(manual_clock clock, Storage& storage) {
  token_bucket<Storage> limiter{quota::per_second(1), clock, storage};
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(limiter.try_acquire("idle" + std::to_string(i)));
  clock.advance(1h);
  for (int i = 0; i < 100'000; ++i) (void)limiter.try_acquire("hot");
}

TYPED_TEST(InMemoryStorage, IdleKeysDisappearEvenInShardsWithoutNewTraffic) {
  TypeParam storage;  // 64 shards
  fill_shards_then_use_one_key(this->clock, storage);
  EXPECT_EQ(storage.size(), 1u);
}

TYPED_TEST(InMemoryStorage, SweepDropsKeysFreshAtTheLatestTimeTheStorageSaw) {
  TypeParam storage;  // 64 shards
  fill_shards_then_use_one_key(this->clock, storage);
  storage.sweep();
  EXPECT_EQ(storage.size(), 1u);
}

// A key swept as fresh and asked again after the clock stepped back to before the instant it
// was fresh at starts fresh as of that instant: a fixed window keeps counting in the window
// it had reached, rather than count an earlier window's limit again.
TYPED_TEST(InMemoryStorage, AKeySweptAsFreshStartsAsOfTheInstantItWasFreshAtAfterAStepBack) {
  const auto at = [this](std::chrono::minutes m) { this->clock.set(manual_clock::time_point{m}); };
  TypeParam storage{in_memory_options{.max_keys = 1024, .shards = 1}};
  fixed_window<TypeParam> limiter{quota::per_hour(1), this->clock, storage};
  at(6h + 54min);
  EXPECT_TRUE(limiter.try_acquire("k"));  // window 6's one
  at(7h + 30min);
  EXPECT_FALSE(limiter.try_acquire("probe", 2));  // tells the storage the time
  EXPECT_EQ(storage.sweep(), 1u);                 // "k", fresh since 7h
  at(6h + 57min);                                 // back into window 6
  EXPECT_TRUE(limiter.try_acquire("k"));          // counted in window 7
  at(7h + 45min);
  EXPECT_FALSE(limiter.try_acquire("k"));  // window 7 holds one already
  at(8h);
  EXPECT_TRUE(limiter.try_acquire("k"));
}

TYPED_TEST(InMemoryStorage, KeysStillLimitedSurviveSweeps) {
  TypeParam storage{in_memory_options{.max_keys = 1024, .shards = 1}};
  token_bucket<TypeParam> limiter{quota::per_second(2), this->clock, storage};
  EXPECT_TRUE(limiter.try_acquire("light", 1));
  EXPECT_TRUE(limiter.try_acquire("heavy", 2));
  this->clock.advance(500ms);
  EXPECT_FALSE(limiter.try_acquire("probe", 3));
  EXPECT_EQ(storage.sweep(), 1u);
  EXPECT_EQ(storage.size(), 1u);
  // "heavy" kept its state: one token refilled, not two.
  EXPECT_FALSE(limiter.try_acquire("heavy", 2));
  EXPECT_TRUE(limiter.try_acquire("heavy", 1));
}

TYPED_TEST(InMemoryStorage, StoredKeysNeverExceedMaxKeysUnderAFlood) {
  constexpr std::size_t bound = 64;
  TypeParam storage{in_memory_options{.max_keys = bound, .shards = 4}};
  token_bucket<TypeParam> limiter{quota::per_hour(1), this->clock, storage};
  std::size_t peak = 0;
  for (int i = 0; i < 100'000; ++i) {
    // Evicting a key still limited lets the new one in: documented, memory stays bounded.
    EXPECT_TRUE(limiter.try_acquire("flood-key-number-" + std::to_string(i)).allowed);
    peak = std::max(peak, storage.size());
    this->clock.advance(1ns);
  }
  EXPECT_EQ(peak, bound);
  EXPECT_EQ(storage.size(), bound);
}

TYPED_TEST(InMemoryStorage, MaxKeysNotAMultipleOfShardsIsStillTheBound) {
  TypeParam storage{in_memory_options{.max_keys = 10, .shards = 4}};
  token_bucket<TypeParam> limiter{quota::per_hour(1), this->clock, storage};
  std::size_t peak = 0;
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(limiter.try_acquire("key" + std::to_string(i)).allowed);
    peak = std::max(peak, storage.size());
  }
  EXPECT_EQ(peak, 10u);
}

// Fills one shard of `max_keys` keys whose quota is used up, except one key (the
// `fresh_position`-th added) that is back to fresh when a new key arrives.
template <class Storage>
void expect_fresh_key_evicted_first(std::size_t max_keys, std::size_t fresh_position) {
  SCOPED_TRACE("max_keys " + std::to_string(max_keys) + ", fresh key #" +
               std::to_string(fresh_position));
  manual_clock clock;
  Storage storage{in_memory_options{.max_keys = max_keys, .shards = 1}};
  ratelimit::token_bucket<manual_clock, Storage> limiter{quota::per_second(2), clock, storage};
  for (std::size_t i = 0; i < max_keys; ++i) {
    const std::int64_t cost = i == fresh_position ? 1 : 2;
    ASSERT_TRUE(limiter.try_acquire("key" + std::to_string(i), cost));
  }
  clock.advance(500ms);
  ASSERT_TRUE(limiter.try_acquire("newcomer"));
  EXPECT_EQ(storage.size(), max_keys);
  // Still stored: one token refilled, so two are refused. Evicted: a full bucket, which
  // admits and stores the key again, evicting another; so stop at the first one.
  for (std::size_t i = 0; i < max_keys; ++i) {
    if (i != fresh_position && limiter.try_acquire("key" + std::to_string(i), 2)) {
      ADD_FAILURE() << "key" << i << " was evicted, still limited, before the fresh key";
      return;
    }
  }
}

TYPED_TEST(InMemoryStorage, FullShardEvictsAFreshKeyBeforeAnyOther) {
  expect_fresh_key_evicted_first<TypeParam>(8, 0);
  expect_fresh_key_evicted_first<TypeParam>(8, 5);
  expect_fresh_key_evicted_first<TypeParam>(100, 50);
  expect_fresh_key_evicted_first<TypeParam>(1000, 999);
}

TYPED_TEST(InMemoryStorage, FullShardWithoutFreshKeyEvictsTheKeyNearestToFresh) {
  TypeParam storage{in_memory_options{.max_keys = 4, .shards = 1}};
  token_bucket<TypeParam> limiter{quota::per_second(4), this->clock, storage};
  // Back to a full bucket in 1s, 750ms, 500ms and 250ms.
  for (int cost = 4; cost >= 1; --cost) {
    EXPECT_TRUE(limiter.try_acquire(std::to_string(cost), cost));
  }
  EXPECT_TRUE(limiter.try_acquire("newcomer"));
  EXPECT_EQ(storage.size(), 4u);
  EXPECT_FALSE(limiter.try_acquire("4", 1));
  EXPECT_FALSE(limiter.try_acquire("3", 2));
  EXPECT_FALSE(limiter.try_acquire("2", 3));
  // Evicted, so it restarts from a full bucket: the documented over-admission.
  EXPECT_TRUE(limiter.try_acquire("1", 4));
}

TYPED_TEST(InMemoryStorage, CopiesShareKeys) {
  TypeParam storage;
  TypeParam copy = storage;
  token_bucket<TypeParam> first{quota::per_hour(1), this->clock, storage};
  token_bucket<TypeParam> second{quota::per_hour(1), this->clock, copy};
  EXPECT_TRUE(first.try_acquire("k"));
  EXPECT_FALSE(second.try_acquire("k"));
  EXPECT_EQ(storage.size(), 1u);
  EXPECT_EQ(copy.size(), 1u);
  EXPECT_EQ(first.storage().size(), 1u);

  TypeParam unrelated;
  token_bucket<TypeParam> third{quota::per_hour(1), this->clock, unrelated};
  EXPECT_TRUE(third.try_acquire("k"));
}

TYPED_TEST(InMemoryStorage, EachAlgorithmKeepsItsOwnStateInASharedStorage) {
  TypeParam storage;
  std::size_t algorithms = 0;
  this->for_each_algorithm([&](auto type) {
    using limiter_type = typename decltype(type)::type;
    limiter_type limiter{quota::per_hour(1), this->clock, storage};
    EXPECT_TRUE(limiter.try_acquire("k")) << algorithm_name<limiter_type>();
    EXPECT_FALSE(limiter.try_acquire("k")) << algorithm_name<limiter_type>();
    EXPECT_EQ(storage.size(), ++algorithms);
  });
  // Limiters of one algorithm over one storage share the key's state.
  fixed_window<TypeParam> again{quota::per_hour(1), this->clock, storage};
  EXPECT_FALSE(again.try_acquire("k"));
  EXPECT_EQ(storage.size(), 5u);
}

// With two shards of one key each, adding a key evicts "anchor" iff both share a shard:
// a map of which keys go where, which the storage's seed decides.
template <class Storage>
std::vector<bool> same_shard_as_anchor() {
  manual_clock clock;
  Storage storage{in_memory_options{.max_keys = 2, .shards = 2}};
  ratelimit::token_bucket<manual_clock, Storage> limiter{quota::per_hour(1), clock, storage};
  std::vector<bool> same;
  EXPECT_TRUE(limiter.try_acquire("anchor"));
  for (int i = 0; i < 64; ++i) {
    EXPECT_TRUE(limiter.try_acquire("key" + std::to_string(i)));
    // Admitted only if evicted; either way "anchor" is stored again afterwards.
    same.push_back(limiter.try_acquire("anchor").allowed);
  }
  return same;
}

TYPED_TEST(InMemoryStorage, EachStorageSeedsItsHash) {
  const std::vector<bool> first = same_shard_as_anchor<TypeParam>();
  const std::vector<bool> second = same_shard_as_anchor<TypeParam>();
  EXPECT_NE(std::count(first.begin(), first.end(), true), 0);
  EXPECT_NE(std::count(first.begin(), first.end(), false), 0);
  // Equal by chance with probability 2^-64.
  EXPECT_NE(first, second);
}

TYPED_TEST(InMemoryStorage, UsableWithoutALimiter) {
  TypeParam storage;
  storage.template prepare<ratelimit::algorithms::token_bucket>(quota::per_second(1));
  EXPECT_EQ(storage.size(), 0u);
  EXPECT_EQ(storage.sweep(), 0u);
  const ratelimit::decision d =
      storage.template decide<ratelimit::algorithms::token_bucket>("k", quota::per_second(3), 0, 1);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.remaining, 2);
  EXPECT_EQ(storage.size(), 1u);
}

}  // namespace
