// The Redis storage against a real redis-server: with the client's time its decisions are
// the in-memory storage's, step by step; with the server's time they are sane; quotas and
// options it cannot serve are refused naming the field; no byte of a user key can confuse
// the key names; and every key left behind has a TTL.
//
// One server for the whole binary (started by a GoogleTest environment); each test writes
// under a prefix of its own, and the environment checks the TTLs of every key at the end.

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <ratelimit/redis.hpp>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "support/algorithm_probe.hpp"
#include "support/algorithm_types.hpp"
#include "support/decision_options.hpp"
#include "support/invalid_argument.hpp"
#include "support/redis_server.hpp"
#include "support/seed.hpp"
#include "support/shared_redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;
namespace algorithms = ratelimit::algorithms;
using ratelimit::decision;
using ratelimit::manual_clock;
using ratelimit::quota;
using ratelimit::redis_options;
using ratelimit::redis_storage;
using ratelimit_test::describe;
using ratelimit_test::invalid_argument_from;
using ratelimit_test::mentions;
using ratelimit_test::redis_reply;
using ratelimit_test::redis_server;
using kind = redis_reply::kind;
using std::chrono::nanoseconds;

using ratelimit_test::memory_limiter;
using ratelimit_test::redis_limiter;

/// Every key the tests write starts with this, so that the environment finds them all.
constexpr std::string_view prefix_root = "rl-test:";

auto* const environment =
    ratelimit_test::shared_redis_server::install(std::string{prefix_root} + "*");

redis_server& server() { return environment->server(); }

/// A prefix no other test uses: `rl-test:<suite>.<test>:<what>:`.
std::string test_prefix(std::string_view what = "") {
  return ratelimit_test::test_prefix(prefix_root, what);
}

/// Client time in `unit`s (at 1ns, decisions identical to the in-memory storage's).
redis_options client_options(std::string prefix, nanoseconds unit = std::chrono::nanoseconds{1}) {
  return ratelimit_test::client_time_options(server().port(), std::move(prefix), unit);
}

redis_options server_time_options(std::string prefix) {
  return ratelimit_test::server_time_options(server().port(), std::move(prefix));
}

using ratelimit_test::algorithm_name;
using ratelimit_test::all_algorithms;

template <class A>
class RedisStorage : public testing::Test {};

TYPED_TEST_SUITE(RedisStorage, all_algorithms, algorithm_name);

// ---------------------------------------------------------------------------------------
// Key names

/// A Redis key name taken apart: `prefix{tag}algorithm:user_key`.
struct key_name_parts {
  std::string tag;
  std::string algorithm;
  std::string user_key;
};

/// The parts of `name`, or nothing unless it is the prefix, then `{`, 16 lower-case hex
/// digits and `}`, then a name without `:` or braces, `:` and the user key verbatim.
std::optional<key_name_parts> parse_key_name(std::string_view name, std::string_view prefix) {
  if (!name.starts_with(prefix)) return std::nullopt;
  name.remove_prefix(prefix.size());
  if (name.size() < 18 || name[0] != '{' || name[17] != '}') return std::nullopt;
  const std::string_view tag = name.substr(1, 16);
  if (tag.find_first_not_of("0123456789abcdef") != std::string_view::npos) return std::nullopt;
  const std::string_view rest = name.substr(18);
  const std::size_t colon = rest.find(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  const std::string_view algorithm = rest.substr(0, colon);
  if (algorithm.find_first_of("{}") != std::string_view::npos) return std::nullopt;
  return key_name_parts{std::string{tag}, std::string{algorithm},
                        std::string{rest.substr(colon + 1)}};
}

/// What Redis Cluster hashes of a key name: what lies between its first `{` and the first
/// `}` after it, unless that is empty; else the whole name.
std::string_view hashed_part(std::string_view name) {
  const std::size_t open = name.find('{');
  if (open == std::string_view::npos) return name;
  const std::size_t close = name.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) return name;
  return name.substr(open + 1, close - open - 1);
}

/// The cluster slot of `name`: `CLUSTER KEYSLOT` where the server answers it (Redis 7.0
/// does not, without cluster mode), else the text Redis Cluster would hash.
std::string slot_of(const std::string& name) {
  const redis_reply slot = server().command("CLUSTER", "KEYSLOT", name);
  if (slot.type == kind::integer) return "slot " + std::to_string(slot.integer);
  return "hash tag " + std::string{hashed_part(name)};
}

/// The Redis key names under `prefix`, by the user key they hold.
std::map<std::string, std::vector<std::string>> names_by_user_key(const std::string& prefix) {
  std::map<std::string, std::vector<std::string>> names;
  for (const auto& [name, ttl] : server().key_ttls(prefix + "*")) {
    const auto parts = parse_key_name(name, prefix);
    EXPECT_TRUE(parts.has_value()) << "malformed key name " << testing::PrintToString(name);
    if (parts) names[parts->user_key].push_back(name);
  }
  return names;
}

std::string with_last(std::string s, char c) {
  s.back() = c;
  return s;
}

// Keys whose bytes could confuse an encoding: NULs, Redis hash-tag braces, line breaks,
// protocol and command look-alikes, lengths around 16, 1 KiB.
std::vector<std::string> awkward_keys() {
  std::vector<std::string> keys = {
      ""s,
      "\0"s,
      "\0\0"s,
      "a"s,
      "a\0"s,
      "\0a"s,
      "a\0b"s,
      "{"s,
      "}"s,
      "{}"s,
      "}{"s,
      "{a}"s,
      "a{b}c"s,
      "{{}}"s,
      "\r"s,
      "\n"s,
      "\r\n"s,
      "a\r\nb"s,
      "a\r\n"s,
      "\x80"s,
      "\xff"s,
      "a:b"s,
      ":"s,
      "tb:a"s,
      "*"s,
      "FLUSHALL"s,
      "x\r\nDEL other"s,
      "$-1\r\n"s,
      "*1\r\n$8\r\nFLUSHALL\r\n"s,
  };
  for (const std::size_t n : {15, 16, 17, 1024}) {
    const std::string x(n, 'x');
    keys.push_back(x);
    keys.push_back(with_last(x, 'y'));
    keys.push_back(with_last(x, '\0'));
    keys.push_back(with_last(x, '{'));
    keys.push_back(std::string(n, '\0'));
  }
  std::string braced(1024, 'x');
  braced[0] = '{';
  braced[1023] = '}';
  keys.push_back(braced);
  return keys;
}

// ---------------------------------------------------------------------------------------
// Differential traces

using ratelimit_test::base_seed;
using ratelimit_test::seed_text;

/// One request of a trace over several keys that share one clock.
struct trace_step {
  std::size_t key;
  std::int64_t at;
  std::int64_t cost;
};

/// Seeded requests over `keys` keys on one clock, with steps and costs chosen to land where
/// off-by-one errors live: the same instant, 1ns later, one interval, exactly retry_after and
/// reset_after of the key's previous decision (and 1ns early), up to 100 periods; costs of 1,
/// up to the capacity, just above it, and enormous; with `backward`, a few steps back of up
/// to two periods. Times stay within (-bound, bound), which the scripts need.
class trace {
 public:
  trace(const quota& q, std::int64_t capacity, std::size_t keys, std::uint64_t seed,
        std::int64_t bound, bool backward)
      : quota_(q),
        capacity_(capacity),
        keys_(keys),
        bound_(bound),
        backward_(backward),
        random_(seed) {
    now_ = between(-bound_ / 2, bound_ / 8);
  }

  std::int64_t now() const { return now_; }

  trace_step next(const std::vector<decision>& last) {
    const std::size_t key = below(keys_);
    std::int64_t step = step_after(last[key]);
    const ratelimit_test::i128 at = ratelimit_test::i128{now_} + step;
    if (at >= bound_ || at <= -bound_) step = 0;
    now_ += step;
    return {key, now_, cost()};
  }

  std::uint64_t below(std::uint64_t n) { return random_() % n; }

  std::int64_t between(std::int64_t lo, std::int64_t hi) {
    return lo + static_cast<std::int64_t>(random_() % static_cast<std::uint64_t>(hi - lo + 1));
  }

 private:
  std::int64_t step_after(const decision& last) {
    const std::int64_t period = quota_.period.count();
    const std::int64_t interval = std::max<std::int64_t>(1, period / quota_.limit);
    // Long jumps are capped, or a trace of long periods would soon reach the bound and stand
    // still there.
    const std::int64_t far = std::min(bound_ / 256, period * 100);
    const std::uint64_t pick = below(100);
    if (backward_ && pick < 2) return -between(1, std::min(bound_, 2 * period));
    if (pick < 14) return 0;
    if (pick < 22) return 1;
    if (pick < 30) return between(2, 10);
    if (pick < 42) return between(0, interval);
    if (pick < 56) {
      if (!last.allowed && last.retry_after > nanoseconds::zero() &&
          last.retry_after != nanoseconds::max()) {
        return last.retry_after.count() - static_cast<std::int64_t>(below(2));
      }
      return between(0, interval);
    }
    if (pick < 64) {
      if (last.reset_after > nanoseconds::zero()) {
        return last.reset_after.count() - static_cast<std::int64_t>(below(2));
      }
      return between(0, period);
    }
    if (pick < 84) return between(0, period);
    if (pick < 96) return between(0, std::min(far, 3 * period));
    return between(0, far);
  }

  std::int64_t cost() {
    const std::uint64_t pick = below(100);
    if (pick < 70) return 1;
    if (pick < 82) return between(1, capacity_);
    if (pick < 87) return capacity_;
    if (pick < 91) return capacity_ + 1;
    if (pick < 94) return ratelimit_test::int64_max;
    if (pick < 97) return between(1, std::min<std::int64_t>(capacity_, 3));
    return between(capacity_, ratelimit_test::int64_max - 1);
  }

  quota quota_;
  std::int64_t capacity_;
  std::size_t keys_;
  std::int64_t bound_;
  bool backward_;
  std::mt19937_64 random_;
  std::int64_t now_ = 0;
};

/// Rates that are not whole nanoseconds per unit, bursts above and below the limit, 1 per
/// nanosecond, and a period of 2^50 ns, the longest the scripts take: all of them within
/// what every script accepts at 1ns units.
std::vector<quota> nanosecond_quotas() {
  return {
      quota::per_minute(7),
      quota::per_minute(7).with_burst(3),
      quota::per_minute(7).with_burst(20),
      quota::per(10, 13s),
      quota::per(10, 13s).with_burst(25),
      quota::per_hour(1),
      quota::per(1, 1ns),
      quota::per(3, 10ns),
      quota::per(5, 7ns).with_burst(2),
      quota::per(2, 3ns).with_burst(5),
      quota::per_second(1000).with_burst(1),
      quota::per(7, 1'000'000'007ns),
      quota::per_second(1'000'000).with_burst(1000),
      quota::per(7, nanoseconds{std::int64_t{1} << 50}).with_burst(6),
  };
}

/// Keys of the traces: short, empty, with a NUL, longer than 15 bytes.
const std::array<std::string, 4> trace_keys = {"alice", "", "b\0b"s, "a key longer than 16 bytes"};

/// Times of the nanosecond traces stay below 2^51 in magnitude: the scripts take times below
/// 2^52 units, and a period of up to 2^50 is added to them.
constexpr std::int64_t nanosecond_bound = std::int64_t{1} << 51;

/// Whether the traces that compare with in-memory step the clock back. Not for the fixed
/// window: after a step back, a key dropped as fresh restarts in the window the clock reads
/// on Redis, but no earlier than the instant it was dropped at in memory (docs/guarantees.md;
/// redis_clock_test measures Redis's bound).
template <class A>
constexpr bool steps_back_alike = !std::is_same_v<A, algorithms::fixed_window>;

/// Traces are kept below 1024 decisions: a shard of the in-memory storage sweeps its keys
/// back to fresh every 1024 decisions, and a key swept (which Redis keeps until its TTL) is
/// told apart by a clock that then steps back before its expiry. Both storages are new for
/// each trace, so no sweep ever runs. 14 quotas x 720 steps: over 10^4 per algorithm.
constexpr int steps_per_trace = 720;

using ratelimit_test::small_in_memory_storage;

/// Fails for each of the first mismatches of a trace; returns how many steps mismatched.
class mismatches {
 public:
  void compare(const decision& expected, const decision& actual, const trace_step& s, int step) {
    if (ratelimit_test::same(expected, actual)) return;
    if (++count_ <= 3) {
      ADD_FAILURE() << "step " << step << ", key " << testing::PrintToString(trace_keys[s.key])
                    << ": cost " << s.cost << " at " << s.at << "ns"
                    << "\n  in memory: " << describe(expected)
                    << "\n  redis:     " << describe(actual);
    }
  }
  int count() const { return count_; }

 private:
  int count_ = 0;
};

/// After a trace, the keys Redis holds are exactly those whose last decision was not back
/// to fresh (reset_after > 0), each with a TTL.
void expect_redis_holds_the_unfresh_keys(const std::string& prefix,
                                         const std::vector<decision>& last,
                                         const std::vector<bool>& touched) {
  const auto names = names_by_user_key(prefix);
  for (std::size_t k = 0; k < trace_keys.size(); ++k) {
    const bool held = names.count(trace_keys[k]) > 0;
    const bool unfresh = touched[k] && last[k].reset_after > nanoseconds::zero();
    EXPECT_EQ(held, unfresh) << "key " << testing::PrintToString(trace_keys[k])
                             << ", last decision " << describe(last[k]);
  }
  for (const auto& [name, ttl] : server().key_ttls(prefix + "*")) {
    EXPECT_GT(ttl, 0) << testing::PrintToString(name);
  }
}

TYPED_TEST(RedisStorage, ClientTimeDecisionsMatchInMemoryStepByStep) {
  using A = TypeParam;
  const std::vector<quota> quotas = nanosecond_quotas();
  int steps = 0;
  for (std::size_t i = 0; i < quotas.size(); ++i) {
    const quota& q = quotas[i];
    const std::uint64_t seed = base_seed() + 1000 * i;
    SCOPED_TRACE(seed_text(seed) + ", " + ratelimit_test::describe(q));
    const std::string prefix = test_prefix(std::to_string(i));
    manual_clock clock;
    memory_limiter<A> memory{q, clock, small_in_memory_storage()};
    redis_limiter<A> redis{q, clock, redis_storage{client_options(prefix)}};
    trace requests{q,
                   ratelimit_test::capacity<A>(q),
                   trace_keys.size(),
                   seed,
                   nanosecond_bound,
                   steps_back_alike<A>};
    std::vector<decision> last(trace_keys.size());
    std::vector<bool> touched(trace_keys.size());
    mismatches found;
    for (int step = 0; step < steps_per_trace && found.count() < 3; ++step, ++steps) {
      const trace_step s = requests.next(last);
      clock.set(manual_clock::time_point{nanoseconds{s.at}});
      const decision expected = memory.try_acquire(trace_keys[s.key], s.cost);
      last[s.key] = redis.try_acquire(trace_keys[s.key], s.cost);
      touched[s.key] = true;
      found.compare(expected, last[s.key], s, step);
    }
    if (found.count() == 0) expect_redis_holds_the_unfresh_keys(prefix, last, touched);
  }
  EXPECT_GE(steps, 10'000);
}

TYPED_TEST(RedisStorage, TiersChangingUnderAKeyDecideAsInMemory) {
  // Four tiers of one period, picked at random for each call: every upgrade and downgrade,
  // including quotas that shrink below what a key has used. Fewer steps than a shard makes
  // before its first sweep: a sweep (or a TTL) drops a key once it is fresh under the
  // quota it was last decided with, which a slower tier would not call fresh yet; when each
  // storage does so differs, and this test is about the math.
  using A = TypeParam;
  const std::array<quota, 4> tiers{quota::per_minute(10), quota::per_minute(100).with_burst(20),
                                   quota::per_minute(1000), quota::per_minute(3)};
  const std::uint64_t seed = base_seed() + 77;
  SCOPED_TRACE("seed " + std::to_string(seed));
  manual_clock clock;
  memory_limiter<A> memory{tiers[0], clock, small_in_memory_storage()};
  redis_limiter<A> redis{tiers[0], clock, redis_storage{client_options(test_prefix())}};
  std::mt19937_64 random{seed};
  int mismatches = 0;
  for (int step = 0; step < 1000 && mismatches < 3; ++step) {
    clock.advance(nanoseconds{static_cast<std::int64_t>(random() % 2'000'000'000)});
    const std::string key = "user:" + std::to_string(random() % 3);
    const quota& tier = tiers[random() % tiers.size()];
    const std::int64_t cost = 1 + static_cast<std::int64_t>(random() % 3);
    const decision expected = memory.try_acquire(key, cost, tier);
    const decision actual = redis.try_acquire(key, cost, tier);
    if (ratelimit_test::describe(expected) != ratelimit_test::describe(actual)) {
      ++mismatches;
      ADD_FAILURE() << "step " << step << ", " << key << " cost " << cost << " under "
                    << ratelimit_test::describe(tier) << ": in memory "
                    << ratelimit_test::describe(expected) << ", on Redis "
                    << ratelimit_test::describe(actual);
    }
  }
}

TYPED_TEST(RedisStorage, ATieredLimiterDecidesEachKeyUnderItsResolversQuota) {
  using A = TypeParam;
  const auto tier_of = [](std::string_view key) {
    return key.starts_with("premium:") ? quota::per_minute(100) : quota::per_minute(10);
  };
  manual_clock clock;
  ratelimit::tiered_limiter memory{
      memory_limiter<A>{quota::per_minute(1), clock, small_in_memory_storage()}, tier_of};
  ratelimit::tiered_limiter redis{
      redis_limiter<A>{quota::per_minute(1), clock, redis_storage{client_options(test_prefix())}},
      tier_of};
  int admitted = 0;
  for (const std::string key : {"premium:acme", "free:bob"}) {
    for (int i = 0; i < 120; ++i) {
      const decision expected = memory.try_acquire(key);
      const decision actual = redis.try_acquire(key);
      ASSERT_EQ(ratelimit_test::describe(actual), ratelimit_test::describe(expected))
          << key << " request " << i;
      admitted += actual.allowed ? 1 : 0;
    }
  }
  EXPECT_EQ(admitted, 100 + 10);
}

/// `d` rounded up to a whole microsecond; nanoseconds::max() (never) stays itself.
nanoseconds up_to_microseconds(nanoseconds d) {
  if (d == nanoseconds::max()) return d;
  return std::chrono::ceil<std::chrono::microseconds>(d);
}

std::int64_t floor_to_microseconds(std::int64_t ns) { return ns - ((ns % 1000) + 1000) % 1000; }

// With client_time_unit = 1us the scripts see the limiter's time floored to a microsecond
// and count every duration in microseconds. With a quota whose period is whole
// microseconds, the in-memory storage fed the same floored times makes the same admissions
// and the same `remaining` (every quantity is then exactly 1000 times its microsecond
// twin), while each wait it reports in nanoseconds, Redis reports rounded up to the next
// whole microsecond: against the caller, never early. Both waits count from the floored
// time. That is what is compared: allowed, limit, remaining and degraded equal; retry_after,
// reset_after and delay equal to the in-memory ones rounded up to whole microseconds.
TYPED_TEST(RedisStorage, MicrosecondClientTimeMatchesInMemoryRoundedToMicroseconds) {
  using A = TypeParam;
  const std::vector<quota> quotas = {
      quota::per_minute(7),
      quota::per_minute(7).with_burst(20),
      quota::per(10, 13s).with_burst(25),
      quota::per_hour(1),
      quota::per(1, 1us),
      quota::per(3, 10us),
      quota::per(5, 7us).with_burst(2),
      quota::per(7, 1'000'007us),
  };
  int steps = 0;
  for (std::size_t i = 0; i < quotas.size(); ++i) {
    const quota& q = quotas[i];
    const std::uint64_t seed = base_seed() + 7 + 1000 * i;
    SCOPED_TRACE(seed_text(seed) + ", " + ratelimit_test::describe(q));
    const std::string prefix = test_prefix(std::to_string(i));
    manual_clock redis_clock;
    manual_clock memory_clock;
    memory_limiter<A> memory{q, memory_clock, small_in_memory_storage()};
    redis_limiter<A> redis{q, redis_clock, redis_storage{client_options(prefix, 1us)}};
    trace requests{q,
                   ratelimit_test::capacity<A>(q),
                   trace_keys.size(),
                   seed,
                   nanosecond_bound,
                   steps_back_alike<A>};
    std::vector<decision> last(trace_keys.size());
    int mismatches = 0;
    for (int step = 0; step < 200 && mismatches < 3; ++step, ++steps) {
      const trace_step s = requests.next(last);
      redis_clock.set(manual_clock::time_point{nanoseconds{s.at}});
      memory_clock.set(manual_clock::time_point{nanoseconds{floor_to_microseconds(s.at)}});
      decision expected = memory.try_acquire(trace_keys[s.key], s.cost);
      expected.retry_after = up_to_microseconds(expected.retry_after);
      expected.reset_after = up_to_microseconds(expected.reset_after);
      expected.delay = up_to_microseconds(expected.delay);
      last[s.key] = redis.try_acquire(trace_keys[s.key], s.cost);
      if (!ratelimit_test::same(expected, last[s.key])) {
        ++mismatches;
        ADD_FAILURE() << "step " << step << ", key " << testing::PrintToString(trace_keys[s.key])
                      << ": cost " << s.cost << " at " << s.at << "ns"
                      << "\n  in memory, rounded up: " << describe(expected)
                      << "\n  redis:                 " << describe(last[s.key]);
      }
    }
  }
  EXPECT_GE(steps, 1500);
}

// ---------------------------------------------------------------------------------------
// Batches

TYPED_TEST(RedisStorage, BatchDecidesLikeTheSameRequestsOneByOne) {
  using A = TypeParam;
  const quota q = quota::per(5, 10s).with_burst(3);
  const std::int64_t capacity = ratelimit_test::capacity<A>(q);
  manual_clock clock;
  redis_limiter<A> batched{q, clock, redis_storage{client_options(test_prefix("batched"))}};
  redis_limiter<A> one_by_one{q, clock, redis_storage{client_options(test_prefix("single"))}};
  memory_limiter<A> memory{q, clock, small_in_memory_storage()};
  const std::array<std::string, 4> keys = {"x", "y", "", "a key longer than 16 bytes"};
  std::mt19937_64 random(base_seed());
  SCOPED_TRACE("seed " + std::to_string(base_seed()));

  EXPECT_TRUE(batched.try_acquire_many({}).empty());
  int compared = 0;
  for (int round = 0; round < 150; ++round) {
    std::vector<ratelimit::request> requests(1 + random() % 8);
    for (auto& r : requests) {
      r.key = keys[random() % keys.size()];
      const auto pick = random() % 10;
      r.cost = pick < 6 ? 1 : pick < 8 ? 2 : pick < 9 ? capacity : capacity + 1;
    }
    const std::vector<decision> batch = batched.try_acquire_many(requests);
    const std::vector<decision> in_memory = memory.try_acquire_many(requests);
    ASSERT_EQ(batch.size(), requests.size());
    for (std::size_t i = 0; i < requests.size(); ++i, ++compared) {
      const decision single = one_by_one.try_acquire(requests[i].key, requests[i].cost);
      EXPECT_TRUE(ratelimit_test::same(single, batch[i]))
          << "round " << round << ", request " << i << " of " << requests.size() << " ("
          << testing::PrintToString(std::string{requests[i].key}) << ", cost " << requests[i].cost
          << ")\n  one by one: " << describe(single) << "\n  batched:    " << describe(batch[i]);
      EXPECT_TRUE(ratelimit_test::same(in_memory[i], batch[i]))
          << "round " << round << ", request " << i << "\n  in memory: " << describe(in_memory[i])
          << "\n  batched:   " << describe(batch[i]);
    }
    clock.advance(nanoseconds{static_cast<std::int64_t>(random() % 3'000'000'000)});
  }
  EXPECT_GT(compared, 500);
}

// ---------------------------------------------------------------------------------------
// Server time

TYPED_TEST(RedisStorage, ServerTimeAdmitsTheQuotaThenRejectsWithABoundedRetry) {
  using A = TypeParam;
  // The sliding window counter weighs the previous window: a quota used up early in a
  // window frees its next unit a third into the window after, up to 4/3 of a period away.
  const nanoseconds longest_retry =
      std::is_same_v<A, algorithms::sliding_window_counter> ? nanoseconds{4h} / 3 : 1h;
  const std::string prefix = test_prefix();
  // The limiter's clock stands at 1970 and then jumps ahead: Redis's TIME decides.
  manual_clock clock;
  redis_limiter<A> limiter{quota::per_hour(3), clock, redis_storage{server_time_options(prefix)}};
  for (std::int64_t i = 0; i < 3; ++i) {
    const decision d = limiter.try_acquire("k");
    EXPECT_TRUE(d.allowed) << i << ": " << describe(d);
    EXPECT_FALSE(d.degraded);
    EXPECT_EQ(d.limit, 3);
    EXPECT_EQ(d.remaining, 2 - i) << describe(d);
    EXPECT_GT(d.reset_after, 0ns);
    EXPECT_LE(d.reset_after, 2h) << describe(d);
  }
  for (int i = 0; i < 3; ++i) {
    const decision d = limiter.try_acquire("k");
    EXPECT_FALSE(d.allowed) << describe(d);
    EXPECT_FALSE(d.degraded);
    EXPECT_EQ(d.remaining, 0);
    EXPECT_GT(d.retry_after, 0ns) << describe(d);
    EXPECT_LE(d.retry_after, longest_retry) << describe(d);
    clock.advance(10h);
  }
  // Other keys are untouched; with server time the TTL has no slack.
  EXPECT_TRUE(limiter.try_acquire("other").allowed);
  EXPECT_EQ(names_by_user_key(prefix).size(), 2u);
  const auto ttls = server().key_ttls(prefix + "*");
  for (const auto& [name, ttl] : ttls) {
    EXPECT_GT(ttl, 0) << testing::PrintToString(name);
    EXPECT_LE(ttl, 2 * 3600 * 1000) << testing::PrintToString(name);
  }
}

// ---------------------------------------------------------------------------------------
// What the scripts refuse

TYPED_TEST(RedisStorage, QuotasTheScriptsCannotRepresentAreRefusedAtConstruction) {
  using A = TypeParam;
  manual_clock clock;
  const std::string prefix = test_prefix();
  const auto construct = [&](const quota& q, const redis_options& o) {
    return [&clock, q, o] { redis_limiter<A> limiter{q, clock, redis_storage{o}}; };
  };
  const redis_options nanoseconds_unit = client_options(prefix);
  const redis_options server_time = server_time_options(prefix);

  const nanoseconds longest{std::int64_t{1} << 50};
  std::string message =
      invalid_argument_from(construct(quota::per(1, longest + 1ns), nanoseconds_unit));
  EXPECT_TRUE(mentions(message, "period", "1125899906842625")) << message;
  EXPECT_EQ(
      invalid_argument_from(construct(quota::per(7, longest).with_burst(6), nanoseconds_unit)),
      "(threw nothing)");

  // Server time counts microseconds: a period must be a whole number of them.
  message = invalid_argument_from(construct(quota::per(1, 1500ns), server_time));
  EXPECT_TRUE(mentions(message, "period", "1500ns")) << message;
  EXPECT_EQ(invalid_argument_from(construct(quota::per(1, 1ms), server_time)), "(threw nothing)");

  message = invalid_argument_from(construct(quota::per(1, 1us), client_options(prefix, 1ms)));
  EXPECT_TRUE(mentions(message, "period", "1000ns")) << message;

  // Refused before anything reaches Redis.
  EXPECT_TRUE(server().key_ttls(prefix + "*").empty());
}

TEST(RedisStorageQuota, EachScriptRefusesWhatItCannotDecideExactlyNamingTheField) {
  manual_clock clock;
  const redis_options o = client_options(test_prefix());
  const auto message = [&]<class A>(std::type_identity<A>, const quota& q) {
    return invalid_argument_from([&] { redis_limiter<A> limiter{q, clock, redis_storage{o}}; });
  };
  constexpr std::int64_t two_to_53 = std::int64_t{1} << 53;

  // Buckets: burst x period (in 1/period token) must be exact in a double ...
  std::string m =
      message(std::type_identity<algorithms::token_bucket>{}, quota::per_second(1'000'000'000));
  EXPECT_TRUE(mentions(m, "burst * period", "burst 1000000000")) << m;
  m = message(std::type_identity<algorithms::leaky_bucket>{}, quota::per_second(1'000'000'000));
  EXPECT_TRUE(mentions(m, "burst * period", "burst 1000000000")) << m;
  // ... and so must the leaky bucket's queue plus a fraction below the limit ...
  const quota queue_past_2_to_53 = quota::per(8, 1ns).with_burst(two_to_53 - 4);
  m = message(std::type_identity<algorithms::leaky_bucket>{}, queue_past_2_to_53);
  EXPECT_TRUE(mentions(m, "burst * period + limit", "burst 9007199254740988")) << m;
  EXPECT_EQ(message(std::type_identity<algorithms::token_bucket>{}, queue_past_2_to_53),
            "(threw nothing)");
  // ... and the time to fill the bucket must be at most 2^50 units.
  m = message(std::type_identity<algorithms::token_bucket>{},
              quota::per(1, nanoseconds{std::int64_t{1} << 50}).with_burst(2));
  EXPECT_TRUE(mentions(m, "time to fill", "burst 2")) << m;

  m = message(std::type_identity<algorithms::fixed_window>{}, quota::per(two_to_53, 1s));
  EXPECT_TRUE(mentions(m, "limit", "9007199254740992")) << m;
  EXPECT_EQ(message(std::type_identity<algorithms::fixed_window>{}, quota::per(two_to_53 - 1, 1s)),
            "(threw nothing)");

  m = message(std::type_identity<algorithms::sliding_log>{}, quota::per(two_to_53 / 2, 1s));
  EXPECT_TRUE(mentions(m, "limit", "4503599627370496")) << m;

  m = message(std::type_identity<algorithms::sliding_window_counter>{},
              quota::per(std::int64_t{1} << 23, nanoseconds{std::int64_t{1} << 30}));
  EXPECT_TRUE(mentions(m, "limit * period", "limit 8388608")) << m;

  // An invalid quota is still the quota's own error.
  m = message(std::type_identity<algorithms::token_bucket>{}, quota{0, 1s, 1});
  EXPECT_TRUE(mentions(m, "limit", "0")) << m;
}

TEST(RedisStorageOptions, BadOptionsThrowNamingTheFieldAndValue) {
  struct bad {
    redis_options options;
    std::string_view field;
    std::string_view value;
  };
  const std::vector<bad> cases = {
      {{.key_prefix = "app{1}:"}, "key_prefix", "app{1}:"},
      {{.key_prefix = "}"}, "key_prefix", "}"},
      {{.port = 0}, "port", "0"},
      {{.port = -1}, "port", "-1"},
      {{.port = 65536}, "port", "65536"},
      {{.timeout = 0ms}, "timeout", "0ms"},
      {{.timeout = -5ms}, "timeout", "-5ms"},
      {{.pool_size = 0}, "pool_size", "0"},
      {{.fallback_instances = 0}, "fallback_instances", "0"},
      {{.fallback_instances = -2}, "fallback_instances", "-2"},
      {{.breaker_threshold = 0}, "breaker_threshold", "0"},
      {{.probe_interval = 0ms}, "probe_interval", "0ms"},
      {{.client_time_unit = 0ns}, "client_time_unit", "0ns"},
      {{.client_time_unit = 3ns}, "client_time_unit", "3ns"},
      {{.client_time_unit = 7us}, "client_time_unit", "7000ns"},
      {{.client_time_unit = 2ms}, "client_time_unit", "2000000ns"},
      {{.client_ttl_slack = -1ms}, "client_ttl_slack", "-1ms"},
  };
  for (const bad& b : cases) {
    const std::string m = invalid_argument_from([&] { redis_storage storage{b.options}; });
    EXPECT_TRUE(mentions(m, b.field, b.value)) << b.field << " = " << b.value << ": " << m;
  }
}

TEST(RedisStorageOptions, GoodOptionsConstructWithoutTouchingTheServer) {
  const auto dbsize = server().command("DBSIZE");
  for (const nanoseconds unit : {nanoseconds{1}, nanoseconds{8}, nanoseconds{1000},
                                 nanoseconds{250'000}, nanoseconds{1'000'000}}) {
    redis_options o = client_options(test_prefix(), unit);
    EXPECT_EQ(invalid_argument_from([&] { redis_storage storage{o}; }), "(threw nothing)")
        << unit.count() << "ns";
  }
  EXPECT_EQ(invalid_argument_from([] { redis_storage storage{{.port = 65535}}; }),
            "(threw nothing)");
  EXPECT_EQ(server().command("DBSIZE"), dbsize);
}

// ---------------------------------------------------------------------------------------
// Keys

TYPED_TEST(RedisStorage, EveryKeyIsDistinctWhateverItsBytes) {
  using A = TypeParam;
  const std::vector<std::string> keys = awkward_keys();
  ASSERT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), keys.size());
  const std::string prefix = test_prefix();
  manual_clock clock;
  redis_limiter<A> limiter{quota::per_hour(1), clock, redis_storage{client_options(prefix)}};

  // Each key has a quota of its own: one request each, then none.
  for (const std::string& key : keys) {
    const decision d = limiter.try_acquire(key);
    EXPECT_TRUE(d.allowed && !d.degraded) << testing::PrintToString(key) << ": " << describe(d);
  }
  for (const std::string& key : keys) {
    const std::string copy = key;  // found by its bytes, not by its address
    const decision d = limiter.try_acquire(copy);
    EXPECT_FALSE(d.allowed) << testing::PrintToString(key) << ": " << describe(d);
    EXPECT_FALSE(d.degraded);
  }

  // Every Redis key is the prefix, one hash tag, and the user key verbatim; the hash tag
  // alone decides the slot, and all the keys of one user key share it.
  const auto names = names_by_user_key(prefix);
  EXPECT_EQ(names.size(), keys.size());
  for (const std::string& key : keys) {
    ASSERT_EQ(names.count(key), 1u) << testing::PrintToString(key);
    const std::vector<std::string>& of_key = names.at(key);
    EXPECT_LE(of_key.size(), 2u);
    for (const std::string& name : of_key) {
      const auto parts = parse_key_name(name, prefix);
      ASSERT_TRUE(parts.has_value());
      EXPECT_EQ(name.find('{'), prefix.size()) << testing::PrintToString(name);
      EXPECT_EQ(hashed_part(name), parts->tag) << testing::PrintToString(name);
      EXPECT_EQ(slot_of(name), slot_of(of_key.front())) << testing::PrintToString(name);
    }
  }
}

TYPED_TEST(RedisStorage, KeysShapedLikeCommandsChangeNothingElse) {
  using A = TypeParam;
  const std::string prefix = test_prefix();
  const std::string sentinel = "rl-sentinel:" + prefix;  // outside the prefix root, no TTL
  ASSERT_EQ(server().command("SET", sentinel, "still here"), redis_reply::of_status("OK"));
  manual_clock clock;
  redis_limiter<A> limiter{quota::per_hour(1), clock, redis_storage{client_options(prefix)}};
  ASSERT_TRUE(limiter.try_acquire("other").allowed);
  const decision rejected = limiter.try_acquire("other");
  ASSERT_FALSE(rejected.allowed);
  const redis_reply before = server().command("DBSIZE");
  ASSERT_EQ(before.type, kind::integer);
  const std::size_t names_before = server().key_ttls(prefix + "*").size();

  const std::vector<std::string> commands = {
      "FLUSHALL",
      "*1\r\n$8\r\nFLUSHALL\r\n",
      "x\r\nDEL other",
      "DEL other",
      "\r\nFLUSHDB\r\n*1\r\n$4\r\nPING\r\n",
      "'); redis.call('FLUSHALL') --",
      "]]) redis.call('DEL', KEYS[1]) --[[",
      "*3\r\n$3\r\nSET\r\n$5\r\nother\r\n$1\r\n0\r\n",
  };
  for (const std::string& key : commands) {
    const decision d = limiter.try_acquire(key);
    EXPECT_TRUE(d.allowed && !d.degraded) << testing::PrintToString(key) << ": " << describe(d);
  }

  // Exactly the new keys' own state was added; nothing else moved.
  const std::size_t names_after = server().key_ttls(prefix + "*").size();
  EXPECT_GE(names_after, names_before + commands.size());
  EXPECT_EQ(server().command("DBSIZE"),
            redis_reply::of_integer(before.integer +
                                    static_cast<std::int64_t>(names_after - names_before)));
  EXPECT_EQ(server().command("GET", sentinel), redis_reply::of_string("still here"));
  const decision other = limiter.try_acquire("other");
  EXPECT_TRUE(ratelimit_test::same(other, rejected))
      << describe(other) << "\n  before: " << describe(rejected);
  for (const std::string& key : commands) {
    EXPECT_FALSE(limiter.try_acquire(key).allowed) << testing::PrintToString(key);
  }
  EXPECT_EQ(names_by_user_key(prefix).size(), commands.size() + 1);
  EXPECT_EQ(server().command("DEL", sentinel), redis_reply::of_integer(1));
}

TEST(RedisStorageKeys, EveryAlgorithmsKeysOfOneUserKeyShareOneSlot) {
  const std::string prefix = test_prefix();
  manual_clock clock;
  redis_storage storage{client_options(prefix)};
  const quota q = quota::per_hour(2);
  const std::vector<std::string> keys = {"user:42", "", "{", "}{", "{x}", "a\r\n\0b"s};
  const auto decide = [&]<class A>(std::type_identity<A>) {
    redis_limiter<A> limiter{q, clock, storage};
    for (const std::string& key : keys) {
      EXPECT_TRUE(limiter.try_acquire(key).allowed) << testing::PrintToString(key);
    }
  };
  decide(std::type_identity<algorithms::token_bucket>{});
  decide(std::type_identity<algorithms::leaky_bucket>{});
  decide(std::type_identity<algorithms::fixed_window>{});
  decide(std::type_identity<algorithms::sliding_log>{});
  decide(std::type_identity<algorithms::sliding_window_counter>{});

  const auto names = names_by_user_key(prefix);
  EXPECT_EQ(names.size(), keys.size());
  for (const auto& [key, of_key] : names) {
    std::set<std::string> algorithms_seen;
    for (const std::string& name : of_key) {
      algorithms_seen.insert(parse_key_name(name, prefix)->algorithm);
      EXPECT_EQ(slot_of(name), slot_of(of_key.front()))
          << testing::PrintToString(name) << " vs " << testing::PrintToString(of_key.front());
    }
    // One state at least per algorithm; the algorithms never share one.
    EXPECT_EQ(algorithms_seen.size(), 5u) << testing::PrintToString(key);
    EXPECT_GE(of_key.size(), 5u);
  }
}

// ---------------------------------------------------------------------------------------
// TTL hygiene

TYPED_TEST(RedisStorage, AKeyIsKeptWithATtlUntilItsStateIsFreshThenDeleted) {
  using A = TypeParam;
  const std::string prefix = test_prefix();
  const quota q = quota::per_minute(2);
  const std::int64_t capacity = ratelimit_test::capacity<A>(q);
  const redis_options o = client_options(prefix);
  manual_clock clock;
  clock.set(manual_clock::time_point{123'456'789'012ns});
  redis_limiter<A> limiter{q, clock, redis_storage{o}};

  // A request that changes nothing leaves nothing behind.
  const decision never = limiter.try_acquire("never", capacity + 1);
  EXPECT_FALSE(never.allowed);
  EXPECT_EQ(never.reset_after, 0ns);
  EXPECT_EQ(names_by_user_key(prefix).count("never"), 0u);

  const decision used = limiter.try_acquire("used");
  ASSERT_TRUE(used.allowed);
  ASSERT_GT(used.reset_after, 0ns);
  const auto ttls = server().key_ttls(prefix + "*");
  ASSERT_FALSE(ttls.empty());
  // The TTL is reset_after rounded up to the millisecond, plus the client-time slack.
  const std::int64_t expected_ttl =
      std::chrono::ceil<std::chrono::milliseconds>(used.reset_after + o.client_ttl_slack).count();
  for (const auto& [name, ttl] : ttls) {
    EXPECT_LE(ttl, expected_ttl) << testing::PrintToString(name);
    EXPECT_GT(ttl, expected_ttl - 5000) << testing::PrintToString(name);
  }

  // Once its state is fresh again, the next decision deletes the key.
  clock.advance(used.reset_after);
  const decision fresh = limiter.try_acquire("used", capacity + 1);
  EXPECT_FALSE(fresh.allowed);
  EXPECT_EQ(fresh.remaining, std::min(q.limit, capacity)) << describe(fresh);
  EXPECT_EQ(fresh.reset_after, 0ns) << describe(fresh);
  EXPECT_TRUE(server().key_ttls(prefix + "*").empty());
}

}  // namespace
