// A flood of distinct keys through redis_storage (issue 7, item 5, on Redis): 10'000 keys
// for each algorithm's script, 5x10^4 in all, one request each, decided in batches of 500
// by try_acquire_many (one pipelined round trip a batch), on the server's time (the
// default). Then the server is SCANned: every key the flood wrote is there and carries a
// TTL (PTTL > 0), nothing else is, and each TTL is what the quota implies: the decision's
// reset_after, within the bounds the quota sets for one request on a fresh key, rounded up
// to the millisecond, plus the millisecond the server-time scripts add, less the time
// since the batch was sent.
//
// One redis-server for the binary (a GoogleTest environment); each test writes under a
// prefix of its own.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <ratelimit/redis.hpp>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "support/algorithm_probe.hpp"
#include "support/algorithm_types.hpp"
#include "support/redis_server.hpp"
#include "support/shared_redis_server.hpp"

namespace {

using namespace std::chrono_literals;
namespace algorithms = ratelimit::algorithms;
using ratelimit::decision;
using ratelimit::quota;
using ratelimit::redis_storage;
using ratelimit_test::redis_client;
using ratelimit_test::redis_reply;
using kind = redis_reply::kind;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

constexpr std::string_view prefix_root = "rl-test:";
constexpr std::size_t flood_keys = 10'000;
constexpr std::size_t batch_size = 500;
/// Ten an hour: a bucket's key used once is fresh 6 minutes later, the others' within one
/// or two hours; all far longer than the test, so no key may vanish before the SCAN but a
/// fixed window's, whose window can end at any moment.
const quota flood_quota = quota::per_hour(10);

auto* const environment = ratelimit_test::shared_redis_server::install();

/// The range of reset_after one request of cost 1 on a fresh key gets, by the quota alone
/// (DESIGN section 2): a bucket refills one unit in period / limit; a log forgets its
/// request a period on; a window is fresh when it ends (within a period); the sliding
/// window counter when the window after it ends (within two, and after one).
template <class A>
std::pair<nanoseconds, nanoseconds> implied_reset(const quota& q) {
  if constexpr (std::is_same_v<A, algorithms::token_bucket> ||
                std::is_same_v<A, algorithms::leaky_bucket>) {
    return {q.period / q.limit, q.period / q.limit};
  } else if constexpr (std::is_same_v<A, algorithms::sliding_log>) {
    return {q.period, q.period};
  } else if constexpr (std::is_same_v<A, algorithms::fixed_window>) {
    return {1ns, q.period};
  } else {
    return {q.period + 1ns, 2 * q.period};
  }
}

/// The user key in a Redis key name `prefix{tag}name:user_key`; "" if it is not one.
std::string_view user_key_of(std::string_view name, std::string_view prefix) {
  if (!name.starts_with(prefix)) return {};
  const std::size_t close = name.find('}', prefix.size());
  const std::size_t colon = close == std::string_view::npos ? close : name.find(':', close);
  return colon == std::string_view::npos ? std::string_view{} : name.substr(colon + 1);
}

/// Every key name matching `pattern`, by SCAN.
std::vector<std::string> scan(redis_client& client, const std::string& pattern) {
  std::vector<std::string> names;
  std::string cursor = "0";
  do {
    const redis_reply page = client.command("SCAN", cursor, "MATCH", pattern, "COUNT", 1000);
    if (page.type != kind::array || page.elements.size() != 2) {
      ADD_FAILURE() << "SCAN answered " << page;
      return names;
    }
    cursor = page.elements[0].text;
    for (const redis_reply& name : page.elements[1].elements) names.push_back(name.text);
  } while (cursor != "0");
  return names;
}

/// The PTTL of each of `names`, in milliseconds (-1: no TTL; -2: no such key), read by one
/// script per thousand keys rather than a round trip each.
std::vector<std::int64_t> pttls(redis_client& client, const std::vector<std::string>& names) {
  constexpr std::string_view script =
      "local r = {} for i = 1, #KEYS do r[i] = redis.call('PTTL', KEYS[i]) end return r";
  std::vector<std::int64_t> out;
  for (std::size_t from = 0; from < names.size(); from += 1000) {
    const std::size_t n = std::min<std::size_t>(1000, names.size() - from);
    std::vector<std::string> argv = {"EVAL", std::string{script}, std::to_string(n)};
    argv.insert(argv.end(), names.begin() + static_cast<std::ptrdiff_t>(from),
                names.begin() + static_cast<std::ptrdiff_t>(from + n));
    const redis_reply reply = client.command(argv);
    if (reply.type != kind::array || reply.elements.size() != n) {
      ADD_FAILURE() << "PTTL script answered " << reply;
      out.resize(out.size() + n, -3);
      continue;
    }
    for (const redis_reply& ttl : reply.elements) out.push_back(ttl.integer);
  }
  return out;
}

std::int64_t ceil_milliseconds(nanoseconds t) { return std::chrono::ceil<milliseconds>(t).count(); }

/// What the flood wrote for one user key.
struct written {
  nanoseconds reset_after;
  std::chrono::steady_clock::time_point sent;  ///< before its batch was sent
};

/// Counts the keys that break one rule, and describes the first: one failure per rule,
/// rather than one per key of the flood.
class tally {
 public:
  explicit tally(std::string rule) : rule_(std::move(rule)) {}

  template <class Describe>
  void check(bool holds, Describe describe) {
    if (holds) return;
    if (broken_++ == 0) first_ = describe();
  }

  testing::AssertionResult none_broken() const {
    if (broken_ == 0) return testing::AssertionSuccess();
    return testing::AssertionFailure()
           << broken_ << " keys break \"" << rule_ << "\"; the first: " << first_;
  }

 private:
  std::string rule_;
  std::size_t broken_ = 0;
  std::string first_;
};

template <class A>
class RedisFlood : public testing::Test {};

TYPED_TEST_SUITE(RedisFlood, ratelimit_test::all_algorithms, ratelimit_test::algorithm_name);

TYPED_TEST(RedisFlood, EveryKeyCarriesTheTtlItsQuotaImplies) {
  const std::string prefix = ratelimit_test::test_prefix(prefix_root);
  const int port = environment->server().port();
  ratelimit::basic_limiter<TypeParam, std::chrono::system_clock, redis_storage> limiter{
      flood_quota, {}, redis_storage{{.port = port, .timeout = 5s, .key_prefix = prefix}}};
  const auto [shortest, longest] = implied_reset<TypeParam>(flood_quota);

  std::vector<std::string> keys;
  keys.reserve(flood_keys);
  for (std::size_t i = 0; i < flood_keys; ++i) keys.push_back("flood:" + std::to_string(i));
  std::map<std::string, written, std::less<>> flood;
  std::vector<ratelimit::request> batch;
  tally admitted("admitted by Redis");
  tally reset_implied("reset_after in [" + std::to_string(shortest.count()) + ", " +
                      std::to_string(longest.count()) + "] ns");
  for (std::size_t from = 0; from < flood_keys; from += batch_size) {
    batch.clear();
    for (std::size_t i = from; i < std::min(flood_keys, from + batch_size); ++i) {
      batch.push_back({keys[i]});
    }
    const auto sent = std::chrono::steady_clock::now();
    const std::vector<decision> decided = limiter.try_acquire_many(batch);
    ASSERT_EQ(decided.size(), batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const decision& d = decided[i];
      const auto describe = [&] {
        return std::string{batch[i].key} + ": " + ratelimit_test::describe(d);
      };
      admitted.check(d.allowed && !d.degraded, describe);
      reset_implied.check(d.reset_after >= shortest && d.reset_after <= longest, describe);
      flood.emplace(std::string{batch[i].key}, written{d.reset_after, sent});
    }
  }
  EXPECT_TRUE(admitted.none_broken());
  EXPECT_TRUE(reset_implied.none_broken());

  redis_client client{port, 5s};
  const std::vector<std::string> names = scan(client, prefix + "*");
  const std::vector<std::int64_t> ttls = pttls(client, names);
  const auto read = std::chrono::steady_clock::now();
  ASSERT_EQ(ttls.size(), names.size());

  tally written_by_the_flood("a key the flood wrote");
  tally has_ttl("PTTL > 0");
  tally not_too_long("PTTL <= ceil(reset_after) + 1 ms");
  tally not_too_short("PTTL >= ceil(reset_after) + 1 ms - the time since the batch was sent");
  std::size_t found = 0;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto it = flood.find(user_key_of(names[i], prefix));
    written_by_the_flood.check(it != flood.end(), [&] { return testing::PrintToString(names[i]); });
    if (it == flood.end()) continue;
    ++found;
    const written& w = it->second;
    // Set to ceil(reset_after) + 1 ms when the script ran, after `sent`; read before `read`.
    const std::int64_t set_to = ceil_milliseconds(w.reset_after) + 1;
    const std::int64_t at_least = set_to - ceil_milliseconds(read - w.sent) - 1;
    const auto describe = [&] {
      return names[i] + ": PTTL " + std::to_string(ttls[i]) + " ms, reset_after " +
             std::to_string(w.reset_after.count()) + " ns, at least " + std::to_string(at_least) +
             " ms";
    };
    has_ttl.check(ttls[i] > 0, describe);
    not_too_long.check(ttls[i] <= set_to, describe);
    not_too_short.check(ttls[i] >= at_least, describe);
  }
  EXPECT_TRUE(written_by_the_flood.none_broken());
  EXPECT_TRUE(has_ttl.none_broken());
  EXPECT_TRUE(not_too_long.none_broken());
  EXPECT_TRUE(not_too_short.none_broken());

  // Every key is there, but those whose state went fresh (and so expired) since: only a
  // fixed window's, whose window may have ended during the test.
  std::size_t gone_fresh = 0;
  for (const auto& [key, w] : flood) gone_fresh += w.sent + w.reset_after + 1ms <= read;
  EXPECT_GE(found, flood.size() - gone_fresh);
  if constexpr (!std::is_same_v<TypeParam, algorithms::fixed_window>) {
    EXPECT_EQ(gone_fresh, 0u);
  }
}

}  // namespace
