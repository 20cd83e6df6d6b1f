// How closely each algorithm holds a quota, on the same traffic: a plain program, not a
// Google Benchmark. Every algorithm is driven directly through
// `Algorithm::step(state, quota, now_ns, 1)` with the same arrivals (integer nanoseconds,
// deterministic), a quota of 100 per 1 s with burst = limit, over 60 simulated seconds.
//
//   accuracy_sim [--out-dir DIR]
//
// writes DIR/accuracy.csv and DIR/boundary.csv (DIR defaults to the current directory and
// is created if missing) and prints the same numbers as a table. Exit status: 0; 1 if an
// invariant below is violated or a file cannot be written; 2 on bad arguments.
//
// Traffic patterns (all arrivals cost 1; windows are [k·period, (k+1)·period) from time 0):
//   steady_1x, steady_2x, steady_10x  arrivals evenly spaced at 1×, 2×, 10× the limit rate,
//                                     the first at time 0
//   on_off_bursts    1 s at 10× then 4 s off, repeated; each burst starts half a period
//                    into a window, so it straddles a window edge
//   window_boundary  the classic attack: idle, then 10× the rate over the last 10% of a
//                    window and the first 10% of the next; edges at 1 s, 5 s, 9 s, ...
//   poisson_2x       Poisson arrivals at a mean of 2× the rate: a Bernoulli trial per 1 µs
//                    tick (exponential gaps, discretized to the µs; only std::mt19937_64
//                    and integer math, so the trace is the same on every platform) and a
//                    uniform offset in nanoseconds within the tick
//
// accuracy.csv, one row per (pattern, algorithm):
//   offered            arrivals in the trace
//   admitted           arrivals the algorithm admitted
//   ideal              what an exact sliding window of `limit` per period admits: the
//                      sliding_log's count on the same trace
//   admitted_over_ideal
//   max_in_any_window  the most admitted arrivals in any half-open window [t, t + period),
//                      exact (two pointers over the admitted timestamps; for the leaky
//                      bucket these are admission times, not the later departure times)
//   differs_from_log, swc_allows_log_rejects, swc_rejects_log_allows
//                      sliding_window_counter only, free-running: the fraction of arrivals
//                      whose decision differs from the sliding_log's, and the differing
//                      arrivals split by direction. Once one decision differs the two
//                      states differ, so later differences partly echo earlier ones.
//   differs_from_log_lockstep, lockstep_swc_allows_log_rejects,
//   lockstep_swc_rejects_log_allows
//                      sliding_window_counter only, the approximation alone: at each
//                      arrival, the counter's decision on the log's admitted history (its
//                      state rebuilt from the log's admissions in the current and previous
//                      window), against the log's decision. A history the log keeps
//                      while arrivals it rejects keep coming yields the same wrong
//                      estimate at each of them: read it as how often the estimate falls on
//                      the wrong side of the limit, not as excess admissions.
//
// boundary.csv, pattern window_boundary only: admitted arrivals per algorithm in bins of
// period/20 over [edge − period/2, edge + period/2) around the first 3 edges attacked;
// t_ms is the bin's start, admitted_rate_per_s its count over the bin's length.
//
// Invariants checked (exit 1 when violated), for any window of one period:
//   sliding_log             at most `limit`
//   token_bucket,           at most burst + floor(limit·(period − 1ns)/period): the bucket
//   leaky_bucket            (queue) holds at most `burst` at the first admission, and at
//                           most limit·(period − 1ns)/period refills (drains) before the last
//   fixed_window,           at most 2·limit: the window meets two aligned windows, each
//   sliding_window_counter  admitting at most `limit`

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "ratelimit/algorithms/fixed_window.hpp"
#include "ratelimit/algorithms/leaky_bucket.hpp"
#include "ratelimit/algorithms/sliding_log.hpp"
#include "ratelimit/algorithms/sliding_window_counter.hpp"
#include "ratelimit/algorithms/token_bucket.hpp"
#include "ratelimit/detail/wide_math.hpp"
#include "ratelimit/quota.hpp"

namespace {

namespace algorithms = ratelimit::algorithms;
using ratelimit::quota;
using ratelimit::detail::i128;
using ratelimit::detail::u128;

constexpr std::int64_t second = 1'000'000'000;
constexpr std::int64_t limit = 100;
constexpr std::int64_t period = second;
constexpr std::int64_t duration = 60 * second;
constexpr std::uint64_t seed = 20240601;
constexpr int boundary_edges = 3;
constexpr std::int64_t bins_per_period = 20;

struct trace {
  std::string pattern;
  std::vector<std::int64_t> arrivals;  ///< nanoseconds, nondecreasing, in [0, duration)
  std::vector<std::int64_t> edges;     ///< window edges attacked (window_boundary only)
};

/// Arrivals evenly spaced at `multiple` × the limit rate over [start, end).
void add_evenly(std::vector<std::int64_t>& out, std::int64_t start, std::int64_t end,
                std::int64_t multiple) {
  const std::int64_t per_period = multiple * limit;
  for (std::int64_t i = 0;; ++i) {
    const std::int64_t at = start + static_cast<std::int64_t>(i128{i} * period / per_period);
    if (at >= end) break;
    out.push_back(at);
  }
}

trace steady(std::int64_t multiple) {
  trace t{"steady_" + std::to_string(multiple) + "x", {}, {}};
  add_evenly(t.arrivals, 0, duration, multiple);
  return t;
}

trace on_off_bursts() {
  trace t{"on_off_bursts", {}, {}};
  for (std::int64_t cycle = 0; cycle + 5 * period <= duration; cycle += 5 * period) {
    add_evenly(t.arrivals, cycle + period / 2, cycle + period / 2 + period, 10);
  }
  return t;
}

trace window_boundary() {
  trace t{"window_boundary", {}, {}};
  for (std::int64_t edge = period; edge + period / 10 <= duration; edge += 4 * period) {
    t.edges.push_back(edge);
    add_evenly(t.arrivals, edge - period / 10, edge + period / 10, 10);
  }
  return t;
}

trace poisson(std::int64_t multiple) {
  trace t{"poisson_" + std::to_string(multiple) + "x", {}, {}};
  constexpr std::int64_t tick = 1'000;  // 1 µs
  // P(arrival in a tick) = rate × tick, as a threshold on a uniform 64-bit draw.
  const auto threshold = static_cast<std::uint64_t>(
      (u128{1} << 64) * static_cast<std::uint64_t>(multiple * limit * tick) /
      static_cast<std::uint64_t>(period));
  std::mt19937_64 rng{seed};
  for (std::int64_t start = 0; start < duration; start += tick) {
    if (rng() < threshold) {
      t.arrivals.push_back(start + static_cast<std::int64_t>(rng() % tick));
    }
  }
  return t;
}

struct run {
  std::vector<char> allowed;           ///< per arrival
  std::vector<std::int64_t> admitted;  ///< timestamps of admitted arrivals
};

template <class Algorithm>
run simulate(const quota& q, const std::vector<std::int64_t>& arrivals) {
  run r;
  r.allowed.reserve(arrivals.size());
  typename Algorithm::state s = Algorithm::fresh(q, arrivals.empty() ? 0 : arrivals.front());
  for (const std::int64_t now : arrivals) {
    const bool allowed = Algorithm::step(s, q, now, 1).allowed;
    r.allowed.push_back(allowed ? 1 : 0);
    if (allowed) r.admitted.push_back(now);
  }
  return r;
}

/// The most timestamps in any [t, t + period): for each right end, the leftmost one
/// less than `period` before it.
std::int64_t max_in_any_window(const std::vector<std::int64_t>& sorted) {
  std::size_t left = 0;
  std::size_t best = 0;
  for (std::size_t right = 0; right < sorted.size(); ++right) {
    while (sorted[right] - sorted[left] >= period) ++left;
    best = std::max(best, right - left + 1);
  }
  return static_cast<std::int64_t>(best);
}

struct disagreement {
  std::int64_t counter_allows = 0;  ///< sliding_window_counter admits, sliding_log rejects
  std::int64_t counter_rejects = 0;
  std::size_t first = std::size_t(-1);  ///< index of the first arrival decided differently
  double fraction(std::size_t offered) const {
    return offered == 0 ? 0.0
                        : static_cast<double>(counter_allows + counter_rejects) /
                              static_cast<double>(offered);
  }
};

disagreement compare(const std::vector<char>& counter, const std::vector<char>& log) {
  disagreement d;
  for (std::size_t i = 0; i < log.size(); ++i) {
    if (counter[i] && !log[i]) ++d.counter_allows;
    if (!counter[i] && log[i]) ++d.counter_rejects;
    if (counter[i] != log[i]) d.first = std::min(d.first, i);
  }
  return d;
}

/// The sliding_window_counter's decision at each arrival on the log's admitted history:
/// its state is exactly (window, admitted in the window before, admitted in this one).
disagreement compare_lockstep(const quota& q, const std::vector<std::int64_t>& arrivals,
                              const std::vector<char>& log) {
  std::vector<std::int64_t> per_window(static_cast<std::size_t>(duration / period) + 1, 0);
  std::vector<char> counter;
  counter.reserve(arrivals.size());
  for (std::size_t i = 0; i < arrivals.size(); ++i) {
    const std::int64_t window = arrivals[i] / period;
    const auto w = static_cast<std::size_t>(window);
    algorithms::sliding_window_counter::state s{window, w > 0 ? per_window[w - 1] : 0,
                                                per_window[w]};
    counter.push_back(algorithms::sliding_window_counter::step(s, q, arrivals[i], 1).allowed);
    if (log[i]) ++per_window[w];
  }
  return compare(counter, log);
}

struct row {
  std::string pattern;
  std::string algorithm;
  std::int64_t offered;
  std::int64_t admitted;
  std::int64_t ideal;
  std::int64_t max_window;
  bool is_counter;
  disagreement free_running;
  disagreement lockstep;
};

struct bin_row {
  std::string algorithm;
  std::int64_t start;
  std::int64_t admitted;
};

struct results {
  std::vector<row> rows;
  std::vector<bin_row> bins;
  std::vector<std::string> violations;
};

/// Admitted counts in bins of period/20 over [edge − period/2, edge + period/2).
void add_bins(results& out, const std::string& algorithm, const trace& t,
              const std::vector<std::int64_t>& admitted) {
  const std::int64_t width = period / bins_per_period;
  const std::size_t edges = std::min<std::size_t>(t.edges.size(), boundary_edges);
  for (std::size_t e = 0; e < edges; ++e) {
    for (std::int64_t start = t.edges[e] - period / 2; start < t.edges[e] + period / 2;
         start += width) {
      const auto first = std::lower_bound(admitted.begin(), admitted.end(), start);
      const auto last = std::lower_bound(admitted.begin(), admitted.end(), start + width);
      out.bins.push_back({algorithm, start, static_cast<std::int64_t>(last - first)});
    }
  }
}

template <class Algorithm>
void measure(results& out, const quota& q, const trace& t, const char* algorithm, const run& log,
             std::int64_t bound) {
  constexpr bool is_log = std::is_same_v<Algorithm, algorithms::sliding_log>;
  run own;
  if constexpr (!is_log) own = simulate<Algorithm>(q, t.arrivals);
  const run& mine = is_log ? log : own;
  row x{t.pattern,
        algorithm,
        static_cast<std::int64_t>(t.arrivals.size()),
        static_cast<std::int64_t>(mine.admitted.size()),
        static_cast<std::int64_t>(log.admitted.size()),
        max_in_any_window(mine.admitted),
        std::is_same_v<Algorithm, algorithms::sliding_window_counter>,
        {},
        {}};
  if (x.is_counter) {
    x.free_running = compare(mine.allowed, log.allowed);
    x.lockstep = compare_lockstep(q, t.arrivals, log.allowed);
    // Up to the first difference both runs share one history, so they must find it at
    // the same arrival: a check of the lockstep's rebuilt state.
    if (x.free_running.first != x.lockstep.first) {
      out.violations.push_back(t.pattern + "/" + algorithm +
                               ": the lockstep run and the free run first differ from the "
                               "log at different arrivals");
    }
  }
  if (x.max_window > bound) {
    out.violations.push_back(t.pattern + "/" + algorithm + ": " + std::to_string(x.max_window) +
                             " admitted within one period, above the bound of " +
                             std::to_string(bound));
  }
  if (!t.edges.empty()) add_bins(out, algorithm, t, mine.admitted);
  out.rows.push_back(std::move(x));
}

void measure_all(results& out, const trace& t) {
  const quota q = quota::per(limit, std::chrono::nanoseconds{period});
  if (!std::is_sorted(t.arrivals.begin(), t.arrivals.end()) ||
      (!t.arrivals.empty() && (t.arrivals.front() < 0 || t.arrivals.back() >= duration))) {
    out.violations.push_back(t.pattern + ": arrivals out of order or out of range");
    return;
  }
  const run log = simulate<algorithms::sliding_log>(q, t.arrivals);
  const auto bucket_bound = static_cast<std::int64_t>(
      q.burst + i128{q.limit} * (q.period.count() - 1) / q.period.count());
  measure<algorithms::token_bucket>(out, q, t, "token_bucket", log, bucket_bound);
  measure<algorithms::leaky_bucket>(out, q, t, "leaky_bucket", log, bucket_bound);
  measure<algorithms::fixed_window>(out, q, t, "fixed_window", log, 2 * q.limit);
  measure<algorithms::sliding_log>(out, q, t, "sliding_log", log, q.limit);
  measure<algorithms::sliding_window_counter>(out, q, t, "sliding_window_counter", log,
                                              2 * q.limit);
}

double ratio(std::int64_t a, std::int64_t b) {
  return b == 0 ? 0.0 : static_cast<double>(a) / static_cast<double>(b);
}

std::string format(const char* spec, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, spec, value);
  return buffer;
}

bool write_accuracy(const std::filesystem::path& path, const results& r) {
  std::ofstream out(path);
  out << "pattern,algorithm,limit,period_ms,offered,admitted,ideal,admitted_over_ideal,"
         "max_in_any_window,differs_from_log,swc_allows_log_rejects,swc_rejects_log_allows,"
         "differs_from_log_lockstep,lockstep_swc_allows_log_rejects,"
         "lockstep_swc_rejects_log_allows\n";
  for (const row& x : r.rows) {
    out << x.pattern << ',' << x.algorithm << ',' << limit << ',' << period / 1'000'000 << ','
        << x.offered << ',' << x.admitted << ',' << x.ideal << ','
        << format("%.6f", ratio(x.admitted, x.ideal)) << ',' << x.max_window << ',';
    if (x.is_counter) {
      const auto offered = static_cast<std::size_t>(x.offered);
      out << format("%.6f", x.free_running.fraction(offered)) << ','
          << x.free_running.counter_allows << ',' << x.free_running.counter_rejects << ','
          << format("%.6f", x.lockstep.fraction(offered)) << ',' << x.lockstep.counter_allows << ','
          << x.lockstep.counter_rejects << '\n';
    } else {
      out << ",,,,,\n";
    }
  }
  out.flush();
  return static_cast<bool>(out);
}

bool write_boundary(const std::filesystem::path& path, const results& r) {
  std::ofstream out(path);
  const std::int64_t width = period / bins_per_period;
  out << "algorithm,t_ms,admitted_in_bin,admitted_rate_per_s\n";
  for (const bin_row& b : r.bins) {
    out << b.algorithm << ',' << format("%.0f", static_cast<double>(b.start) / 1e6) << ','
        << b.admitted << ','
        << format("%g", static_cast<double>(b.admitted) * 1e9 / static_cast<double>(width)) << '\n';
  }
  out.flush();
  return static_cast<bool>(out);
}

void print_table(const results& r) {
  std::printf("quota: %lld per %lld ms, burst %lld; %lld s simulated; seed %llu\n\n",
              static_cast<long long>(limit), static_cast<long long>(period / 1'000'000),
              static_cast<long long>(limit), static_cast<long long>(duration / second),
              static_cast<unsigned long long>(seed));
  std::printf("%-16s %-23s %7s %8s %6s %9s %12s  %-20s %s\n", "pattern", "algorithm", "offered",
              "admitted", "ideal", "adm/ideal", "max_win/lim", "differs (+/-)", "lockstep (+/-)");
  std::string last;
  for (const row& x : r.rows) {
    if (!last.empty() && x.pattern != last) std::printf("\n");
    last = x.pattern;
    std::string differs;
    std::string lockstep;
    if (x.is_counter) {
      const auto offered = static_cast<std::size_t>(x.offered);
      differs = format("%.4f", x.free_running.fraction(offered)) + " (+" +
                std::to_string(x.free_running.counter_allows) + "/-" +
                std::to_string(x.free_running.counter_rejects) + ")";
      lockstep = format("%.4f", x.lockstep.fraction(offered)) + " (+" +
                 std::to_string(x.lockstep.counter_allows) + "/-" +
                 std::to_string(x.lockstep.counter_rejects) + ")";
    }
    const std::string window = std::to_string(x.max_window) + "/" + std::to_string(limit);
    char line[256];
    std::snprintf(line, sizeof line, "%-16s %-23s %7lld %8lld %6lld %9.4f %12s  %-20s %s",
                  x.pattern.c_str(), x.algorithm.c_str(), static_cast<long long>(x.offered),
                  static_cast<long long>(x.admitted), static_cast<long long>(x.ideal),
                  ratio(x.admitted, x.ideal), window.c_str(), differs.c_str(), lockstep.c_str());
    std::string_view text = line;
    text = text.substr(0, text.find_last_not_of(' ') + 1);
    std::printf("%.*s\n", static_cast<int>(text.size()), text.data());
  }
  std::printf(
      "\nideal: the sliding_log's admissions (an exact sliding window); max_win: the most\n"
      "admitted in any [t, t + period). differs: sliding_window_counter against sliding_log,\n"
      "each running on its own, as a fraction of arrivals (+ counter admits what the log\n"
      "rejects, - the reverse); lockstep: the counter's decision on the log's own admitted\n"
      "history at each arrival, the approximation alone (counted at every arrival, so a\n"
      "wrong estimate that persists through a run of rejections counts at each of them).\n");
}

int usage(const char* message) {
  std::fprintf(stderr,
               "accuracy_sim: %s\nusage: accuracy_sim [--out-dir DIR]\n"
               "  writes DIR/accuracy.csv and DIR/boundary.csv (DIR defaults to .)\n",
               message);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::filesystem::path out_dir = ".";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::printf(
          "usage: accuracy_sim [--out-dir DIR]\n"
          "  writes DIR/accuracy.csv and DIR/boundary.csv (DIR defaults to .)\n");
      return 0;
    }
    if (arg == "--out-dir") {
      if (i + 1 >= argc) return usage("--out-dir needs a directory");
      out_dir = argv[++i];
    } else if (arg.starts_with("--out-dir=")) {
      out_dir = std::string(arg.substr(std::string_view("--out-dir=").size()));
    } else {
      return usage(("unknown argument '" + std::string(arg) + "'").c_str());
    }
    if (out_dir.empty()) return usage("--out-dir needs a directory");
  }

  results r;
  for (const trace& t :
       {steady(1), steady(2), steady(10), on_off_bursts(), window_boundary(), poisson(2)}) {
    measure_all(r, t);
  }
  print_table(r);

  std::error_code error;
  std::filesystem::create_directories(out_dir, error);
  if (error) {
    std::fprintf(stderr, "accuracy_sim: cannot create %s: %s\n", out_dir.c_str(),
                 error.message().c_str());
    return 1;
  }
  int status = 0;
  for (const auto& [name, write] :
       {std::pair{"accuracy.csv", &write_accuracy}, std::pair{"boundary.csv", &write_boundary}}) {
    const std::filesystem::path path = out_dir / name;
    if (!write(path, r)) {
      std::fprintf(stderr, "accuracy_sim: cannot write %s\n", path.c_str());
      status = 1;
    }
  }
  for (const std::string& v : r.violations) {
    std::fprintf(stderr, "accuracy_sim: invariant violated: %s\n", v.c_str());
    status = 1;
  }
  return status;
}
