// Reservations on Redis, against real redis-servers: with the client's time in nanoseconds,
// reserve, cancel and try_acquire decide as the in-memory storage does, step by step, and
// a reservation's booking is the in-memory one; the token bucket's wait is clamped where
// its debt would leave the scripts' exact range; acquire sleeps on the limiter's clock;
// and when Redis is killed or loses its scripts, reserve and cancel do what the policy
// says, within the timeout.
//
// The decision tests share one server (a GoogleTest environment checks the TTL of every
// key they leave); the failure tests each start one of their own.

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <random>
#include <ratelimit/redis.hpp>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "support/algorithm_probe.hpp"
#include "support/algorithm_types.hpp"
#include "support/decision_options.hpp"
#include "support/fault_options.hpp"
#include "support/redis_server.hpp"
#include "support/seed.hpp"
#include "support/shared_redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;
namespace algorithms = ratelimit::algorithms;
using ratelimit::decision;
using ratelimit::failure_policy;
using ratelimit::manual_clock;
using ratelimit::quota;
using ratelimit::redis_options;
using ratelimit::redis_storage;
using ratelimit_test::describe;
using ratelimit_test::redis_reply;
using ratelimit_test::redis_server;
using std::chrono::nanoseconds;
using steady = std::chrono::steady_clock;

using ratelimit_test::memory_limiter;
using ratelimit_test::redis_limiter;

/// Every key the decision tests write starts with this, so that the environment finds them.
constexpr std::string_view prefix_root = "rl-test:";

auto* const environment =
    ratelimit_test::shared_redis_server::install(std::string{prefix_root} + "*");

redis_server& server() { return environment->server(); }

/// A prefix no other test uses: `rl-test:<suite>.<test>:<what>:`.
std::string test_prefix(std::string_view what = "") {
  return ratelimit_test::test_prefix(prefix_root, what);
}

/// Client time in nanoseconds: decisions identical to the in-memory storage's.
redis_options client_options(std::string prefix) {
  return ratelimit_test::client_time_options(server().port(), std::move(prefix));
}

using ratelimit_test::base_seed;
using ratelimit_test::seed_text;

/// A trace stays below 1024 operations (see small_in_memory_storage): a key swept back to
/// fresh, which Redis keeps until its TTL, is told apart by a clock that then steps back.
using ratelimit_test::small_in_memory_storage;

constexpr std::int64_t two_to_50 = std::int64_t{1} << 50;
constexpr std::int64_t two_to_53 = std::int64_t{1} << 53;

/// The longest wait redis_storage sends for a reservation at 1ns units, as documented on
/// redis_storage::reserve: 2^50 ns, and for a token bucket also (2^53 − 1 − burst·period) /
/// limit ns.
template <class A>
std::int64_t redis_wait_bound(const quota& q) {
  if constexpr (std::is_same_v<A, algorithms::token_bucket>) {
    const ratelimit_test::i128 capacity = ratelimit_test::i128{q.burst} * q.period.count();
    return std::min<std::int64_t>(two_to_50,
                                  static_cast<std::int64_t>((two_to_53 - 1 - capacity) / q.limit));
  } else {
    return two_to_50;
  }
}

using buckets = testing::Types<algorithms::token_bucket, algorithms::leaky_bucket>;
using ratelimit_test::algorithm_name;

// ---------------------------------------------------------------------------------------
// Bookings

std::string describe_booking(const algorithms::token_bucket::booking& b) {
  std::ostringstream out;
  out << "{booked_at=" << b.booked_at << ", deficit=" << b.deficit_high << ":" << b.deficit_low
      << ", cost=" << b.cost << "}";
  return out.str();
}

std::string describe_booking(const algorithms::leaky_bucket::booking& b) {
  std::ostringstream out;
  out << "{drains_at=" << b.queue.drains_at << ", fraction=" << b.queue.fraction
      << ", cost=" << b.cost << ", without=" << b.without.drains_at << "+" << b.without.fraction
      << "}";
  return out.str();
}

bool same_booking(const algorithms::token_bucket::booking& a,
                  const algorithms::token_bucket::booking& b) {
  return a.booked_at == b.booked_at && a.deficit_low == b.deficit_low &&
         a.deficit_high == b.deficit_high && a.cost == b.cost;
}

bool same_booking(const algorithms::leaky_bucket::booking& a,
                  const algorithms::leaky_bucket::booking& b) {
  return a.queue.drains_at == b.queue.drains_at && a.queue.fraction == b.queue.fraction &&
         a.cost == b.cost && a.without.drains_at == b.without.drains_at &&
         a.without.fraction == b.without.fraction;
}

// ---------------------------------------------------------------------------------------
// Differential traces

/// Keys of the traces: short, empty, with a NUL.
const std::array<std::string, 3> trace_keys = {"alice", "", "b\0b"s};

/// Times stay below 2^51 in magnitude: the scripts take times below 2^52 units, and a
/// period of up to 2^50 (and a wait of up to 2^50) is added to them.
constexpr std::int64_t time_bound = std::int64_t{1} << 51;

/// Quotas with rates that are not whole nanoseconds per unit, bursts above and below the
/// limit, 1 per nanosecond, a period of 2^50 ns (whose waits reach the bound of 2^50 ns),
/// and one whose token bucket reaches its wait bound after 7 ms (per(2^30, 2^20ns)): all
/// within what the scripts accept at 1ns.
std::vector<quota> trace_quotas() {
  return {
      quota::per_minute(7),
      quota::per_minute(7).with_burst(3),
      quota::per(10, 13s).with_burst(25),
      quota::per_hour(1),
      quota::per(1, 1ns),
      quota::per(3, 10ns),
      quota::per(5, 7ns).with_burst(2),
      quota::per(2, 3ns).with_burst(5),
      quota::per_second(1000).with_burst(1),
      quota::per(7, 1'000'000'007ns),
      quota::per_second(1'000'000).with_burst(1000),
      quota::per(7, nanoseconds{two_to_50}).with_burst(6),
      quota::per(std::int64_t{1} << 30, nanoseconds{std::int64_t{1} << 20}),
  };
}

enum class operation { try_acquire, reserve, cancel };

/// Seeded operations on a few keys that share one clock: try_acquire, reserve and cancel
/// (of an outstanding reservation picked at random, so in any order), with time steps,
/// costs and waits chosen to land where off-by-one errors live: the same instant, 1ns
/// later, exactly the previous decision's retry_after, delay or reset_after (and 1ns
/// either side), an interval, up to 100 periods, and now and then a step back; waits of
/// 0, the wait needed (and 1ns either side), the token bucket's bound (and 1ns either
/// side), 2^50 ns and INT64_MAX.
template <class A>
class reservation_trace {
 public:
  reservation_trace(const quota& q, std::uint64_t seed) : quota_(q), random_(seed) {
    now_ = between(-time_bound / 2, time_bound / 8);
  }

  std::int64_t now() const { return now_; }

  std::uint64_t below(std::uint64_t n) { return random_() % n; }

  std::int64_t between(std::int64_t lo, std::int64_t hi) {
    return lo + static_cast<std::int64_t>(random_() % static_cast<std::uint64_t>(hi - lo + 1));
  }

  operation next_operation(bool any_outstanding) {
    const std::uint64_t pick = below(100);
    if (pick < 35) return operation::try_acquire;
    if (pick < 75 || !any_outstanding) return operation::reserve;
    return operation::cancel;
  }

  /// Moves the clock after `last`, the latest decision on the key about to be used.
  void advance(const decision& last) {
    std::int64_t step = step_after(last);
    const ratelimit_test::i128 at = ratelimit_test::i128{now_} + step;
    if (at >= time_bound || at <= -time_bound) step = 0;
    now_ += step;
  }

  /// Reservations take whole buckets more often: debts and long queues are what they add.
  std::int64_t cost(bool reserving) {
    const std::int64_t capacity = quota_.burst;
    const std::uint64_t pick = below(100);
    if (pick < (reserving ? 50 : 70)) return 1;
    if (pick < 82) return between(1, capacity);
    if (pick < 87) return capacity;
    if (pick < 91) return capacity + 1;
    if (pick < 94) return ratelimit_test::int64_max;
    return between(1, std::min<std::int64_t>(capacity, 3));
  }

  std::int64_t max_wait(const decision& last) {
    const std::int64_t period = quota_.period.count();
    const std::uint64_t pick = below(100);
    if (pick < 22) return 0;
    if (pick < 34) return between(1, interval());
    if (pick < 56) {
      // About the wait the previous decision on the key says is needed.
      const std::array<nanoseconds, 3> candidates{last.delay, last.retry_after, last.reset_after};
      const nanoseconds c = candidates[below(3)];
      if (c == nanoseconds::max()) return ratelimit_test::int64_max;
      return std::max<std::int64_t>(0, c.count() + between(-1, 1));
    }
    if (pick < 70) return between(0, period);
    if (pick < 80) return between(0, std::min<std::int64_t>(time_bound / 256, 3 * period));
    if (pick < 86) {
      const std::int64_t bound = redis_wait_bound<A>(quota_);
      if (bound == ratelimit_test::int64_max) return bound;
      return bound + between(-1, 1);
    }
    if (pick < 92) return two_to_50 + between(-1, 1);
    if (pick < 96) return ratelimit_test::int64_max;
    return between(0, time_bound / 256);
  }

 private:
  std::int64_t interval() const {
    return std::max<std::int64_t>(1, quota_.period.count() / quota_.limit);
  }

  std::int64_t step_after(const decision& last) {
    const std::int64_t period = quota_.period.count();
    // Long jumps are capped, or a trace of long periods would soon reach the bound.
    const std::int64_t far = std::min(time_bound / 256, period * 100);
    const std::uint64_t pick = below(100);
    if (pick < 2) return -between(1, std::min(time_bound, 2 * period));
    if (pick < 28) return 0;
    if (pick < 34) return 1;
    if (pick < 40) return between(2, 10);
    if (pick < 52) return between(0, interval());
    if (pick < 70) {
      const std::array<nanoseconds, 3> candidates{last.retry_after, last.delay, last.reset_after};
      const nanoseconds c = candidates[below(3)];
      if (c > nanoseconds::zero() && c != nanoseconds::max()) {
        return c.count() - static_cast<std::int64_t>(below(2));
      }
      return between(0, interval());
    }
    if (pick < 88) return between(0, period);
    if (pick < 98) return between(0, std::min(far, 3 * period));
    return between(0, far);
  }

  quota quota_;
  std::mt19937_64 random_;
  std::int64_t now_ = 0;
};

/// The limiters' API: try_acquire, reserve and cancel through
/// `basic_limiter<A, manual_clock, redis_storage>` and the same on in_memory_storage.
/// A cancel returns nothing: the limiter's is void; what it gave back shows in the
/// decisions after it.
template <class A>
class through_limiters {
 public:
  through_limiters(const quota& q, const std::string& prefix)
      : memory_{q, clock_, small_in_memory_storage()},
        redis_{q, clock_, redis_storage{client_options(prefix)}} {}

  void set_time(std::int64_t now) { clock_.set(manual_clock::time_point{nanoseconds{now}}); }
  std::size_t outstanding() const { return booked_.size(); }
  std::size_t key_of(std::size_t index) const { return booked_[index].key; }

  std::pair<decision, decision> try_acquire(std::size_t key, std::int64_t cost) {
    return {memory_.try_acquire(trace_keys[key], cost), redis_.try_acquire(trace_keys[key], cost)};
  }

  std::pair<decision, decision> reserve(std::size_t key, std::int64_t cost, std::int64_t wait,
                                        std::int64_t memory_wait, std::string& problem) {
    auto in_memory = memory_.reserve(trace_keys[key], cost, nanoseconds{memory_wait});
    auto on_redis = redis_.reserve(trace_keys[key], cost, nanoseconds{wait});
    const std::pair<decision, decision> out{in_memory.decision(), on_redis.decision()};
    if (in_memory.outstanding() != on_redis.outstanding()) {
      problem = "outstanding: in memory " + std::to_string(in_memory.outstanding()) + ", redis " +
                std::to_string(on_redis.outstanding());
    } else if (in_memory.outstanding()) {
      booked_.push_back({key, std::move(in_memory), std::move(on_redis)});
    }
    return out;
  }

  std::optional<std::pair<decision, decision>> cancel(std::size_t index, std::string& problem) {
    booked b = std::move(booked_[index]);
    booked_.erase(booked_.begin() + static_cast<std::ptrdiff_t>(index));
    memory_.cancel(trace_keys[b.key], b.memory);
    redis_.cancel(trace_keys[b.key], b.redis);
    if (b.redis.outstanding()) problem = "still outstanding after cancel";
    return std::nullopt;
  }

 private:
  struct booked {
    std::size_t key;
    ratelimit::reservation<A> memory;
    ratelimit::reservation<A> redis;
  };

  manual_clock clock_;
  memory_limiter<A> memory_;
  redis_limiter<A> redis_;
  std::vector<booked> booked_;
};

/// The storages' API: as through_limiters, also comparing each reservation's booking and
/// each cancel's decision (the key's state after it).
template <class A>
class through_storages {
 public:
  through_storages(const quota& q, const std::string& prefix)
      : quota_(q), memory_(small_in_memory_storage()), redis_(client_options(prefix)) {
    redis_.template prepare<A>(q);
  }

  void set_time(std::int64_t now) { now_ = now; }
  std::size_t outstanding() const { return booked_.size(); }
  std::size_t key_of(std::size_t index) const { return booked_[index].key; }

  std::pair<decision, decision> try_acquire(std::size_t key, std::int64_t cost) {
    return {memory_.template decide<A>(trace_keys[key], quota_, now_, cost),
            redis_.template decide<A>(trace_keys[key], quota_, now_, cost)};
  }

  std::pair<decision, decision> reserve(std::size_t key, std::int64_t cost, std::int64_t wait,
                                        std::int64_t memory_wait, std::string& problem) {
    typename A::booking in_memory{};
    typename A::booking on_redis{};
    const decision m =
        memory_.template reserve<A>(trace_keys[key], quota_, now_, cost, memory_wait, in_memory);
    const decision r =
        redis_.template reserve<A>(trace_keys[key], quota_, now_, cost, wait, on_redis);
    if (m.allowed && r.allowed && !r.degraded) {
      if (!same_booking(in_memory, on_redis)) {
        problem = "booking: in memory " + describe_booking(in_memory) + ", redis " +
                  describe_booking(on_redis);
      }
      booked_.push_back({key, in_memory, on_redis});
    }
    return {m, r};
  }

  std::optional<std::pair<decision, decision>> cancel(std::size_t index, std::string&) {
    const booked b = booked_[index];
    booked_.erase(booked_.begin() + static_cast<std::ptrdiff_t>(index));
    return std::pair{memory_.template cancel<A>(trace_keys[b.key], quota_, now_, b.memory),
                     redis_.template cancel<A>(trace_keys[b.key], quota_, now_, b.redis)};
  }

 private:
  struct booked {
    std::size_t key;
    typename A::booking memory;
    typename A::booking redis;
  };

  quota quota_;
  ratelimit::in_memory_storage memory_;
  redis_storage redis_;
  std::int64_t now_ = 0;
  std::vector<booked> booked_;
};

/// Runs `steps` seeded operations through `driver`, failing for each of the first three
/// mismatches; returns how many operations compared decisions.
template <class A, class Driver>
int run_trace(Driver& driver, const quota& q, std::uint64_t seed, int steps) {
  reservation_trace<A> trace(q, seed);
  std::vector<decision> last(trace_keys.size());
  int compared = 0;
  int mismatches = 0;
  for (int step = 0; step < steps && mismatches < 3; ++step) {
    const operation op = trace.next_operation(driver.outstanding() > 0);
    const std::size_t index = op == operation::cancel ? trace.below(driver.outstanding()) : 0;
    const std::size_t key =
        op == operation::cancel ? driver.key_of(index) : trace.below(trace_keys.size());
    trace.advance(last[key]);
    driver.set_time(trace.now());
    std::string what;
    std::string problem;
    std::optional<std::pair<decision, decision>> decided;
    switch (op) {
      case operation::try_acquire: {
        const std::int64_t cost = trace.cost(false);
        what = "try_acquire(cost " + std::to_string(cost) + ")";
        decided = driver.try_acquire(key, cost);
        break;
      }
      case operation::reserve: {
        const std::int64_t cost = trace.cost(true);
        const std::int64_t wait = trace.max_wait(last[key]);
        const std::int64_t memory_wait = std::min(wait, redis_wait_bound<A>(q));
        what = "reserve(cost " + std::to_string(cost) + ", max_wait " + std::to_string(wait) +
               "ns, in memory " + std::to_string(memory_wait) + "ns)";
        decided = driver.reserve(key, cost, wait, memory_wait, problem);
        break;
      }
      case operation::cancel:
        what = "cancel(outstanding #" + std::to_string(index) + ")";
        decided = driver.cancel(index, problem);
        break;
    }
    if (decided) {
      ++compared;
      last[key] = decided->second;
      if (!ratelimit_test::same(decided->first, decided->second) && problem.empty()) {
        problem = "decision";
      }
    }
    if (!problem.empty() && ++mismatches <= 3) {
      ADD_FAILURE() << "step " << step << ", key " << testing::PrintToString(trace_keys[key])
                    << ", at " << trace.now() << "ns: " << what << ": " << problem
                    << (decided ? "\n  in memory: " + describe(decided->first) +
                                      "\n  redis:     " + describe(decided->second)
                                : "");
    }
  }
  return compared;
}

template <class A>
class RedisReservation : public testing::Test {};
TYPED_TEST_SUITE(RedisReservation, buckets, algorithm_name);

TYPED_TEST(RedisReservation, ThroughTheLimiterEveryDecisionIsInMemorysStepByStep) {
  using A = TypeParam;
  const std::vector<quota> quotas = trace_quotas();
  int compared = 0;
  for (std::size_t i = 0; i < quotas.size(); ++i) {
    const std::uint64_t seed = base_seed() + 101 + 1000 * i;
    SCOPED_TRACE(seed_text(seed) + ", " + ratelimit_test::describe(quotas[i]));
    through_limiters<A> driver(quotas[i], test_prefix(std::to_string(i)));
    compared += run_trace<A>(driver, quotas[i], seed, 700);
  }
  EXPECT_GE(compared, 5000);
}

TYPED_TEST(RedisReservation, ThroughTheStorageBookingsAndCancelsAreInMemorysToo) {
  using A = TypeParam;
  const std::vector<quota> quotas = trace_quotas();
  int compared = 0;
  for (std::size_t i = 0; i < quotas.size(); ++i) {
    const std::uint64_t seed = base_seed() + 202 + 1000 * i;
    SCOPED_TRACE(seed_text(seed) + ", " + ratelimit_test::describe(quotas[i]));
    through_storages<A> driver(quotas[i], test_prefix(std::to_string(i)));
    compared += run_trace<A>(driver, quotas[i], seed, 700);
  }
  EXPECT_GE(compared, 7000);
}

// ---------------------------------------------------------------------------------------
// Give-back, clamp, bookings the scripts can't hold, server time

/// Two limiters on one clock, one on Redis and one in memory, checked to agree.
template <class A>
struct twins {
  twins(const quota& q, const std::string& prefix)
      : memory{q, clock, small_in_memory_storage()},
        redis{q, clock, redis_storage{client_options(prefix)}} {}

  decision try_acquire(std::string_view key, std::int64_t cost = 1) {
    const decision expected = memory.try_acquire(key, cost);
    const decision actual = redis.try_acquire(key, cost);
    EXPECT_TRUE(ratelimit_test::same(expected, actual))
        << "try_acquire(" << cost << ")\n  in memory: " << describe(expected)
        << "\n  redis:     " << describe(actual);
    return actual;
  }

  std::pair<ratelimit::reservation<A>, ratelimit::reservation<A>> reserve(std::string_view key,
                                                                          std::int64_t cost,
                                                                          nanoseconds wait) {
    auto expected = memory.reserve(key, cost, wait);
    auto actual = redis.reserve(key, cost, wait);
    EXPECT_TRUE(ratelimit_test::same(expected.decision(), actual.decision()))
        << "reserve(" << cost << ", " << wait.count()
        << "ns)\n  in memory: " << describe(expected.decision())
        << "\n  redis:     " << describe(actual.decision());
    return {std::move(expected), std::move(actual)};
  }

  manual_clock clock;
  memory_limiter<A> memory;
  redis_limiter<A> redis;
};

TEST(RedisReservationCancel, ATokenBucketsCancelGivesItsTokensBack) {
  twins<algorithms::token_bucket> both{quota::per_minute(4), test_prefix()};
  ASSERT_TRUE(both.try_acquire("k", 4).allowed);
  ASSERT_TRUE(both.try_acquire("kept", 4).allowed);
  auto [memory, redis] = both.reserve("k", 1, 1min);
  ASSERT_TRUE(redis.outstanding());
  EXPECT_EQ(redis.delay(), 15s);  // the next token, borrowed
  auto [memory_kept, redis_kept] = both.reserve("kept", 1, 1min);
  ASSERT_EQ(redis_kept.delay(), 15s);

  both.memory.cancel("k", memory);
  both.redis.cancel("k", redis);
  EXPECT_FALSE(redis.outstanding());

  // 15s on, the token the reservation borrowed is back on "k" and still owed on "kept".
  both.clock.advance(15s);
  const decision back = both.try_acquire("k");
  EXPECT_TRUE(back.allowed) << describe(back);
  EXPECT_EQ(back.remaining, 0);
  const decision owed = both.try_acquire("kept");
  EXPECT_FALSE(owed.allowed) << describe(owed);
  EXPECT_EQ(owed.retry_after, 15s);
}

TEST(RedisReservationCancel, ALeakyBucketsCancelGivesItsPlaceInTheQueueBack) {
  twins<algorithms::leaky_bucket> both{quota::per_minute(4), test_prefix()};
  for (const std::string_view key : {"k", "kept"}) {
    ASSERT_EQ(both.try_acquire(key).delay, 0s);
  }
  auto [memory, redis] = both.reserve("k", 1, 1min);
  ASSERT_TRUE(redis.outstanding());
  EXPECT_EQ(redis.delay(), 15s);
  auto [memory_kept, redis_kept] = both.reserve("kept", 1, 1min);
  ASSERT_EQ(redis_kept.delay(), 15s);

  both.memory.cancel("k", memory);
  both.redis.cancel("k", redis);

  // The queue of "k" drains at 15s again: room for 3 more requests, the first of them
  // served where the reservation would have been.
  const decision three = both.try_acquire("k", 3);
  EXPECT_TRUE(three.allowed) << describe(three);
  EXPECT_EQ(three.delay, 15s);
  const decision full = both.try_acquire("kept", 3);
  EXPECT_FALSE(full.allowed) << describe(full);
  EXPECT_EQ(full.retry_after, 15s);
}

// per(2^30, 2^20ns): the bucket holds 2^30 tokens, 2^50 in units of 1/period token, and
// refills 2^30 units a nanosecond. Its wait bound is (2^53 − 1 − 2^50) / 2^30 =
// 7·2^20 − 1 = 7'340'031 ns: six full-bucket reservations go into debt, and a seventh,
// whose debt would reach 2^53, has to wait 1ns longer than the bound.
TEST(RedisReservationClamp, ATokenBucketsDebtStopsShortOf2To53) {
  const quota q = quota::per(std::int64_t{1} << 30, nanoseconds{std::int64_t{1} << 20});
  constexpr std::int64_t full = std::int64_t{1} << 30;
  constexpr std::int64_t period = std::int64_t{1} << 20;
  constexpr nanoseconds bound{7 * period - 1};
  ASSERT_EQ(redis_wait_bound<algorithms::token_bucket>(q), bound.count());
  twins<algorithms::token_bucket> both{q, test_prefix()};
  manual_clock unclamped_clock;
  memory_limiter<algorithms::token_bucket> unclamped{q, unclamped_clock, small_in_memory_storage()};

  ASSERT_TRUE(both.try_acquire("k", full).allowed);
  ASSERT_TRUE(unclamped.try_acquire("k", full).allowed);
  for (std::int64_t i = 1; i <= 6; ++i) {
    auto [memory, redis] = both.reserve("k", full, 1s);
    EXPECT_EQ(redis.delay(), nanoseconds{i * period}) << i;
    EXPECT_EQ(unclamped.reserve("k", full, 1s).delay(), nanoseconds{i * period}) << i;
  }
  // In memory a wait of 1s admits the seventh; on Redis the wait is the bound, 1ns short.
  EXPECT_EQ(unclamped.reserve("k", full, 1s).delay(), nanoseconds{7 * period});
  const decision seventh = both.redis.reserve("k", full, 1s).decision();
  EXPECT_FALSE(seventh.allowed) << describe(seventh);
  EXPECT_EQ(seventh.retry_after, 1ns);
  EXPECT_FALSE(seventh.degraded);
  // In memory with the bound as its wait: the same rejection.
  EXPECT_TRUE(ratelimit_test::same(both.memory.reserve("k", full, bound).decision(), seventh));

  // 1ns later it fits, and leaves a debt of 2^53 − 2^30 units, exactly.
  both.clock.advance(1ns);
  auto [memory, redis] = both.reserve("k", full, 1s);
  EXPECT_EQ(redis.delay(), bound);
  const decision eighth = both.redis.reserve("k", full, 1s).decision();
  EXPECT_FALSE(eighth.allowed);
  EXPECT_EQ(eighth.retry_after, nanoseconds{period});  // 2^23 − 1 ns to refill, minus the bound
  const decision one = both.try_acquire("k");
  EXPECT_FALSE(one.allowed);
  EXPECT_EQ(one.retry_after, nanoseconds{7 * period});
}

// Bookings redis_storage never returns, made up: a cost whose length is 2^53 units or more
// can't be sent exactly, so the cancel gives back nothing, where in memory it empties the
// bucket or the queue.
TYPED_TEST(RedisReservation, ABookingTheScriptsCannotHoldGivesBackNothing) {
  using A = TypeParam;
  const quota q = quota::per_minute(4);
  const std::string prefix = test_prefix();
  redis_storage redis{client_options(prefix)};
  ratelimit::in_memory_storage memory = small_in_memory_storage();
  ratelimit::in_memory_storage untouched = small_in_memory_storage();
  typename A::booking booked{};
  typename A::booking ignored{};
  for (ratelimit::in_memory_storage* m : {&memory, &untouched}) {
    ASSERT_TRUE(m->template decide<A>("k", q, 0, 2).allowed);
    ASSERT_TRUE(m->template reserve<A>("k", q, 0, 2, 60'000'000'000, ignored).allowed);
  }
  ASSERT_TRUE(redis.template decide<A>("k", q, 0, 2).allowed);
  const decision reserved = redis.template reserve<A>("k", q, 0, 2, 60'000'000'000, booked);
  ASSERT_TRUE(reserved.allowed && !reserved.degraded) << describe(reserved);
  ASSERT_EQ(booked.cost, 2);

  typename A::booking made_up = booked;
  made_up.cost = two_to_53 / q.period.count() + 1;
  const decision on_redis = redis.template cancel<A>("k", q, 1, made_up);
  EXPECT_FALSE(on_redis.degraded);
  static_cast<void>(memory.template cancel<A>("k", q, 1, made_up));
  for (const std::int64_t cost : {1, 2, 3, 4}) {
    const decision expected = untouched.template decide<A>("k", q, 2, cost);
    const decision given_back = memory.template decide<A>("k", q, 2, cost);
    const decision actual = redis.template decide<A>("k", q, 2, cost);
    EXPECT_TRUE(ratelimit_test::same(expected, actual))
        << "cost " << cost << "\n  nothing given back: " << describe(expected)
        << "\n  redis:              " << describe(actual);
    // The in-memory cancel did give back: the comparison tells the two apart.
    EXPECT_FALSE(ratelimit_test::same(expected, given_back)) << cost;
  }
}

// With the server's time (microseconds since 1970) a booking is µs × 1000 ns: a cancel
// still finds its state, and gives back the borrowed wait.
TYPED_TEST(RedisReservation, WithServerTimeACancelGivesBackTheWait) {
  using A = TypeParam;
  manual_clock clock;  // stands still: Redis's TIME decides
  redis_limiter<A> limiter{
      quota::per_hour(1).with_burst(std::is_same_v<A, algorithms::token_bucket> ? 1 : 2), clock,
      redis_storage{{.port = server().port(), .timeout = 5s, .key_prefix = test_prefix()}}};
  ASSERT_TRUE(limiter.try_acquire("k").allowed);
  auto reserved = limiter.reserve("k", 1, 2h);
  ASSERT_TRUE(reserved.outstanding()) << describe(reserved.decision());
  EXPECT_GT(reserved.delay(), 59min);
  EXPECT_LE(reserved.delay(), 1h);
  const decision behind = limiter.reserve("k", 1, 0s).decision();
  EXPECT_FALSE(behind.allowed);
  EXPECT_GT(behind.retry_after, 119min) << describe(behind);

  limiter.cancel("k", reserved);
  const decision after = limiter.reserve("k", 1, 0s).decision();
  EXPECT_FALSE(after.allowed);
  EXPECT_FALSE(after.degraded);
  EXPECT_GT(after.retry_after, 59min) << describe(after);
  EXPECT_LE(after.retry_after, 1h) << describe(after);
}

// ---------------------------------------------------------------------------------------
// acquire

/// Spins, yielding, until `condition` holds or 10 s of real time have passed; whether it
/// held. It waits for another thread to get somewhere, never for time to pass.
template <class F>
bool eventually(F condition) {
  const auto give_up = steady::now() + 10s;
  while (!condition()) {
    if (steady::now() > give_up) return false;
    std::this_thread::yield();
  }
  return true;
}

/// Empties the key of a bucket of per_second(1): its next unit is 1s away. A token bucket
/// of burst 2 is drained; a leaky bucket of burst 2 queues one request, served now.
template <class A>
void drain(twins<A>& both, std::string_view key) {
  const std::int64_t cost = std::is_same_v<A, algorithms::token_bucket> ? 2 : 1;
  ASSERT_TRUE(both.try_acquire(key, cost).allowed);
}

TYPED_TEST(RedisReservation, AcquireSleepsOnTheLimitersClockUntilItsReservationIsDue) {
  using A = TypeParam;
  twins<A> both{quota::per_second(1).with_burst(2), test_prefix()};
  drain(both, "k");

  std::atomic<bool> done{false};
  decision acquired{};
  std::thread waiter{[&] {
    acquired = both.redis.acquire("k", 1, 10s);
    done = true;
  }};
  const bool asleep = eventually([&] { return both.clock.sleepers() == 1 || done; });
  EXPECT_TRUE(asleep && !done) << "acquire did not sleep on the clock";
  // The reservation was made on Redis before it slept: in memory, the same one.
  const decision booked = both.memory.reserve("k", 1, 10s).decision();
  EXPECT_TRUE(booked.allowed);
  EXPECT_EQ(booked.delay, 1s);
  both.clock.advance(1s);
  waiter.join();
  EXPECT_TRUE(acquired.allowed) << describe(acquired);
  EXPECT_EQ(acquired.delay, 0s);
  EXPECT_FALSE(acquired.degraded);
  // What the acquire booked stays booked: the token bucket's next token is 1s away, the
  // leaky bucket's next request is served 1s after the acquired one.
  const decision next = both.try_acquire("k");
  if constexpr (std::is_same_v<A, algorithms::token_bucket>) {
    EXPECT_FALSE(next.allowed) << describe(next);
    EXPECT_EQ(next.retry_after, 1s);
  } else {
    EXPECT_TRUE(next.allowed) << describe(next);
    EXPECT_EQ(next.delay, 1s);
  }
}

TYPED_TEST(RedisReservation, AcquireReturnsARejectionAtOnceWhenTheWaitIsTooLong) {
  using A = TypeParam;
  twins<A> both{quota::per_second(1).with_burst(2), test_prefix()};
  drain(both, "k");

  std::atomic<bool> done{false};
  decision rejected{};
  std::thread caller{[&] {
    rejected = both.redis.acquire("k", 1, 400ms);
    done = true;
  }};
  bool slept = false;
  while (!done) {
    if (both.clock.sleepers() > 0) {
      slept = true;
      both.clock.advance(1h);  // wake it, or the test would never end
    }
    std::this_thread::yield();
  }
  caller.join();
  EXPECT_FALSE(slept);
  EXPECT_EQ(both.clock.sleepers(), 0);
  EXPECT_FALSE(rejected.allowed) << describe(rejected);
  EXPECT_FALSE(rejected.degraded);
  EXPECT_EQ(rejected.retry_after, 600ms);  // 1s to wait, 400ms of it acceptable
  // Nothing was taken: the key is as in memory, where nothing was asked.
  const decision next = both.try_acquire("k");
  if constexpr (std::is_same_v<A, algorithms::token_bucket>) {
    EXPECT_EQ(next.retry_after, 1s) << describe(next);
  } else {
    EXPECT_EQ(next.delay, 1s) << describe(next);
  }
}

// ---------------------------------------------------------------------------------------
// Failures caused for real

constexpr auto timeout = ratelimit_test::fault_timeout;
constexpr auto slack = ratelimit_test::fault_slack;
constexpr auto probe_interval = ratelimit_test::fault_probe_interval;

redis_options fault_options(const redis_server& server, failure_policy policy) {
  return ratelimit_test::fault_options(server, policy, "rl-reservation-faults:", 1ns);
}

/// The longest of the real times the calls given to it took.
class longest {
 public:
  template <class F>
  auto operator()(F call) {
    const auto started = steady::now();
    if constexpr (std::is_void_v<decltype(call())>) {
      call();
      note(steady::now() - started);
    } else {
      auto result = call();
      note(steady::now() - started);
      return result;
    }
  }
  nanoseconds value() const { return longest_; }

 private:
  void note(nanoseconds took) { longest_ = std::max(longest_, took); }
  nanoseconds longest_{};
};

template <class A>
void reserve_while_redis_is_killed(failure_policy policy) {
  redis_server server;
  server.start();
  manual_clock clock;
  const quota q = quota::per_minute(4);
  redis_storage storage{fault_options(server, policy)};
  redis_limiter<A> limiter{q, clock, storage};
  // local_fallback's share over 2 instances, for what it should answer.
  memory_limiter<A> share{quota::per_minute(2), clock, ratelimit::in_memory_storage{}};

  // Before the outage: a key Redis rejected for 15s, and reservations outstanding.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(limiter.try_acquire("spent").allowed);
  const decision spent = limiter.try_acquire("spent");
  ASSERT_FALSE(spent.allowed);
  ASSERT_EQ(spent.retry_after, 15s);
  auto outstanding = limiter.reserve("booked", 1, 0s);
  ASSERT_TRUE(outstanding.outstanding());
  typename A::booking booking{};
  ASSERT_TRUE(storage.template reserve<A>("booked-too", q, 0, 1, 0, booking).allowed);

  server.signal(SIGKILL);
  longest took;
  // A key Redis never saw: the policy's answer.
  for (const nanoseconds wait : {nanoseconds{0}, nanoseconds{0}, nanoseconds{0}, nanoseconds{1h}}) {
    const auto r = took([&] { return limiter.reserve("fresh", 1, wait); });
    const decision d = r.decision();
    EXPECT_TRUE(d.degraded) << describe(d);
    EXPECT_FALSE(r.outstanding()) << "a degraded reservation is never cancelled";
    EXPECT_EQ(d.limit, 4);
    switch (policy) {
      case failure_policy::fail_open:
        EXPECT_TRUE(d.allowed) << describe(d);
        EXPECT_EQ(d.delay, 0s);
        break;
      case failure_policy::fail_closed:
        EXPECT_FALSE(d.allowed) << describe(d);
        EXPECT_EQ(d.retry_after, probe_interval);
        break;
      case failure_policy::local_fallback: {
        decision expected = share.reserve("fresh", 1, wait).decision();
        expected.limit = 4;
        expected.degraded = true;
        EXPECT_TRUE(ratelimit_test::same(expected, d))
            << "wait " << wait.count() << "ns\n  expected: " << describe(expected)
            << "\n  got:      " << describe(d);
        break;
      }
    }
  }
  if (policy == failure_policy::local_fallback) {
    // The share of per_minute(4) is 2 at once, then one per 30s: the 1h wait went into debt.
    EXPECT_EQ(share.reserve("fresh", 1, 0s).decision().retry_after, 60s);
  }

  // A key Redis rejected until 15s: a reservation that can't wait that long is rejected
  // until it can; one that can is the policy's, and waits it out.
  const decision short_wait = took([&] { return limiter.reserve("spent", 1, 10s).decision(); });
  EXPECT_FALSE(short_wait.allowed) << describe(short_wait);
  EXPECT_TRUE(short_wait.degraded);
  EXPECT_EQ(short_wait.retry_after, 5s);
  const decision long_wait = took([&] { return limiter.reserve("spent", 1, 20s).decision(); });
  EXPECT_TRUE(long_wait.degraded);
  if (policy == failure_policy::fail_closed) {
    EXPECT_FALSE(long_wait.allowed) << describe(long_wait);
    EXPECT_EQ(long_wait.retry_after, probe_interval);
  } else {
    EXPECT_TRUE(long_wait.allowed) << describe(long_wait);
    EXPECT_EQ(long_wait.delay, 15s);
  }

  // Cancels do nothing, throw nothing, and return within the timeout.
  EXPECT_NO_THROW(took([&] { limiter.cancel("booked", outstanding); }));
  EXPECT_FALSE(outstanding.outstanding());
  const decision cancelled =
      took([&] { return storage.template cancel<A>("booked-too", q, 0, booking); });
  EXPECT_TRUE(cancelled.degraded) << describe(cancelled);
  EXPECT_FALSE(cancelled.allowed);
  EXPECT_LE(took.value(), timeout + slack);
  EXPECT_TRUE(storage.degraded());

  // Back in service after a restart (which lost every key).
  server.restart();
  const auto started = steady::now();
  while (limiter.reserve("probe", 1, 0s).decision().degraded && steady::now() - started < 5s) {
  }
  EXPECT_LE(steady::now() - started, probe_interval + timeout + slack);
  auto again = limiter.reserve("spent", 1, 0s);
  EXPECT_TRUE(again.outstanding()) << describe(again.decision());
  EXPECT_FALSE(again.decision().degraded);
  EXPECT_NO_THROW(limiter.cancel("spent", again));
}

template <class A>
class RedisReservationKilled : public testing::Test {};
TYPED_TEST_SUITE(RedisReservationKilled, buckets, algorithm_name);

TYPED_TEST(RedisReservationKilled, FailOpenAdmitsWithoutDelayExceptWhatRedisRejected) {
  reserve_while_redis_is_killed<TypeParam>(failure_policy::fail_open);
}

TYPED_TEST(RedisReservationKilled, FailClosedRejectsUntilTheProbe) {
  reserve_while_redis_is_killed<TypeParam>(failure_policy::fail_closed);
}

TYPED_TEST(RedisReservationKilled, LocalFallbackReservesOnItsShareOfTheQuota) {
  reserve_while_redis_is_killed<TypeParam>(failure_policy::local_fallback);
}

// A token bucket's rejected reservation reports when the same reservation passes: 15s
// away, less the 5s it may wait. The deny cache must hold when a try_acquire passes, 15s.
TEST(RedisReservationDenyCache, ATokenBucketRemembersTheStepsRetryNotTheReservations) {
  redis_server server;
  server.start();
  manual_clock clock;
  redis_limiter<algorithms::token_bucket> limiter{
      quota::per_minute(4), clock, redis_storage{fault_options(server, failure_policy::fail_open)}};
  ASSERT_TRUE(limiter.try_acquire("k", 4).allowed);
  const decision rejected = limiter.reserve("k", 1, 5s).decision();
  ASSERT_FALSE(rejected.allowed);
  ASSERT_FALSE(rejected.degraded);
  ASSERT_EQ(rejected.retry_after, 10s);

  server.signal(SIGKILL);
  const decision now = limiter.try_acquire("k");
  EXPECT_TRUE(now.degraded);
  EXPECT_FALSE(now.allowed) << describe(now);
  EXPECT_EQ(now.retry_after, 15s);
  clock.advance(10s);
  const decision at_10s = limiter.try_acquire("k");
  EXPECT_FALSE(at_10s.allowed) << "remembered the reservation's retry_after: " << describe(at_10s);
  EXPECT_EQ(at_10s.retry_after, 5s);
  clock.advance(5s);
  EXPECT_TRUE(limiter.try_acquire("k").allowed);
}

// A leaky bucket's reservation is bounded by its wait, a try_acquire by the queue's room:
// what the deny cache remembers of a rejected reservation is when a try_acquire passes.
// "short" has room for a try_acquire now, though a reservation that can't wait 15s is
// rejected: it must not be locked out. "full" has room 15s from now, where a reservation
// that can wait 30s passes at 30s.
TEST(RedisReservationDenyCache, ALeakyBucketRemembersWhenTheQueueHasRoom) {
  redis_server server;
  server.start();
  manual_clock clock;
  redis_limiter<algorithms::leaky_bucket> limiter{
      quota::per_minute(4), clock, redis_storage{fault_options(server, failure_policy::fail_open)}};
  ASSERT_TRUE(limiter.try_acquire("short").allowed);
  const decision impatient = limiter.reserve("short", 1, 5s).decision();
  ASSERT_FALSE(impatient.allowed);
  ASSERT_EQ(impatient.retry_after, 10s);
  ASSERT_TRUE(limiter.try_acquire("full", 4).allowed);
  const decision full = limiter.reserve("full", 1, 30s).decision();
  ASSERT_FALSE(full.allowed);
  ASSERT_FALSE(full.degraded);
  ASSERT_EQ(full.retry_after, 30s);

  server.signal(SIGKILL);
  const decision room = limiter.try_acquire("short");
  EXPECT_TRUE(room.degraded);
  EXPECT_TRUE(room.allowed) << "locked out by a reservation's wait: " << describe(room);
  const decision no_room = limiter.try_acquire("full");
  EXPECT_TRUE(no_room.degraded);
  EXPECT_FALSE(no_room.allowed) << describe(no_room);
  EXPECT_EQ(no_room.retry_after, 15s);
  clock.advance(15s);
  EXPECT_TRUE(limiter.try_acquire("full").allowed);
}

// After SCRIPT FLUSH, a reservation and a cancel load their scripts again and are decided
// by Redis, as in memory: the lost script is no failure (the breaker opens after one).
TYPED_TEST(RedisReservation, ReserveAndCancelReloadTheirScriptsAfterScriptFlush) {
  using A = TypeParam;
  redis_server own;
  own.start();
  redis_options o = fault_options(own, failure_policy::fail_closed);
  o.breaker_threshold = 1;
  o.timeout = 5s;  // about the scripts, not latency
  redis_storage redis{o};
  ratelimit::in_memory_storage memory = small_in_memory_storage();
  const quota q = quota::per_minute(4);
  const auto both_reserve = [&](std::int64_t now, typename A::booking& on_redis) {
    typename A::booking in_memory{};
    const decision expected = memory.template reserve<A>("k", q, now, 2, 60'000'000'000, in_memory);
    const decision actual = redis.template reserve<A>("k", q, now, 2, 60'000'000'000, on_redis);
    EXPECT_TRUE(ratelimit_test::same(expected, actual))
        << "in memory " << describe(expected) << ", redis " << describe(actual);
    EXPECT_TRUE(same_booking(in_memory, on_redis));
    return actual;
  };
  typename A::booking first{};
  typename A::booking second{};
  ASSERT_TRUE(both_reserve(0, first).allowed);

  ASSERT_EQ(own.command("SCRIPT", "FLUSH"), redis_reply::of_status("OK"));
  const decision reserved = both_reserve(1, second);
  EXPECT_TRUE(reserved.allowed && !reserved.degraded) << describe(reserved);
  EXPECT_FALSE(redis.degraded());

  ASSERT_EQ(own.command("SCRIPT", "FLUSH"), redis_reply::of_status("OK"));
  const decision expected = memory.template cancel<A>("k", q, 2, second);
  const decision cancelled = redis.template cancel<A>("k", q, 2, second);
  EXPECT_FALSE(cancelled.degraded) << describe(cancelled);
  EXPECT_TRUE(ratelimit_test::same(expected, cancelled))
      << "in memory " << describe(expected) << ", redis " << describe(cancelled);
  EXPECT_FALSE(redis.degraded());
  // The give-back is there: the key decides as in memory.
  for (const std::int64_t cost : {4, 2, 1}) {
    const decision m = memory.template decide<A>("k", q, 3, cost);
    const decision r = redis.template decide<A>("k", q, 3, cost);
    EXPECT_TRUE(ratelimit_test::same(m, r))
        << cost << ": in memory " << describe(m) << ", redis " << describe(r);
  }
}

}  // namespace
