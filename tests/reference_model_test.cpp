// Every algorithm, driven through seeded random traces, against a brute-force model written
// from DESIGN section 2 (tests/support/reference_models.hpp): every field of every decision
// must match.

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <ratelimit/ratelimit.hpp>
#include <string>
#include <vector>

#include "support/algorithm_probe.hpp"
#include "support/algorithm_types.hpp"
#include "support/random_requests.hpp"
#include "support/reference_models.hpp"

namespace {

namespace model = ratelimit_test::model;
using ratelimit::decision;
using ratelimit::quota;
using ratelimit_test::random_requests;
using ratelimit_test::request;

/// The limiter that runs algorithm A on a manual clock and the in-memory storage.
template <class A>
using limiter_of =
    ratelimit::basic_limiter<A, ratelimit::manual_clock, ratelimit::in_memory_storage>;

/// Steps compared, mismatches found and in which fields; the first few mismatches of a trace
/// are reported in full, the rest only counted, since one wrong decision can make a trace
/// diverge.
class tally {
 public:
  void compare(const decision& expected, const decision& actual, request r, const char* key) {
    ++steps_;
    if (ratelimit_test::same(expected, actual)) return;
    const bool differs[] = {
        expected.allowed != actual.allowed,         expected.limit != actual.limit,
        expected.remaining != actual.remaining,     expected.retry_after != actual.retry_after,
        expected.reset_after != actual.reset_after, expected.delay != actual.delay,
        expected.degraded != actual.degraded};
    for (std::size_t i = 0; i < fields.size(); ++i) by_field_[i] += differs[i] ? 1 : 0;
    if (++mismatches_in_trace_ <= 3) {
      ADD_FAILURE() << "step " << steps_ - trace_started_at_ << ", key " << key << ": cost "
                    << r.cost << " at " << r.at
                    << "\n  model:   " << ratelimit_test::describe(expected)
                    << "\n  library: " << ratelimit_test::describe(actual);
    }
  }
  void start_trace() {
    mismatches_ += mismatches_in_trace_;
    mismatches_in_trace_ = 0;
    trace_started_at_ = steps_;
  }
  std::int64_t steps() const { return steps_; }
  std::int64_t mismatches() const { return mismatches_ + mismatches_in_trace_; }
  std::string by_field() const {
    std::string out;
    for (std::size_t i = 0; i < fields.size(); ++i) {
      if (by_field_[i] > 0)
        out += " " + std::string(fields[i]) + ": " + std::to_string(by_field_[i]);
    }
    return out;
  }

 private:
  static constexpr std::array<const char*, 7> fields{
      "allowed", "limit", "remaining", "retry_after", "reset_after", "delay", "degraded"};

  std::int64_t steps_ = 0;
  std::int64_t mismatches_ = 0;
  std::int64_t mismatches_in_trace_ = 0;
  std::int64_t trace_started_at_ = 0;
  std::array<std::int64_t, fields.size()> by_field_{};
};

/// One trace straight through the algorithm's step function.
template <class A>
void direct_trace(const quota& q, std::uint64_t seed, ratelimit_test::trace_shape shape, int steps,
                  tally& totals) {
  random_requests requests(q, ratelimit_test::capacity<A>(q), seed, shape);
  requests.start_at(requests.start());
  typename A::state state = A::fresh(q, requests.now());
  auto expected = model::model_of<A>(q, requests.now());
  decision last{};
  for (int i = 0; i < steps; ++i) {
    const request r = requests.next(last);
    last = A::step(state, q, r.at, r.cost);
    totals.compare(expected.step(r.at, r.cost), last, r, "-");
  }
}

/// One trace through a limiter on a manual_clock and the in-memory storage, over a few keys
/// that each have their own model. Forward in time only: the storage forgets keys that are
/// back to fresh, which a clock stepped back could tell apart.
template <class A>
void limiter_trace(const quota& q, std::uint64_t seed, int steps, tally& totals) {
  using model_type = decltype(model::model_of<A>(q, 0));
  constexpr std::array<const char*, 3> keys{"alice", "bob", "a key longer than 15 bytes"};
  ratelimit::manual_clock clock;
  limiter_of<A> limiter{q, clock, ratelimit::in_memory_storage()};
  random_requests requests(q, ratelimit_test::capacity<A>(q), seed);
  requests.start_at(requests.start());
  std::vector<std::optional<model_type>> models(keys.size());
  std::vector<decision> last(keys.size());
  for (int i = 0; i < steps; ++i) {
    const std::size_t k = requests.below(keys.size());
    const request r = requests.next(last[k]);
    clock.set(ratelimit::manual_clock::time_point{std::chrono::nanoseconds{r.at}});
    if (!models[k]) models[k].emplace(model::model_of<A>(q, r.at));
    last[k] = limiter.try_acquire(keys[k], r.cost);
    totals.compare(models[k]->step(r.at, r.cost), last[k], r, keys[k]);
  }
}

/// Quotas with a limit, period and burst drawn uniformly (ordinary) or log-uniformly over
/// everything the quota accepts (extreme).
quota random_quota(std::uint64_t seed, bool extreme) {
  std::mt19937_64 random(seed);
  const auto up_to = [&](std::int64_t most) {
    if (!extreme) return 1 + static_cast<std::int64_t>(random() % static_cast<std::uint64_t>(most));
    const auto bits = random() % 63;
    const std::uint64_t bound =
        std::min<std::uint64_t>(std::uint64_t{1} << bits, static_cast<std::uint64_t>(most));
    return 1 + static_cast<std::int64_t>(random() % bound);
  };
  const std::int64_t limit = up_to(extreme ? quota::max_units : 20);
  const std::int64_t period = up_to(extreme ? ratelimit_test::int64_max : 100'000'000'000);
  const std::int64_t burst = up_to(extreme ? quota::max_units : 40);
  return quota::per(limit, std::chrono::nanoseconds{period}).with_burst(burst);
}

enum class kind { ordinary, backward, extreme, extreme_backward, limiter };

/// Runs `traces` traces of `steps` each: every listed quota in turn, and a random one every
/// third trace. Fails unless every step matches.
template <class A>
void expect_traces_match(kind k, int traces, int steps) {
  const bool extreme = k == kind::extreme || k == kind::extreme_backward;
  const std::vector<quota> quotas =
      extreme ? ratelimit_test::extreme_quotas() : ratelimit_test::awkward_quotas();
  const ratelimit_test::trace_shape shape{
      .backward = k == kind::backward || k == kind::extreme_backward, .extreme = extreme};
  tally totals;
  for (int i = 0; i < traces; ++i) {
    const std::uint64_t seed = 1000 * static_cast<std::uint64_t>(k) + static_cast<std::uint64_t>(i);
    const quota q = i % 3 == 2 ? random_quota(seed, extreme)
                               : quotas[static_cast<std::size_t>(i) % quotas.size()];
    SCOPED_TRACE(ratelimit_test::algorithm_name_of<A>() + " trace seed " + std::to_string(seed) +
                 ", " + ratelimit_test::describe(q));
    totals.start_trace();
    if (k == kind::limiter) {
      limiter_trace<A>(q, seed, steps, totals);
    } else {
      direct_trace<A>(q, seed, shape, steps, totals);
    }
  }
  EXPECT_EQ(totals.mismatches(), 0)
      << "mismatching steps out of " << totals.steps() << ", by field:" << totals.by_field();
  testing::Test::RecordProperty("steps", std::to_string(totals.steps()));
}

template <class A>
class ReferenceModel : public testing::Test {};

using ratelimit_test::algorithm_name;
using ratelimit_test::all_algorithms;

TYPED_TEST_SUITE(ReferenceModel, all_algorithms, algorithm_name);

TYPED_TEST(ReferenceModel, MatchesOnRandomTraces) {
  expect_traces_match<TypeParam>(kind::ordinary, 32, 1000);
}

TYPED_TEST(ReferenceModel, MatchesWhenTheClockStepsBack) {
  expect_traces_match<TypeParam>(kind::backward, 10, 1000);
}

TYPED_TEST(ReferenceModel, MatchesAtTheExtremes) {
  expect_traces_match<TypeParam>(kind::extreme, 24, 250);
}

TYPED_TEST(ReferenceModel, MatchesAtTheExtremesWhenTheClockStepsBack) {
  expect_traces_match<TypeParam>(kind::extreme_backward, 16, 250);
}

TYPED_TEST(ReferenceModel, MatchesThroughALimiterWithAManualClock) {
  expect_traces_match<TypeParam>(kind::limiter, 10, 1000);
}

}  // namespace
