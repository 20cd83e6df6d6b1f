#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <ratelimit/detail/key_table.hpp>
#include <ratelimit/detail/seeded_hash.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace {

using table = ratelimit::detail::key_table<std::int64_t>;
using ratelimit::detail::key_probe;

key_probe probe(const table& t, std::string_view key) { return key_probe{key, t.hash(key)}; }

table::entry* add(table& t, std::string_view key, std::int64_t expires_at, std::int64_t state) {
  table::entry* e = t.insert(probe(t, key), 0);
  if (e != nullptr) {
    e->expires_at = expires_at;
    e->state = state;
  }
  return e;
}

TEST(KeyTable, HashIsKeyedByTheSeed) {
  table a;
  table b;
  table same_as_a;
  a.configure(100, 1);
  b.configure(100, 2);
  same_as_a.configure(100, 1);
  int differing = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string key = std::string(static_cast<std::size_t>(i % 40), 'k') + std::to_string(i);
    EXPECT_EQ(a.hash(key), same_as_a.hash(key));
    differing += a.hash(key) != b.hash(key);
  }
  EXPECT_EQ(differing, 1000);
}

// A 16-byte key's two words meet in one multiplication. Masked alike by the seed, the key
// whose words are the other's swapped (adjusted by the hash's constants) multiplied to the
// same product under every seed: a collision found without the seed. Now none is.
TEST(KeyTable, SwappedWordTwinsDoNotCollideWhateverTheSeed) {
  constexpr std::uint64_t k0 = 0x9e3779b97f4a7c15;
  constexpr std::uint64_t k1 = 0xbf58476d1ce4e5b9;
  constexpr std::uint64_t k2 = 0x94d049bb133111eb;
  const std::uint64_t a = 0x1122334455667788;
  const std::uint64_t b = 0x0102030405060708;
  const auto length_mask = static_cast<std::uint64_t>(ratelimit::detail::wide_mul(16, k2));
  const std::uint64_t twin_a = b ^ length_mask ^ k0 ^ k1;
  const std::uint64_t twin_b = a ^ k0 ^ k1 ^ length_mask;
  char key[16];
  char twin[16];
  std::memcpy(key, &a, 8);
  std::memcpy(key + 8, &b, 8);
  std::memcpy(twin, &twin_a, 8);
  std::memcpy(twin + 8, &twin_b, 8);
  int collisions = 0;
  std::mt19937_64 seeds{1};
  for (int i = 0; i < 1000; ++i) {
    const std::uint64_t s = seeds();
    collisions += ratelimit::detail::seeded_hash({key, 16}, s) ==
                          ratelimit::detail::seeded_hash({twin, 16}, s)
                      ? 1
                      : 0;
  }
  EXPECT_EQ(collisions, 0);
}

TEST(KeyTable, RandomSeedsDiffer) {
  std::set<std::uint64_t> seeds;
  for (int i = 0; i < 100; ++i) seeds.insert(ratelimit::detail::random_seed());
  EXPECT_EQ(seeds.size(), 100u);
}

TEST(KeyTable, SimilarKeysHashApart) {
  // Keys differing in one byte, in length, or by NUL padding, across the 16-byte blocks.
  std::set<std::string> keys;
  for (std::size_t n = 0; n <= 48; ++n) {
    for (int byte = 0; byte < 256; byte += 17) {
      std::string key(n, '\0');
      if (n > 0) key[n / 2] = static_cast<char>(byte);
      keys.insert(key);
      keys.insert(key + 'x');
    }
  }
  std::set<std::uint64_t> hashes;
  for (const std::string& key : keys) hashes.insert(ratelimit::detail::seeded_hash(key, 42));
  EXPECT_EQ(hashes.size(), keys.size());
}

TEST(KeyTable, InsertFindErase) {
  table t;
  t.configure(1000, 7);
  EXPECT_EQ(t.find(probe(t, "a")), nullptr);
  ASSERT_NE(add(t, "a", 10, 1), nullptr);
  const std::string long_key(100, 'L');
  ASSERT_NE(add(t, long_key, 20, 2), nullptr);
  ASSERT_NE(add(t, std::string_view("a\0", 2), 30, 3), nullptr);
  EXPECT_EQ(t.size(), 3u);

  table::entry* a = t.find(probe(t, "a"));
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->key.view(), "a");
  EXPECT_EQ(a->state, 1);
  table::entry* l = t.find(probe(t, long_key));
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->key.view(), long_key);
  EXPECT_EQ(l->expires_at, 20);
  EXPECT_EQ(t.find(probe(t, std::string_view("a\0", 2)))->state, 3);

  t.erase(probe(t, "a"));
  EXPECT_EQ(t.find(probe(t, "a")), nullptr);
  EXPECT_EQ(t.size(), 2u);
  t.erase(probe(t, "absent"));
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.find(probe(t, long_key))->state, 2);
}

TEST(KeyTable, SweepDropsEntriesExpiredAtNow) {
  table t;
  t.configure(1000, 7);
  for (int i = 0; i < 100; ++i) add(t, "k" + std::to_string(i), i, i);
  EXPECT_EQ(t.sweep(-1), 0u);
  EXPECT_EQ(t.sweep(49), 50u);
  EXPECT_EQ(t.size(), 50u);
  for (int i = 0; i < 100; ++i) {
    const table::entry* e = t.find(probe(t, "k" + std::to_string(i)));
    if (i < 50) {
      EXPECT_EQ(e, nullptr) << i;
    } else {
      ASSERT_NE(e, nullptr) << i;
      EXPECT_EQ(e->state, i);
    }
  }
}

TEST(KeyTable, CompactionKeepsEveryLiveEntry) {
  table t;
  t.configure(100'000, 3);
  for (int i = 0; i < 10'000; ++i) add(t, "key-" + std::to_string(i), i % 10 == 0 ? 100 : 1, i);
  // 90% expire: the survivors move to the lowest entries and the index is rebuilt.
  EXPECT_EQ(t.sweep(1), 9'000u);
  for (int i = 0; i < 10'000; ++i) {
    const table::entry* e = t.find(probe(t, "key-" + std::to_string(i)));
    if (i % 10 != 0) {
      EXPECT_EQ(e, nullptr) << i;
    } else {
      ASSERT_NE(e, nullptr) << i;
      EXPECT_EQ(e->state, i);
      EXPECT_EQ(e->expires_at, 100);
    }
  }
  for (int i = 0; i < 5'000; ++i) ASSERT_NE(add(t, "new-" + std::to_string(i), 5, -i), nullptr);
  EXPECT_EQ(t.size(), 6'000u);
  EXPECT_EQ(t.find(probe(t, "new-4999"))->state, -4999);
  EXPECT_EQ(t.sweep(100), 6'000u);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.find(probe(t, "key-0")), nullptr);
  ASSERT_NE(add(t, "again", 1, 1), nullptr);
  EXPECT_EQ(t.find(probe(t, "again"))->state, 1);
}

TEST(KeyTable, FullTableEvictsTheEntryExpiringFirst) {
  table t;
  t.configure(4, 7);
  add(t, "a", 40, 0);
  add(t, "b", 10, 0);
  add(t, "c", 30, 0);
  add(t, "d", 20, 0);
  ASSERT_NE(add(t, "e", 50, 0), nullptr);
  EXPECT_EQ(t.size(), 4u);
  EXPECT_EQ(t.find(probe(t, "b")), nullptr);
  for (const char* kept : {"a", "c", "d", "e"}) EXPECT_NE(t.find(probe(t, kept)), nullptr) << kept;
  ASSERT_NE(add(t, "f", 50, 0), nullptr);
  EXPECT_EQ(t.find(probe(t, "d")), nullptr);
}

TEST(KeyTable, SizeNeverExceedsMaxKeys) {
  table t;
  t.configure(100, 9);
  for (int i = 0; i < 10'000; ++i) {
    ASSERT_NE(add(t, "flood-" + std::to_string(i), i, i), nullptr);
    ASSERT_LE(t.size(), 100u);
  }
  EXPECT_EQ(t.size(), 100u);
  EXPECT_NE(t.find(probe(t, "flood-9999")), nullptr);
}

// A seeded random trace of inserts, erases, updates and sweeps against std::map; with
// `max_keys` below the keys in use, each insert into a full table evicts exactly one key.
void run_random_trace(std::size_t max_keys, int steps) {
  const std::uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed) + ", max_keys " + std::to_string(max_keys));
  std::mt19937 random{seed};
  table t;
  t.configure(max_keys, random());
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> model;  // expires_at, state
  std::vector<std::string> pool;
  for (int i = 0; i < 3000; ++i) {
    std::string key(random() % 40, '\0');
    for (char& c : key) c = static_cast<char>(random() % 4);  // many shared prefixes
    pool.push_back(key + std::to_string(i));
  }
  std::int64_t now = 0;
  for (int step = 0; step < steps; ++step) {
    const std::string& key = pool[random() % pool.size()];
    table::entry* e = t.find(probe(t, key));
    const auto it = model.find(key);
    ASSERT_EQ(e != nullptr, it != model.end()) << "step " << step;
    if (e != nullptr) {
      ASSERT_EQ(e->key.view(), key);
      ASSERT_EQ(e->expires_at, it->second.first);
      ASSERT_EQ(e->state, it->second.second);
    }
    const std::uint32_t action = random() % 64;
    if (action < 8) {
      if (e != nullptr) {
        t.erase(probe(t, key));
        model.erase(it);
      }
    } else if (action == 8) {
      now += random() % 50;
      std::size_t expired = 0;
      for (auto m = model.begin(); m != model.end();) {
        const bool drop = m->second.first <= now;
        expired += drop;
        m = drop ? model.erase(m) : std::next(m);
      }
      ASSERT_EQ(t.sweep(now), expired) << "step " << step;
    } else {
      const std::int64_t expires_at = now + static_cast<std::int64_t>(random() % 400);
      if (e == nullptr) {
        const bool full = model.size() == max_keys;
        e = t.insert(probe(t, key), now);
        ASSERT_NE(e, nullptr);
        if (full) {
          // Room comes from a sweep of the keys expired by now, or else one eviction.
          std::size_t expired = 0;
          std::size_t live = 0;
          for (auto m = model.begin(); m != model.end();) {
            const bool gone = t.find(probe(t, m->first)) == nullptr;
            (gone && m->second.first <= now ? expired : live) += gone;
            m = gone ? model.erase(m) : std::next(m);
          }
          ASSERT_TRUE((expired >= 1 && live == 0) || (expired == 0 && live == 1))
              << "step " << step << ": " << expired << " expired and " << live
              << " live keys made room";
        }
      }
      e->expires_at = expires_at;
      e->state = step;
      model[key] = {expires_at, step};
    }
    ASSERT_EQ(t.size(), model.size()) << "step " << step;
  }
}

TEST(KeyTable, MatchesAMapOverARandomTrace) { run_random_trace(1 << 20, 50'000); }

TEST(KeyTable, MatchesAMapOverARandomTraceWhenFull) { run_random_trace(64, 5'000); }

}  // namespace
