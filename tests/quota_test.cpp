#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <ratelimit/ratelimit.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using ratelimit::manual_clock;
using ratelimit::quota;

constexpr std::int64_t int64_max = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t int64_min = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t max_units = std::int64_t{1} << 62;

static_assert(quota::max_units == max_units);

// Runs `f`, expecting std::invalid_argument whose message names `field` and `value`.
void expect_invalid(const std::function<void()>& f, const std::string& field,
                    const std::string& value) {
  try {
    f();
    ADD_FAILURE() << "no exception for " << field << " = " << value;
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(field), std::string::npos) << what;
    EXPECT_NE(what.find("(got " + value), std::string::npos) << what;
  }
}

const std::vector<std::int64_t> invalid_units = {0, -1, -3, max_units + 1, int64_max, int64_min};
const std::vector<std::chrono::nanoseconds> invalid_periods = {0ns, -1ns, -1h,
                                                               std::chrono::nanoseconds::min()};

template <class Limiter>
void construct(quota q) {
  Limiter limiter{q, {}};
}

// Every limiter validates a quota written as an aggregate, which no constructor checked.
void expect_every_limiter_rejects(quota q, const std::string& field, const std::string& value) {
  expect_invalid([q] { construct<ratelimit::token_bucket<manual_clock>>(q); }, field, value);
  expect_invalid([q] { construct<ratelimit::leaky_bucket<manual_clock>>(q); }, field, value);
  expect_invalid([q] { construct<ratelimit::fixed_window<manual_clock>>(q); }, field, value);
  expect_invalid([q] { construct<ratelimit::sliding_log<manual_clock>>(q); }, field, value);
  expect_invalid([q] { construct<ratelimit::sliding_window_counter<manual_clock>>(q); }, field,
                 value);
}

TEST(Quota, InvalidLimitThrowsFromEveryConstructor) {
  for (const std::int64_t n : invalid_units) {
    SCOPED_TRACE(n);
    const std::string value = std::to_string(n);
    expect_invalid([n] { (void)quota::per_second(n); }, "limit", value);
    expect_invalid([n] { (void)quota::per_minute(n); }, "limit", value);
    expect_invalid([n] { (void)quota::per_hour(n); }, "limit", value);
    expect_invalid([n] { (void)quota::per(n, 1s); }, "limit", value);
    expect_every_limiter_rejects(quota{n, 1s, 1}, "limit", value);
  }
}

TEST(Quota, InvalidBurstThrowsFromWithBurstAndLimiters) {
  for (const std::int64_t b : invalid_units) {
    SCOPED_TRACE(b);
    const std::string value = std::to_string(b);
    expect_invalid([b] { (void)quota::per_second(10).with_burst(b); }, "burst", value);
    expect_invalid([b] { (void)quota::per(1, 1ns).with_burst(b); }, "burst", value);
    expect_every_limiter_rejects(quota{10, 1s, b}, "burst", value);
  }
}

TEST(Quota, AnAggregateWithoutBurstIsRejected) {
  // A designated-initializer quota that forgets the burst leaves it 0.
  expect_every_limiter_rejects(quota{.limit = 5, .period = 1s}, "burst", "0");
}

TEST(Quota, InvalidPeriodThrowsFromPerAndLimiters) {
  for (const std::chrono::nanoseconds p : invalid_periods) {
    SCOPED_TRACE(p.count());
    const std::string value = std::to_string(p.count());
    expect_invalid([p] { (void)quota::per(1, p); }, "period", value);
    expect_invalid([p] { (void)quota::per(max_units, p); }, "period", value);
    expect_every_limiter_rejects(quota{1, p, 1}, "period", value);
  }
}

TEST(Quota, ADefaultConstructedQuotaIsInvalid) {
  expect_every_limiter_rejects(quota{}, "limit", "0");
}

TEST(Quota, TheFirstBadFieldIsNamed) {
  expect_invalid([] { (void)quota{0, 0ns, 0}.validated(); }, "limit", "0");
  expect_invalid([] { (void)quota{1, -5ns, 0}.validated(); }, "period", "-5");
  expect_invalid([] { (void)quota{0, 1s, 7}.with_burst(3); }, "limit", "0");
}

TEST(Quota, MessageSaysWhichBoundWasCrossed) {
  try {
    (void)quota::per_second(max_units + 1);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "ratelimit::quota: limit must be <= 2^62 (got 4611686018427387905)");
  }
  try {
    (void)quota::per_second(-3);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "ratelimit::quota: limit must be > 0 (got -3)");
  }
}

TEST(Quota, NamedConstructorsSpellOutTheirPeriod) {
  EXPECT_EQ(quota::per_second(7), (quota{7, 1s, 7}));
  EXPECT_EQ(quota::per_minute(7), (quota{7, 60s, 7}));
  EXPECT_EQ(quota::per_hour(7), (quota{7, 3600s, 7}));
  EXPECT_EQ(quota::per(7, 3ns), (quota{7, 3ns, 7}));
  EXPECT_EQ(quota::per_minute(7).with_burst(2), (quota{7, 60s, 2}));
  EXPECT_EQ(quota::per_minute(7).with_burst(max_units), (quota{7, 60s, max_units}));
}

TEST(Quota, ValidEdgesAreAccepted) {
  using years = std::chrono::duration<std::int64_t, std::ratio<31'556'952>>;
  const std::chrono::nanoseconds centuries =
      std::chrono::duration_cast<std::chrono::nanoseconds>(years{292});
  const std::vector<quota> edges = {
      quota::per_second(1),
      quota::per_second(max_units),
      quota::per_hour(max_units).with_burst(1),
      quota::per(1, 1ns),
      quota::per(max_units, 1ns),
      quota::per(1, centuries),
      quota::per(max_units, centuries),
      quota::per(1, std::chrono::nanoseconds::max()).with_burst(max_units),
      quota{max_units, 1ns, max_units},
  };
  for (const quota& q : edges) {
    SCOPED_TRACE(std::to_string(q.limit) + " per " + std::to_string(q.period.count()) + "ns");
    EXPECT_EQ(q.validated(), q);
    manual_clock clock;
    clock.set(manual_clock::time_point{std::chrono::nanoseconds{int64_max - 1}});
    ratelimit::token_bucket<manual_clock> bucket{q, clock};
    ratelimit::leaky_bucket<manual_clock> leaky{q, clock};
    ratelimit::fixed_window<manual_clock> fixed{q, clock};
    ratelimit::sliding_log<manual_clock> log{q, clock};
    ratelimit::sliding_window_counter<manual_clock> counter{q, clock};
    EXPECT_TRUE(bucket.try_acquire("k").allowed);
    EXPECT_TRUE(leaky.try_acquire("k").allowed);
    EXPECT_TRUE(fixed.try_acquire("k").allowed);
    EXPECT_TRUE(log.try_acquire("k").allowed);
    EXPECT_TRUE(counter.try_acquire("k").allowed);
  }
}

template <class Limiter>
void expect_cost_validated() {
  Limiter limiter{quota::per_second(5), {}};
  for (const std::int64_t cost : {std::int64_t{0}, std::int64_t{-1}, int64_min}) {
    expect_invalid([&] { (void)limiter.try_acquire("k", cost); }, "cost", std::to_string(cost));
  }
  // A cost above capacity is a rejection, not an error, and consumes nothing.
  const ratelimit::decision too_big = limiter.try_acquire("k", int64_max);
  EXPECT_FALSE(too_big.allowed);
  EXPECT_EQ(too_big.retry_after, std::chrono::nanoseconds::max());
  EXPECT_TRUE(limiter.try_acquire("k", 5).allowed);
}

TEST(Quota, CostMustBePositiveForEveryLimiter) {
  expect_cost_validated<ratelimit::token_bucket<manual_clock>>();
  expect_cost_validated<ratelimit::leaky_bucket<manual_clock>>();
  expect_cost_validated<ratelimit::fixed_window<manual_clock>>();
  expect_cost_validated<ratelimit::sliding_log<manual_clock>>();
  expect_cost_validated<ratelimit::sliding_window_counter<manual_clock>>();
}

TEST(Quota, CostErrorMessageNamesTheValue) {
  ratelimit::token_bucket<manual_clock> limiter{quota::per_second(5), {}};
  try {
    (void)limiter.try_acquire("k", -7);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "ratelimit: cost must be > 0 (got -7)");
  }
}

void expect_invalid_options(ratelimit::in_memory_options options, const std::string& field,
                            const std::string& value) {
  expect_invalid([options] { ratelimit::in_memory_storage storage{options}; }, field, value);
  expect_invalid([options] { ratelimit::in_memory_storage_st storage{options}; }, field, value);
}

constexpr std::size_t per_shard_limit = (std::size_t{1} << 24) - 2;

TEST(InMemoryOptions, ShardsMustBeAPowerOfTwoUpTo65536) {
  for (const std::size_t shards : {0, 3, 6, 100, 65535, 65537, 131072}) {
    SCOPED_TRACE(shards);
    expect_invalid_options({.max_keys = 1 << 20, .shards = shards}, "shards",
                           std::to_string(shards));
  }
  expect_invalid_options({.max_keys = 1 << 20, .shards = std::numeric_limits<std::size_t>::max()},
                         "shards", std::to_string(std::numeric_limits<std::size_t>::max()));
}

TEST(InMemoryOptions, MaxKeysMustCoverEveryShard) {
  expect_invalid_options({.max_keys = 0, .shards = 1}, "max_keys", "0");
  expect_invalid_options({.max_keys = 63, .shards = 64}, "max_keys", "63");
  expect_invalid_options({.max_keys = 0, .shards = 64}, "max_keys", "0");
}

TEST(InMemoryOptions, MaxKeysMustFitEveryShard) {
  expect_invalid_options({.max_keys = per_shard_limit + 1, .shards = 1}, "max_keys",
                         std::to_string(per_shard_limit + 1));
  expect_invalid_options({.max_keys = 64 * per_shard_limit + 1, .shards = 64}, "max_keys",
                         std::to_string(64 * per_shard_limit + 1));
  expect_invalid_options({.max_keys = std::numeric_limits<std::size_t>::max(), .shards = 1},
                         "max_keys", std::to_string(std::numeric_limits<std::size_t>::max()));
}

TEST(InMemoryOptions, ValidEdgesAreAccepted) {
  const std::vector<ratelimit::in_memory_options> edges = {
      {},
      {.max_keys = 1, .shards = 1},
      {.max_keys = 65536, .shards = 65536},
      {.max_keys = per_shard_limit, .shards = 1},
      {.max_keys = 64 * per_shard_limit, .shards = 64},
  };
  for (const auto& options : edges) {
    SCOPED_TRACE(std::to_string(options.max_keys) + " keys, " + std::to_string(options.shards));
    ratelimit::in_memory_storage storage{options};
    ratelimit::in_memory_storage_st single{options};
    EXPECT_EQ(storage.options().max_keys, options.max_keys);
    EXPECT_EQ(single.options().shards, options.shards);
  }
}

TEST(InMemoryOptions, DefaultsAreDocumented) {
  const ratelimit::in_memory_options options;
  EXPECT_EQ(options.max_keys, std::size_t{1} << 20);
  EXPECT_EQ(options.shards, 64u);
}

}  // namespace
