// Tiers: the quota comes with the call, and a key's state carries over when it changes.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <ratelimit/ratelimit.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

namespace {

using namespace std::chrono_literals;
using ratelimit::manual_clock;
using ratelimit::quota;
namespace algorithms = ratelimit::algorithms;

const quota free_tier = quota::per_minute(10);
const quota premium_tier = quota::per_minute(100);

template <class A>
class Tiers : public testing::Test {};

// The algorithms whose state counts what a key used: all but the leaky bucket, which
// keeps the instant its queue drains.
using counting = testing::Types<algorithms::token_bucket, algorithms::fixed_window,
                                algorithms::sliding_log, algorithms::sliding_window_counter>;
TYPED_TEST_SUITE(Tiers, counting);

TYPED_TEST(Tiers, EachCallIsDecidedUnderTheQuotaItCarries) {
  manual_clock clock;
  ratelimit::basic_limiter<TypeParam, manual_clock, ratelimit::in_memory_storage> limiter{
      quota::per_minute(1), clock, ratelimit::in_memory_storage{}};
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(limiter.try_acquire("free", 1, free_tier));
  EXPECT_FALSE(limiter.try_acquire("free", 1, free_tier));
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(limiter.try_acquire("premium", 1, premium_tier));
  EXPECT_FALSE(limiter.try_acquire("premium", 1, premium_tier));
  // The limiter's own quota still serves the calls that carry none.
  EXPECT_TRUE(limiter.try_acquire("default"));
  EXPECT_FALSE(limiter.try_acquire("default"));
}

TYPED_TEST(Tiers, AnUpgradeKeepsWhatTheKeyUsed) {
  manual_clock clock;
  ratelimit::basic_limiter<TypeParam, manual_clock, ratelimit::in_memory_storage> limiter{
      free_tier, clock, ratelimit::in_memory_storage{}};
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(limiter.try_acquire("user"));
  const auto d = limiter.try_acquire("user", 1, premium_tier);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.limit, 100);
  EXPECT_EQ(d.remaining, 100 - 8 - 1);
}

TYPED_TEST(Tiers, ADowngradeKeepsWhatTheKeyUsed) {
  manual_clock clock;
  ratelimit::basic_limiter<TypeParam, manual_clock, ratelimit::in_memory_storage> limiter{
      premium_tier, clock, ratelimit::in_memory_storage{}};
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(limiter.try_acquire("user"));
  const auto last = limiter.try_acquire("user", 1, free_tier);
  EXPECT_TRUE(last.allowed);
  EXPECT_EQ(last.remaining, 10 - 8 - 1);
  EXPECT_TRUE(limiter.try_acquire("user", 1, free_tier));
  EXPECT_FALSE(limiter.try_acquire("user", 1, free_tier));
}

TYPED_TEST(Tiers, ADowngradeBelowWhatWasUsedAdmitsNothingUntilItIsPaidBack) {
  manual_clock clock;
  ratelimit::basic_limiter<TypeParam, manual_clock, ratelimit::in_memory_storage> limiter{
      premium_tier, clock, ratelimit::in_memory_storage{}};
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(limiter.try_acquire("user"));
  const auto d = limiter.try_acquire("user", 1, free_tier);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.remaining, 0);
  EXPECT_GT(d.retry_after, 0ns);
  clock.advance(d.retry_after);
  EXPECT_TRUE(limiter.try_acquire("user", 1, free_tier));
}

TEST(TiersLeakyBucket, KeepsTheInstantItsQueueDrains) {
  // 8 queued at 6 s each under the free tier drain 48 s from now; under premium's 0.6 s
  // interval that is 80 places of its 100.
  manual_clock clock;
  ratelimit::leaky_bucket limiter{free_tier, clock};
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(limiter.try_acquire("user"));
  const auto d = limiter.try_acquire("user", 1, premium_tier);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.delay, 48s);
  EXPECT_EQ(d.remaining, 100 - 80 - 1);
}

TEST(Tiers, AnInvalidQuotaWithTheCallThrowsNamingIt) {
  ratelimit::token_bucket limiter{free_tier};
  try {
    static_cast<void>(limiter.try_acquire("user", 1, quota{-3, 1s, 1}));
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("-3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(static_cast<void>(limiter.try_acquire("user", 0, free_tier)), std::invalid_argument);
}

// The resolver: the quota comes from the key, not from the call.

struct plans {
  std::map<std::string, quota, std::less<>> by_key;
  int lookups = 0;
  quota operator()(std::string_view key) {
    ++lookups;
    const auto found = by_key.find(key);
    return found != by_key.end() ? found->second : free_tier;
  }
};

TEST(TieredLimiter, DecidesEachKeyUnderTheQuotaItsResolverGives) {
  manual_clock clock;
  ratelimit::tiered_limiter limiter{ratelimit::token_bucket{free_tier, clock},
                                    plans{.by_key = {{"acme", premium_tier}}}};
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(limiter.try_acquire("acme"));
  EXPECT_FALSE(limiter.try_acquire("acme"));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(limiter.try_acquire("someone"));
  const auto d = limiter.try_acquire("someone");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.limit, 10);
  EXPECT_EQ(limiter.resolver().lookups, 112);
}

TEST(TieredLimiter, AKeyMovedToAnotherTierKeepsWhatItUsed) {
  manual_clock clock;
  ratelimit::tiered_limiter limiter{ratelimit::fixed_window{free_tier, clock}, plans{}};
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(limiter.try_acquire("user"));
  EXPECT_FALSE(limiter.try_acquire("user"));
  limiter.resolver().by_key.emplace("user", premium_tier);
  const auto d = limiter.try_acquire("user", 5);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.remaining, 100 - 10 - 5);
}

TEST(TieredLimiter, AnInvalidQuotaFromTheResolverThrowsNamingIt) {
  ratelimit::tiered_limiter limiter{ratelimit::token_bucket{free_tier}, [](std::string_view) {
                                      return quota{10, 0s, 10};
                                    }};
  try {
    static_cast<void>(limiter.try_acquire("user"));
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("period"), std::string::npos) << e.what();
  }
}

}  // namespace
