#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <ostream>
#include <ratelimit/algorithm.hpp>
#include <ratelimit/algorithms/leaky_bucket.hpp>
#include <ratelimit/algorithms/token_bucket.hpp>
#include <ratelimit/decision.hpp>
#include <ratelimit/quota.hpp>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "support/random_requests.hpp"

/// Checks of the rules every algorithm keeps in every state (retry_after exact, reset_after
/// exact, a rejection consumes nothing), and a driver that applies them to many states.
namespace ratelimit_test {

inline std::string describe(const ratelimit::decision& d) {
  std::ostringstream out;
  out << "{allowed=" << d.allowed << ", limit=" << d.limit << ", remaining=" << d.remaining
      << ", retry_after=" << d.retry_after.count() << "ns, reset_after=" << d.reset_after.count()
      << "ns, delay=" << d.delay.count() << "ns, degraded=" << d.degraded << "}";
  return out.str();
}

inline bool same(const ratelimit::decision& a, const ratelimit::decision& b) {
  return a.allowed == b.allowed && a.limit == b.limit && a.remaining == b.remaining &&
         a.retry_after == b.retry_after && a.reset_after == b.reset_after && a.delay == b.delay &&
         a.degraded == b.degraded;
}

/// What a fresh key can take at once: the bucket for the buckets, the limit for the windows.
template <class A>
std::int64_t capacity(const ratelimit::quota& q) {
  if constexpr (std::is_same_v<A, ratelimit::algorithms::token_bucket> ||
                std::is_same_v<A, ratelimit::algorithms::leaky_bucket>) {
    return q.burst;
  } else {
    return q.limit;
  }
}

inline std::int64_t later(std::int64_t t, std::int64_t by) {
  const i128 sum = i128{t} + by;
  return sum > int64_max ? int64_max : static_cast<std::int64_t>(sum);
}

/// Sends `count` requests of cost 1 at `now`; how many were admitted.
template <ratelimit::algorithm A>
std::int64_t admitted_of(typename A::state& s, const ratelimit::quota& q, std::int64_t now,
                         std::int64_t count) {
  std::int64_t admitted = 0;
  for (std::int64_t i = 0; i < count; ++i) admitted += A::step(s, q, now, 1).allowed ? 1 : 0;
  return admitted;
}

/// One key driven straight through algorithm A, kept as its history of requests: a probe
/// replays it, so asking what a request would get never changes the key (and works for
/// sliding_log, whose state cannot be copied).
template <ratelimit::algorithm A>
class probed_key {
 public:
  probed_key(const ratelimit::quota& q, std::int64_t start) : quota_(q), start_(start) {}

  const ratelimit::quota& quota() const { return quota_; }

  ratelimit::decision decide(request r) {
    const ratelimit::decision d = probe(r);
    history_.push_back(r);
    return d;
  }

  ratelimit::decision probe(request r) const { return then({r}).front(); }

  /// The decisions `more` would get after this key's history.
  std::vector<ratelimit::decision> then(const std::vector<request>& more) const {
    typename A::state s = A::fresh(quota_, start_);
    for (const request& r : history_) (void)A::step(s, quota_, r.at, r.cost);
    std::vector<ratelimit::decision> decisions;
    for (const request& r : more) decisions.push_back(A::step(s, quota_, r.at, r.cost));
    return decisions;
  }

  probed_key after(request r) const {
    probed_key key = *this;
    key.history_.push_back(r);
    return key;
  }

 private:
  ratelimit::quota quota_;
  std::int64_t start_;
  std::vector<request> history_;
};

/// Requests that tell two keys apart: the whole capacity at once, one unit at a time, and
/// the same again an interval, half a period and a period later.
template <class A>
std::vector<request> follow_ups(const ratelimit::quota& q, std::int64_t at) {
  const std::int64_t period = q.period.count();
  const std::int64_t interval = std::max<std::int64_t>(1, period / q.limit);
  const std::int64_t all = capacity<A>(q);
  return {{at, all},
          {at, 1},
          {later(at, 1), 1},
          {later(at, interval), 1},
          {later(at, interval), all},
          {later(at, period / 2), 1},
          {later(at, period), all},
          {later(at, period + 1), 1}};
}

inline testing::AssertionResult same_decisions(const std::vector<ratelimit::decision>& expected,
                                               const std::vector<ratelimit::decision>& actual) {
  for (std::size_t i = 0; i < expected.size(); ++i) {
    if (!same(expected[i], actual[i])) {
      return testing::AssertionFailure()
             << "follow-up " << i << ": expected " << describe(expected[i]) << ", got "
             << describe(actual[i]);
    }
  }
  return testing::AssertionSuccess();
}

/// A rejected request is still rejected 1ns before `now + retry_after` and admitted at it;
/// nanoseconds::max() means it is rejected even at the last instant of the clock.
template <class A>
testing::AssertionResult retry_after_is_exact(const probed_key<A>& key, request r) {
  using std::chrono::nanoseconds;
  const ratelimit::decision d = key.probe(r);
  if (d.allowed) {
    if (d.retry_after == nanoseconds::zero()) return testing::AssertionSuccess();
    return testing::AssertionFailure() << "admitted with " << describe(d);
  }
  if (d.retry_after == nanoseconds::max()) {
    if (!key.probe({int64_max, r.cost}).allowed) return testing::AssertionSuccess();
    return testing::AssertionFailure() << "retry_after is max() for cost " << r.cost << " at "
                                       << r.at << ", but it is admitted at INT64_MAX";
  }
  if (d.retry_after <= nanoseconds::zero() || i128{r.at} + d.retry_after.count() > int64_max) {
    return testing::AssertionFailure() << "rejected at " << r.at << " with " << describe(d);
  }
  const std::int64_t retry_at = r.at + d.retry_after.count();
  const ratelimit::decision early = key.probe({retry_at - 1, r.cost});
  const ratelimit::decision on_time = key.probe({retry_at, r.cost});
  if (early.allowed || !on_time.allowed) {
    return testing::AssertionFailure()
           << "cost " << r.cost << " rejected at " << r.at << " with retry_after "
           << d.retry_after.count() << "ns; 1ns earlier: " << describe(early)
           << "; on time: " << describe(on_time);
  }
  return testing::AssertionSuccess();
}

/// From `now + reset_after` on, the key decides every request as a fresh key would; 1ns
/// earlier it cannot yet take its whole capacity at once.
template <class A>
testing::AssertionResult reset_after_is_exact(const probed_key<A>& key, request r) {
  using std::chrono::nanoseconds;
  const ratelimit::decision d = key.probe(r);
  const probed_key<A> then = key.after(r);
  const ratelimit::quota& q = key.quota();
  const request everything_at_end{int64_max, capacity<A>(q)};
  if (d.reset_after == nanoseconds::max()) {
    if (!then.probe(everything_at_end).allowed) return testing::AssertionSuccess();
    return testing::AssertionFailure() << "reset_after is max() but the key is full at INT64_MAX";
  }
  if (d.reset_after < nanoseconds::zero() || i128{r.at} + d.reset_after.count() > int64_max) {
    return testing::AssertionFailure() << "at " << r.at << ": " << describe(d);
  }
  const std::int64_t reset_at = r.at + d.reset_after.count();
  if (d.reset_after > nanoseconds::zero() && then.probe({reset_at - 1, capacity<A>(q)}).allowed) {
    return testing::AssertionFailure() << "full 1ns before reset_after: " << describe(d);
  }
  auto result = same_decisions(probed_key<A>(q, reset_at).then(follow_ups<A>(q, reset_at)),
                               then.then(follow_ups<A>(q, reset_at)));
  if (!result) return result << " (reset_after " << d.reset_after.count() << "ns)";
  return result;
}

/// A rejected request leaves the key as it was: what follows is decided as if it had never
/// been made.
template <class A>
testing::AssertionResult rejection_consumes_nothing(const probed_key<A>& key, request r) {
  if (key.probe(r).allowed) return testing::AssertionSuccess();
  const std::vector<request> more = follow_ups<A>(key.quota(), r.at);
  return same_decisions(key.then(more), key.after(r).then(more));
}

/// Runs `check(key, next)` before each request of seeded random keys over every awkward
/// quota, forward in time, each request aimed at the edges of the decision before it.
template <class A, class Check>
void for_many_states(Check check, int keys_per_quota = 8, int requests_per_key = 30) {
  std::uint64_t seed = 0;
  for (const ratelimit::quota& q : awkward_quotas()) {
    for (int k = 0; k < keys_per_quota; ++k) {
      ++seed;
      random_requests requests(q, capacity<A>(q), seed);
      requests.start_at(requests.start());
      probed_key<A> key(q, requests.now());
      ratelimit::decision last{};
      for (int i = 0; i < requests_per_key; ++i) {
        const request r = requests.next(last);
        EXPECT_TRUE(check(key, r)) << describe(q) << ", seed " << seed << ", request " << i
                                   << " (cost " << r.cost << " at " << r.at << ")";
        last = key.decide(r);
      }
    }
  }
}

}  // namespace ratelimit_test
