// Issue 7, item 1 on Redis: redis_storage, at client time in nanoseconds, held to the same
// checks as the in-memory storages (tests/support/properties.hpp; tests/properties_test.cpp
// says what each proves): the rate bounds of every algorithm over seeded random traces, a
// rejection consuming nothing (a twin key gets only the admitted requests and must decide
// them alike), retry_after exact to the nanosecond. Fewer steps than in memory: each one is
// a round trip.
//
// One redis-server for the binary (tests/support/shared_redis_server.hpp); each trace writes
// under a prefix of its own, and the environment checks that every key left has a TTL.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <ratelimit/redis.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "support/algorithm_types.hpp"
#include "support/decision_options.hpp"
#include "support/properties.hpp"
#include "support/random_requests.hpp"
#include "support/redis_server.hpp"
#include "support/seed.hpp"
#include "support/shared_redis_server.hpp"

namespace {

using namespace std::chrono_literals;
namespace properties = ratelimit_test::properties;
using ratelimit::manual_clock;
using ratelimit::quota;
using ratelimit::redis_storage;

constexpr std::string_view prefix_root = "rl-test:";

auto* const environment =
    ratelimit_test::shared_redis_server::install(std::string{prefix_root} + "*");

/// Client time in nanoseconds, so that the scripts decide to the nanosecond as in memory
/// (the checks fail a degraded decision).
ratelimit::redis_options client_options(std::string prefix) {
  return ratelimit_test::client_time_options(environment->server().port(), std::move(prefix));
}

/// Scripts count nanoseconds of client time in doubles: times stay below 2^51.
constexpr std::int64_t nanosecond_bound = std::int64_t{1} << 51;

template <class A>
class RedisProperties : public testing::Test {};

using ratelimit_test::algorithm_name;
using ratelimit_test::all_algorithms;
TYPED_TEST_SUITE(RedisProperties, all_algorithms, algorithm_name);

TYPED_TEST(RedisProperties, HoldOnRandomTracesAtClientTimeInNanoseconds) {
  using A = TypeParam;
  const std::uint64_t base = ratelimit_test::base_seed();
  std::mt19937_64 random(base);
  int traces = 0;
  std::uint64_t index = 0;
  properties::trace_stats total;
  for (const quota& q : ratelimit_test::awkward_quotas()) {
    const std::uint64_t seed = base + 7000 + index++;
    SCOPED_TRACE(ratelimit_test::seed_text(seed) + ", " + ratelimit_test::describe(q));
    manual_clock clock;
    redis_storage storage{
        client_options(ratelimit_test::test_prefix(prefix_root, std::to_string(index)))};
    try {
      storage.prepare<A>(q);
    } catch (const std::invalid_argument&) {
      continue;  // a quota the scripts can't decide exactly; refused when a limiter is built
    }
    ratelimit::basic_limiter<A, manual_clock, redis_storage> limiter{q, clock, storage};
    const properties::trace_options o{
        .steps = 120,
        .start = static_cast<std::int64_t>(random() % (nanosecond_bound / 4)),
        .end = nanosecond_bound};
    properties::trace_stats stats;
    EXPECT_TRUE(properties::check_random_trace<A>(q, seed, o,
                                                  properties::decide_with(limiter, clock), &stats));
    total += stats;
    ++traces;
  }
  testing::Test::RecordProperty("traces", traces);
  EXPECT_GE(traces, 10) << "the scripts refused most quotas";
  EXPECT_TRUE(properties::exercised(total));
}

}  // namespace
