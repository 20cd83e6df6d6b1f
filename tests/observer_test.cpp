// Observers: every decision reaches the observer with its key, outcome, rule and latency;
// the ready metrics observer counts them and writes the Prometheus text format.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <ratelimit/metrics.hpp>
#include <ratelimit/ratelimit.hpp>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using ratelimit::manual_clock;
using ratelimit::quota;

struct recorded {
  std::string key;
  bool allowed;
  std::size_t rule;
  std::chrono::nanoseconds latency;
};

struct recorder {
  std::vector<recorded>* seen;
  void on_decision(const ratelimit::decision_event& e) noexcept {
    seen->push_back({std::string(e.key), e.decision.allowed, e.rule, e.latency});
  }
};

template <class Observer>
using observed_bucket =
    ratelimit::token_bucket<manual_clock, ratelimit::in_memory_storage, Observer>;

TEST(Observer, SeesEveryDecisionWithItsKeyAndOutcome) {
  std::vector<recorded> seen;
  manual_clock clock;
  observed_bucket<recorder> limiter{quota::per_second(2), clock, ratelimit::in_memory_storage{},
                                    recorder{&seen}};
  for (int i = 0; i < 3; ++i) static_cast<void>(limiter.try_acquire("alice"));
  static_cast<void>(limiter.try_acquire("bob", 1, quota::per_second(1)));
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].key, "alice");
  EXPECT_TRUE(seen[1].allowed);
  EXPECT_FALSE(seen[2].allowed);
  EXPECT_EQ(seen[3].key, "bob");
  for (const recorded& r : seen) {
    EXPECT_EQ(r.rule, 0u);
    EXPECT_GT(r.latency, 0ns) << "measured on steady_clock, whatever the limiter's clock";
  }
}

TEST(Observer, SeesWaitsAndReservationsOnce) {
  std::vector<recorded> seen;
  manual_clock clock;
  observed_bucket<recorder> limiter{quota::per_second(2), clock, ratelimit::in_memory_storage{},
                                    recorder{&seen}};
  EXPECT_TRUE(limiter.acquire("k", 2, 0ns));
  EXPECT_FALSE(limiter.acquire("k", 1, 100ms));
  EXPECT_EQ(seen.size(), 2u);
}

TEST(Observer, SeesEachDecisionOfABatchAndEachReservation) {
  std::vector<recorded> seen;
  manual_clock clock;
  observed_bucket<recorder> limiter{quota::per_second(2), clock, ratelimit::in_memory_storage{},
                                    recorder{&seen}};
  const ratelimit::request batch[] = {{"a", 1}, {"b", 2}, {"a", 2}};
  static_cast<void>(limiter.try_acquire_many(batch));
  const auto r = limiter.reserve("c", 1, 1s);
  EXPECT_TRUE(r.outstanding());
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[1].key, "b");
  EXPECT_FALSE(seen[2].allowed);
  EXPECT_EQ(seen[3].key, "c");
  EXPECT_TRUE(seen[3].allowed);
}

TEST(Observer, NoObserverCostsNoSpace) {
  using plain = ratelimit::token_bucket<>;
  using observed = observed_bucket<ratelimit::no_observer>;
  EXPECT_EQ(sizeof(plain), sizeof(ratelimit::token_bucket<std::chrono::steady_clock>));
  EXPECT_EQ(sizeof(observed), sizeof(ratelimit::token_bucket<manual_clock>));
}

TEST(Metrics, CountsOutcomesPerRuleAndTheirLatency) {
  ratelimit::metrics metrics{"api"};
  manual_clock clock;
  observed_bucket<ratelimit::metrics> limiter{quota::per_second(3), clock,
                                              ratelimit::in_memory_storage{}, metrics};
  for (int i = 0; i < 5; ++i) static_cast<void>(limiter.try_acquire("k"));
  const auto c = metrics.rule_counts();
  EXPECT_EQ(c.allowed, 3u);
  EXPECT_EQ(c.rejected, 2u);
  EXPECT_EQ(c.degraded, 0u);
  std::uint64_t in_buckets = 0;
  for (const std::uint64_t n : c.latency) in_buckets += n;
  EXPECT_EQ(in_buckets, 5u);
  EXPECT_GT(c.latency_sum_ns, 0u);
}

TEST(Metrics, PutsEachLatencyInTheBucketOfItsUpperBound) {
  ratelimit::metrics metrics{"api"};
  const ratelimit::decision d{.allowed = true, .degraded = true};
  for (const std::chrono::nanoseconds latency : {100ns, 101ns, 1000000ns, 2000000000ns}) {
    metrics.on_decision(
        {.key = "k", .decision = d, .rule = 0, .rule_name = {}, .latency = latency});
  }
  const auto c = metrics.rule_counts();
  EXPECT_EQ(c.latency[0], 1u) << "100 ns is within le=1e-07";
  EXPECT_EQ(c.latency[1], 1u) << "101 ns is the next bucket's";
  EXPECT_EQ(c.latency[12], 1u) << "1 ms";
  EXPECT_EQ(c.latency.back(), 1u) << "above every bound";
  EXPECT_EQ(c.degraded, 4u);
  EXPECT_EQ(c.latency_sum_ns, 2'001'000'201u);
}

TEST(Metrics, WritesThePrometheusTextFormat) {
  ratelimit::metrics metrics{"api \"v1\"", {"per-second", "per-hour"}};
  const ratelimit::decision allowed{.allowed = true};
  const ratelimit::decision rejected{};
  metrics.on_decision(
      {.key = "k", .decision = allowed, .rule = 1, .rule_name = {}, .latency = 1500ns});
  metrics.on_decision(
      {.key = "k", .decision = rejected, .rule = 1, .rule_name = {}, .latency = 300ns});
  metrics.on_backend_error({.backend = "redis", .what = "timeout"});
  metrics.on_backend_error({.backend = "redis", .what = "timeout"});
  const std::string text = metrics.prometheus();
  const auto has = [&](const std::string& line) {
    EXPECT_NE(text.find(line + "\n"), std::string::npos) << line << "\nin:\n" << text;
  };
  has("# TYPE ratelimit_decisions_total counter");
  has(R"(ratelimit_decisions_total{limiter="api \"v1\"",rule="per-hour",outcome="allowed"} 1)");
  has(R"(ratelimit_decisions_total{limiter="api \"v1\"",rule="per-hour",outcome="rejected"} 1)");
  has(R"(ratelimit_decisions_total{limiter="api \"v1\"",rule="per-second",outcome="allowed"} 0)");
  has("# TYPE ratelimit_decision_duration_seconds histogram");
  has(R"(ratelimit_decision_duration_seconds_bucket{limiter="api \"v1\"",rule="per-hour",le="0.00000025"} 0)");
  has(R"(ratelimit_decision_duration_seconds_bucket{limiter="api \"v1\"",rule="per-hour",le="0.0000005"} 1)");
  has(R"(ratelimit_decision_duration_seconds_bucket{limiter="api \"v1\"",rule="per-hour",le="0.0000025"} 2)");
  has(R"(ratelimit_decision_duration_seconds_bucket{limiter="api \"v1\"",rule="per-hour",le="+Inf"} 2)");
  has(R"(ratelimit_decision_duration_seconds_sum{limiter="api \"v1\"",rule="per-hour"} 0.0000018)");
  has(R"(ratelimit_decision_duration_seconds_count{limiter="api \"v1\"",rule="per-hour"} 2)");
  has(R"(ratelimit_backend_errors_total{limiter="api \"v1\"",backend="redis",kind="timeout"} 2)");
  EXPECT_EQ(metrics.backend_errors("redis", "timeout"), 2u);
}

TEST(Metrics, WritesEachFamilyOnceForSeveralLimiters) {
  ratelimit::metrics a{"a"};
  ratelimit::metrics b{"b"};
  std::string text;
  ratelimit::metrics::write_prometheus(text, {&a, &b});
  std::size_t types = 0;
  for (std::size_t at = text.find("# TYPE ratelimit_decisions_total"); at != std::string::npos;
       at = text.find("# TYPE ratelimit_decisions_total", at + 1)) {
    ++types;
  }
  EXPECT_EQ(types, 1u);
  EXPECT_NE(text.find(R"(limiter="a")"), std::string::npos);
  EXPECT_NE(text.find(R"(limiter="b")"), std::string::npos);
}

TEST(Metrics, CopiesShareTheirCountsAcrossThreads) {
  ratelimit::metrics metrics{"api"};
  ratelimit::token_bucket<std::chrono::steady_clock, ratelimit::in_memory_storage,
                          ratelimit::metrics>
      limiter{quota::per_hour(1000), {}, ratelimit::in_memory_storage{}, metrics};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&limiter] {
      for (int i = 0; i < 500; ++i) static_cast<void>(limiter.try_acquire("k"));
    });
  }
  for (std::thread& t : threads) t.join();
  const auto c = metrics.rule_counts();
  EXPECT_EQ(c.allowed, 1000u);
  EXPECT_EQ(c.rejected, 1000u);
}

TEST(Observer, HearsEachRuleOfAMultiLimiterByIndexAndName) {
  ratelimit::metrics metrics{"api", {"per-second", "per-hour"}};
  manual_clock clock;
  using ratelimit::rule;
  namespace algorithms = ratelimit::algorithms;
  ratelimit::basic_observed_multi_limiter<ratelimit::metrics, manual_clock,
                                          ratelimit::in_memory_storage, algorithms::token_bucket,
                                          algorithms::fixed_window>
      limits{clock, ratelimit::in_memory_storage{}, metrics,
             rule<algorithms::token_bucket>{"per-second", quota::per_second(2)},
             rule<algorithms::fixed_window>{"per-hour", quota::per_hour(3)}};
  for (int i = 0; i < 3; ++i) static_cast<void>(limits.try_acquire("k"));
  clock.advance(1s);
  static_cast<void>(limits.try_acquire("k"));
  static_cast<void>(limits.try_acquire("k"));
  // per-second: admits 2, rejects the 3rd, admits 2 more; per-hour: admits 3 (the third
  // would have passed it), then rejects.
  const auto second = metrics.rule_counts(0);
  const auto hour = metrics.rule_counts(1);
  EXPECT_EQ(second.allowed, 4u);
  EXPECT_EQ(second.rejected, 1u);
  EXPECT_EQ(hour.allowed, 4u);
  EXPECT_EQ(hour.rejected, 1u);
  EXPECT_NE(metrics.prometheus().find(R"(rule="per-hour",outcome="rejected"} 1)"),
            std::string::npos);
}

}  // namespace
