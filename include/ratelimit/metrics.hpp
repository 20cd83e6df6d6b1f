#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ratelimit/observer.hpp"

namespace ratelimit {

/// A ready observer: per rule, the decisions allowed, rejected and degraded, and a
/// histogram of their latency; backend errors by kind. Writes the Prometheus text
/// exposition format, with no dependency.
///
/// A copyable handle: copies share the counters, so the copy a limiter holds and the one
/// serving /metrics agree. Thread-safe: a decision costs a few relaxed atomic increments
/// (threads deciding at once on one limiter share their cache lines).
///
///     ratelimit::metrics metrics{"api"};
///     ratelimit::token_bucket<Clock, Storage, ratelimit::metrics> limiter{q, {}, {}, metrics};
///     response.body = metrics.prometheus();
class metrics {
 public:
  /// Upper bounds of the latency buckets, in nanoseconds: 100 ns to 100 ms, then +Inf.
  static constexpr std::array<std::int64_t, 19> latency_bounds{
      100,       250,        500,        1'000,      2'500,      5'000,     10'000,
      25'000,    50'000,     100'000,    250'000,    500'000,    1'000'000, 2'500'000,
      5'000'000, 10'000'000, 25'000'000, 50'000'000, 100'000'000};

  /// What one rule has counted.
  struct counts {
    std::uint64_t allowed = 0;
    std::uint64_t rejected = 0;
    std::uint64_t degraded = 0;  ///< of allowed and rejected: decided without the backend
    /// Decisions whose latency was at most latency_bounds[i] and above the bound before;
    /// the last entry counts those above every bound.
    std::array<std::uint64_t, latency_bounds.size() + 1> latency{};
    std::uint64_t latency_sum_ns = 0;
  };

  /// `limiter` names the limiter in every sample (label `limiter`); `rules`, in order,
  /// name a multi_limiter's rules (label `rule`; empty for a limiter's one rule).
  explicit metrics(std::string limiter, std::vector<std::string> rules = {""})
      : shared_(std::make_shared<shared>(std::move(limiter), std::move(rules))) {}

  void on_decision(const decision_event& e) noexcept {
    if (e.rule >= shared_->rule_count) return;
    rule_counters& r = shared_->rules[e.rule];
    (e.decision.allowed ? r.allowed : r.rejected).fetch_add(1, std::memory_order_relaxed);
    if (e.decision.degraded) r.degraded.fetch_add(1, std::memory_order_relaxed);
    const std::int64_t ns = e.latency.count() < 0 ? 0 : e.latency.count();
    std::size_t bucket = 0;
    while (bucket < latency_bounds.size() && ns > latency_bounds[bucket]) ++bucket;
    r.latency[bucket].fetch_add(1, std::memory_order_relaxed);
    r.latency_sum_ns.fetch_add(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
  }

  void on_backend_error(const backend_error& e) noexcept {
    const std::lock_guard lock{shared_->errors_mutex};
    for (error_count& known : shared_->errors) {
      if (known.backend == e.backend && known.what == e.what) {
        ++known.count;
        return;
      }
    }
    // A kind seen for the first time: a handful exist, so this allocates a handful of times.
    try {
      shared_->errors.push_back({std::string(e.backend), std::string(e.what), 1});
    } catch (...) {
    }
  }

  /// What rule `rule` has counted so far.
  counts rule_counts(std::size_t rule = 0) const {
    const rule_counters& r = shared_->rules[rule];
    counts c;
    c.allowed = r.allowed.load(std::memory_order_relaxed);
    c.rejected = r.rejected.load(std::memory_order_relaxed);
    c.degraded = r.degraded.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < c.latency.size(); ++i) {
      c.latency[i] = r.latency[i].load(std::memory_order_relaxed);
    }
    c.latency_sum_ns = r.latency_sum_ns.load(std::memory_order_relaxed);
    return c;
  }

  /// Backend errors of kind `what` so far.
  std::uint64_t backend_errors(std::string_view backend, std::string_view what) const {
    const std::lock_guard lock{shared_->errors_mutex};
    for (const error_count& known : shared_->errors) {
      if (known.backend == backend && known.what == what) return known.count;
    }
    return 0;
  }

  const std::string& limiter_name() const noexcept { return shared_->limiter; }
  const std::vector<std::string>& rule_names() const noexcept { return shared_->rule_names; }

  /// These metrics in the Prometheus text exposition format (version 0.0.4).
  std::string prometheus() const {
    std::string out;
    const metrics* self = this;
    write_prometheus(out, std::span{&self, 1});
    return out;
  }

  /// Appends several limiters' metrics to `out`, each family once, as the format requires.
  static void write_prometheus(std::string& out, std::span<const metrics* const> all);
  static void write_prometheus(std::string& out, std::initializer_list<const metrics*> all) {
    write_prometheus(out, std::span{all.begin(), all.size()});
  }

 private:
  struct rule_counters {
    std::atomic<std::uint64_t> allowed{0};
    std::atomic<std::uint64_t> rejected{0};
    std::atomic<std::uint64_t> degraded{0};
    std::array<std::atomic<std::uint64_t>, latency_bounds.size() + 1> latency{};
    std::atomic<std::uint64_t> latency_sum_ns{0};
  };

  struct error_count {
    std::string backend;
    std::string what;
    std::uint64_t count;
  };

  struct shared {
    shared(std::string name, std::vector<std::string> names)
        : limiter(std::move(name)),
          rule_names(names.empty() ? std::vector<std::string>{""} : std::move(names)),
          rule_count(rule_names.size()),
          rules(std::make_unique<rule_counters[]>(rule_count)) {}

    std::string limiter;
    std::vector<std::string> rule_names;
    std::size_t rule_count;
    std::unique_ptr<rule_counters[]> rules;
    mutable std::mutex errors_mutex;
    std::vector<error_count> errors;
  };

  std::shared_ptr<shared> shared_;
};

namespace detail::prometheus {

/// A label value, escaped as the text format asks: backslash, double quote and newline.
inline void append_label(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append("=\"");
  for (const char c : value) {
    if (c == '\\') {
      out.append("\\\\");
    } else if (c == '"') {
      out.append("\\\"");
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

/// Nanoseconds as decimal seconds, exactly: no floating point, no exponent.
inline void append_seconds(std::string& out, std::uint64_t ns) {
  out.append(std::to_string(ns / 1'000'000'000));
  std::uint64_t fraction = ns % 1'000'000'000;
  if (fraction == 0) return;
  std::string digits = std::to_string(fraction);
  digits.insert(0, 9 - digits.size(), '0');
  while (digits.back() == '0') digits.pop_back();
  out.push_back('.');
  out.append(digits);
}

inline void append_labels(std::string& out, const metrics& m, std::size_t rule) {
  out.push_back('{');
  append_label(out, "limiter", m.limiter_name());
  out.push_back(',');
  append_label(out, "rule", m.rule_names()[rule]);
}

}  // namespace detail::prometheus

inline void metrics::write_prometheus(std::string& out, std::span<const metrics* const> all) {
  namespace p = detail::prometheus;
  // Read once, so that every line of one rule comes from the same counts.
  std::vector<std::vector<counts>> snapshot;
  for (const metrics* m : all) {
    snapshot.emplace_back();
    for (std::size_t r = 0; r < m->shared_->rule_count; ++r) {
      snapshot.back().push_back(m->rule_counts(r));
    }
  }

  out.append(
      "# HELP ratelimit_decisions_total Decisions, by limiter, rule and outcome.\n"
      "# TYPE ratelimit_decisions_total counter\n");
  for (std::size_t i = 0; i < all.size(); ++i) {
    for (std::size_t r = 0; r < snapshot[i].size(); ++r) {
      const counts& c = snapshot[i][r];
      for (const auto& [outcome, n] : {std::pair{"allowed", c.allowed}, {"rejected", c.rejected}}) {
        out.append("ratelimit_decisions_total");
        p::append_labels(out, *all[i], r);
        out.append(",outcome=\"").append(outcome).append("\"} ");
        out.append(std::to_string(n)).push_back('\n');
      }
    }
  }

  out.append(
      "# HELP ratelimit_degraded_decisions_total Decisions the failure policy made without "
      "the backend.\n"
      "# TYPE ratelimit_degraded_decisions_total counter\n");
  for (std::size_t i = 0; i < all.size(); ++i) {
    for (std::size_t r = 0; r < snapshot[i].size(); ++r) {
      out.append("ratelimit_degraded_decisions_total");
      p::append_labels(out, *all[i], r);
      out.append("} ").append(std::to_string(snapshot[i][r].degraded)).push_back('\n');
    }
  }

  out.append(
      "# HELP ratelimit_decision_duration_seconds Time to decide, storage included.\n"
      "# TYPE ratelimit_decision_duration_seconds histogram\n");
  for (std::size_t i = 0; i < all.size(); ++i) {
    for (std::size_t r = 0; r < snapshot[i].size(); ++r) {
      const counts& c = snapshot[i][r];
      std::uint64_t cumulative = 0;
      for (std::size_t b = 0; b <= latency_bounds.size(); ++b) {
        cumulative += c.latency[b];
        out.append("ratelimit_decision_duration_seconds_bucket");
        p::append_labels(out, *all[i], r);
        out.append(",le=\"");
        if (b < latency_bounds.size()) {
          p::append_seconds(out, static_cast<std::uint64_t>(latency_bounds[b]));
        } else {
          out.append("+Inf");
        }
        out.append("\"} ").append(std::to_string(cumulative)).push_back('\n');
      }
      out.append("ratelimit_decision_duration_seconds_sum");
      p::append_labels(out, *all[i], r);
      out.append("} ");
      p::append_seconds(out, c.latency_sum_ns);
      out.push_back('\n');
      out.append("ratelimit_decision_duration_seconds_count");
      p::append_labels(out, *all[i], r);
      out.append("} ").append(std::to_string(cumulative)).push_back('\n');
    }
  }

  out.append(
      "# HELP ratelimit_backend_errors_total Failures of a remote storage, by kind.\n"
      "# TYPE ratelimit_backend_errors_total counter\n");
  for (const metrics* m : all) {
    const std::lock_guard lock{m->shared_->errors_mutex};
    for (const error_count& e : m->shared_->errors) {
      out.append("ratelimit_backend_errors_total{");
      p::append_label(out, "limiter", m->limiter_name());
      out.push_back(',');
      p::append_label(out, "backend", e.backend);
      out.push_back(',');
      p::append_label(out, "kind", e.what);
      out.append("} ").append(std::to_string(e.count)).push_back('\n');
    }
  }
}

}  // namespace ratelimit
