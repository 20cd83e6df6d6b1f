// Hash flooding (issue 7, item 6). libstdc++'s std::hash<std::string> is unseeded: the same
// function in every process, so anyone can compute keys that all hash alike. Here 2048
// printable 24-byte keys are crafted to share one std::hash value, which makes a
// std::unordered_map<std::string, int> keep them in one bucket and compare each new key
// with every one before it: N²/2 comparisons instead of about N (the control, which shows
// the attack works). The same keys in ours: the storage hashes with a random seed per
// storage (detail::seeded_hash), so they spread like random keys over its shards and its
// index slots.
//
// How the keys are made. libstdc++'s hash (libsupc++/hash_bytes.cc, 64-bit) is MurmurHash64A
// with the fixed seed 0xc70f6907: h = seed ^ (len * m); for each 8-byte block b,
// h = (h ^ mix(b)) * m with mix(b) = shift_mix(b * m) * m; then two finishing steps that
// depend on h alone. Every step is invertible: m is odd, and shift_mix(x) = x ^ (x >> 47)
// is its own inverse. So for any first two blocks, the third block that brings h to a
// chosen value T is unmix(T * m⁻¹ ^ h₂): every key with that third block hashes to the
// same value. Tries whose third block is not printable ASCII are dropped (about 3,000
// tries a key; a fraction of a second for all of them).

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <ratelimit/detail/key_table.hpp>
#include <ratelimit/detail/seeded_hash.hpp>
#include <ratelimit/ratelimit.hpp>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "support/seed.hpp"

// The hashes below wrap modulo 2^64 on purpose: clang's -fsanitize=integer, which reports
// unsigned wraparound although it is defined, must skip them.
#if defined(__clang__)
#define INTENDED_UNSIGNED_WRAP \
  [[clang::no_sanitize("unsigned-integer-overflow", "unsigned-shift-base")]]
#else
#define INTENDED_UNSIGNED_WRAP
#endif

namespace {

constexpr std::size_t key_count = 2048;
constexpr bool std_hash_is_libstdcxx_murmur =
#if defined(__GLIBCXX__)
    std::numeric_limits<std::size_t>::digits == 64;
#else
    false;
#endif

// libstdc++'s _Hash_bytes on 64-bit targets, for keys whose length is a multiple of 8.
constexpr std::uint64_t murmur_multiplier = 0xc6a4a7935bd1e995;
constexpr std::uint64_t std_hash_seed = 0xc70f6907;
constexpr std::size_t key_length = 24;

constexpr std::uint64_t shift_mix(std::uint64_t v) { return v ^ (v >> 47); }
INTENDED_UNSIGNED_WRAP constexpr std::uint64_t mix(std::uint64_t block) {
  return shift_mix(block * murmur_multiplier) * murmur_multiplier;
}

/// The inverse of an odd number modulo 2^64, by Newton's iteration (each doubles the bits).
INTENDED_UNSIGNED_WRAP constexpr std::uint64_t inverse(std::uint64_t odd) {
  std::uint64_t x = odd;
  for (int i = 0; i < 5; ++i) x *= 2 - odd * x;
  return x;
}
constexpr std::uint64_t murmur_inverse = inverse(murmur_multiplier);
static_assert(murmur_multiplier * murmur_inverse == 1);

INTENDED_UNSIGNED_WRAP constexpr std::uint64_t unmix(std::uint64_t mixed) {
  return shift_mix(mixed * murmur_inverse) * murmur_inverse;
}
static_assert(unmix(mix(0x0123456789abcdef)) == 0x0123456789abcdef);

std::uint64_t load(const char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

/// libstdc++'s hash of a key of `key_length` bytes, up to its last block's step.
INTENDED_UNSIGNED_WRAP std::uint64_t state_after_blocks(std::string_view key) {
  std::uint64_t h = std_hash_seed ^ (key.size() * murmur_multiplier);
  for (std::size_t i = 0; i + 8 <= key.size(); i += 8) {
    h = (h ^ mix(load(key.data() + i))) * murmur_multiplier;
  }
  return h;
}

/// The whole of it: the model the keys are crafted on, checked against std::hash below.
INTENDED_UNSIGNED_WRAP std::uint64_t libstdcxx_hash(std::string_view key) {
  const std::uint64_t h = state_after_blocks(key);
  return shift_mix(shift_mix(h) * murmur_multiplier);
}

INTENDED_UNSIGNED_WRAP std::uint64_t splitmix(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  return z ^ (z >> 31);
}

/// Eight printable bytes ('?' to '~') from 64 random bits.
std::uint64_t printable_block(std::uint64_t bits) {
  return (bits & 0x3f3f3f3f3f3f3f3f) + 0x3f3f3f3f3f3f3f3f;
}

bool printable(std::uint64_t block) {
  for (int i = 0; i < 8; ++i, block >>= 8) {
    if ((block & 0xff) < 0x21 || (block & 0xff) > 0x7e) return false;
  }
  return true;
}

std::string key_of(std::uint64_t b1, std::uint64_t b2, std::uint64_t b3) {
  std::string key(key_length, '\0');
  std::memcpy(key.data(), &b1, 8);
  std::memcpy(key.data() + 8, &b2, 8);
  std::memcpy(key.data() + 16, &b3, 8);
  return key;
}

/// `count` distinct printable keys of 24 bytes that libstdc++'s std::hash maps to one value:
/// random first blocks, a fixed second, and the third solved for.
INTENDED_UNSIGNED_WRAP std::vector<std::string> colliding_keys(std::size_t count,
                                                               std::uint64_t seed) {
  constexpr std::uint64_t second = 0x646f6f6c662d6873;  // "sh-flood"
  std::uint64_t random = seed;
  // Any value will do: every key's state after its blocks is made this.
  const std::uint64_t target = splitmix(random);
  const std::uint64_t h0 = std_hash_seed ^ (key_length * murmur_multiplier);
  std::set<std::string> seen;
  std::vector<std::string> keys;
  while (keys.size() < count) {
    const std::uint64_t first = printable_block(splitmix(random));
    const std::uint64_t h2 =
        (((h0 ^ mix(first)) * murmur_multiplier) ^ mix(second)) * murmur_multiplier;
    const std::uint64_t third = unmix((target * murmur_inverse) ^ h2);
    if (!printable(third)) continue;
    std::string key = key_of(first, second, third);
    if (seen.insert(key).second) keys.push_back(std::move(key));
  }
  return keys;
}

/// `count` distinct printable keys of the same length, at random.
std::vector<std::string> random_keys(std::size_t count, std::uint64_t seed) {
  std::uint64_t random = seed;
  std::set<std::string> seen;
  std::vector<std::string> keys;
  while (keys.size() < count) {
    std::string key = key_of(printable_block(splitmix(random)), printable_block(splitmix(random)),
                             printable_block(splitmix(random)));
    if (seen.insert(key).second) keys.push_back(std::move(key));
  }
  return keys;
}

/// Nodes an insertion of each key, in order, walks in a std::unordered_map: the size of the
/// key's bucket just before it goes in (each node is a hash compared, and on a match, a key).
/// The map ends holding every key.
std::size_t nodes_walked(std::unordered_map<std::string, int>& map,
                         const std::vector<std::string>& keys) {
  std::size_t walked = 0;
  for (const std::string& key : keys) {
    walked += map.bucket_size(map.bucket(key));
    map.emplace(key, 0);
  }
  return walked;
}

/// Slots inserting `hashes` in order visits in an index laid out as key_table's: `capacity`
/// 4-byte slots (a power of two), linear probing from hash & (capacity - 1). The index of
/// a table of key_count keys has 2 x key_count slots, rebuilt larger before it is 7/8 full.
std::size_t slots_probed(const std::vector<std::uint64_t>& hashes, std::size_t capacity) {
  std::vector<bool> taken(capacity);
  std::size_t probed = 0;
  for (const std::uint64_t hash : hashes) {
    std::size_t i = hash & (capacity - 1);
    for (++probed; taken[i]; ++probed) i = (i + 1) & (capacity - 1);
    taken[i] = true;
  }
  return probed;
}

class HashFlood : public testing::Test {
 protected:
  void SetUp() override {
    if (!std_hash_is_libstdcxx_murmur) GTEST_SKIP() << "std::hash is not libstdc++'s, 64-bit";
  }

  const std::uint64_t seed = ratelimit_test::base_seed();
  const std::vector<std::string> crafted = colliding_keys(key_count, seed);
  const std::vector<std::string> random = random_keys(key_count, seed + 1);
};

TEST_F(HashFlood, TheModelIsLibstdcxxStdHash) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  for (const std::string& key : random) {
    ASSERT_EQ(libstdcxx_hash(key), std::hash<std::string>{}(key)) << key;
  }
}

TEST_F(HashFlood, CraftedKeysAreDistinctPrintableAndShareOneStdHash) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  EXPECT_EQ(std::set<std::string>(crafted.begin(), crafted.end()).size(), key_count);
  std::set<std::size_t> hashes;
  for (const std::string& key : crafted) {
    EXPECT_EQ(key.size(), key_length);
    EXPECT_TRUE(std::all_of(key.begin(), key.end(), [](char c) { return c >= 0x21 && c <= 0x7e; }))
        << key;
    hashes.insert(std::hash<std::string>{}(key));
  }
  EXPECT_EQ(hashes.size(), 1u);
  std::set<std::size_t> random_hashes;
  for (const std::string& key : random) random_hashes.insert(std::hash<std::string>{}(key));
  EXPECT_EQ(random_hashes.size(), key_count);
}

// The control: the attack works on an unseeded table.
TEST_F(HashFlood, CraftedKeysMakeAnUnseededUnorderedMapQuadratic) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::unordered_map<std::string, int> attacked;
  std::unordered_map<std::string, int> spread;
  const std::size_t crafted_walked = nodes_walked(attacked, crafted);
  const std::size_t random_walked = nodes_walked(spread, random);
  // One bucket holds every crafted key, and the n-th insertion walked the n - 1 before it.
  EXPECT_EQ(attacked.bucket_size(attacked.bucket(crafted.front())), key_count);
  EXPECT_EQ(crafted_walked, key_count * (key_count - 1) / 2);
  // Random keys: about one node a key at a load factor of at most 1.
  EXPECT_LE(random_walked, 2 * key_count);
  std::size_t fullest = 0;
  for (std::size_t b = 0; b < spread.bucket_count(); ++b) {
    fullest = std::max(fullest, spread.bucket_size(b));
  }
  EXPECT_LE(fullest, 16u);
}

// Ours, on the hash key_table computes (seeded_hash with the table's seed): the crafted
// keys land on as many distinct hashes, and cost as many index slots to insert, as random
// keys do. Several seeds, among them a fresh random one as every storage draws.
TEST_F(HashFlood, CraftedKeysSpreadOverOurIndexLikeRandomKeys) {
  const std::vector<std::uint64_t> seeds = {seed, seed ^ 0x5555555555555555, ~seed,
                                            ratelimit::detail::random_seed()};
  for (const std::uint64_t table_seed : seeds) {
    SCOPED_TRACE("key seed " + std::to_string(seed) + ", table seed " + std::to_string(table_seed));
    ratelimit::detail::key_table<std::int64_t> table;
    table.configure(key_count, table_seed);
    const auto hashes_of = [&](const std::vector<std::string>& keys) {
      std::vector<std::uint64_t> hashes;
      for (const std::string& key : keys) hashes.push_back(table.hash(key));
      return hashes;
    };
    const std::vector<std::uint64_t> crafted_hashes = hashes_of(crafted);
    const std::vector<std::uint64_t> random_hashes = hashes_of(random);
    EXPECT_EQ(std::set<std::uint64_t>(crafted_hashes.begin(), crafted_hashes.end()).size(),
              key_count);
    for (const std::size_t capacity : {2 * key_count, 4 * key_count}) {
      const std::size_t crafted_probed = slots_probed(crafted_hashes, capacity);
      const std::size_t random_probed = slots_probed(random_hashes, capacity);
      // Linear probing at most half full: about 1.5 slots a key, either way; hashes that
      // collided would make it key_count / 2 a key.
      EXPECT_LE(crafted_probed, 2 * random_probed) << capacity << " slots";
      EXPECT_LE(crafted_probed, 3 * key_count) << capacity << " slots";
    }
  }
}

// Ours, end to end: the storage picks a key's shard by its seeded hash, and each shard holds
// at most its share of max_keys. Keys that crowded into one shard would be capped at that
// share (128 here), evicting each other and the shard's other keys, whose limits would
// start again; spread (about 32 a shard), all of them are held, and stay limited.
TEST_F(HashFlood, CraftedKeysSpreadOverOurStorageShards) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  ratelimit::token_bucket<ratelimit::manual_clock> limiter{
      ratelimit::quota::per_hour(1), ratelimit::manual_clock(),
      ratelimit::in_memory_storage({.max_keys = 4 * key_count, .shards = 64})};
  for (const std::string& key : crafted) ASSERT_TRUE(limiter.try_acquire(key).allowed) << key;
  EXPECT_EQ(limiter.storage().size(), key_count);
  std::size_t still_limited = 0;
  for (const std::string& key : crafted) still_limited += !limiter.try_acquire(key).allowed;
  EXPECT_EQ(still_limited, key_count);
}

}  // namespace
