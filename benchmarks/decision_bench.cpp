// What one decision costs, for each algorithm: the math alone, one hot key through a
// limiter, 10^6 keys in random order, and the baselines these are judged against (a clock
// read, a std::unordered_map lookup), all in one run so that their ratios hold.
//
// Each benchmark reports `allowed`, the fraction of its requests admitted: an admission
// and a rejection take different paths, so a number means little without its mix.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ratelimit/ratelimit.hpp"

namespace {

using namespace std::chrono_literals;
using ratelimit::manual_clock;
using ratelimit::quota;
using std::chrono::nanoseconds;
using std::chrono::steady_clock;

// The named limiters (ratelimit::token_bucket<Clock, Storage>, ...) only add a
// constructor to basic_limiter, so one template covers all five algorithms.
template <class Algorithm, class Clock, class Storage = ratelimit::in_memory_storage>
using limiter = ratelimit::basic_limiter<Algorithm, Clock, Storage>;

void report_allowed(benchmark::State& state, std::int64_t allowed) {
  state.counters["allowed"] =
      benchmark::Counter(static_cast<double>(allowed), benchmark::Counter::kAvgIterations);
}

// ---------------------------------------------------------------------------------------
// One hot key.

/// How hard one key is pushed against a quota of 1000 units per period. With the time
/// supplied (the math, manual_clock) a request arrives every `step` against 1000 per
/// `period`; with steady_clock requests arrive as fast as the loop runs (a few tens of
/// ns apart), so `steady_period` sets the rate instead. The math costs the same whatever
/// the period: only the mix of admissions and rejections matters, and `allowed` shows it.
struct load {
  const char* name;
  nanoseconds step;
  nanoseconds steady_period;
};

constexpr std::int64_t units = 1000;
constexpr nanoseconds period = 1ms;  // one unit per microsecond
constexpr load loads[] = {
    // 0.8x the rate: every request admitted, the bucket refills between requests.
    {"under_limit", 1250ns, 10us},
    // 2x the rate: about half admitted, the state is always mid-refill.
    {"over_limit", 500ns, 100us},
    // 100x the rate (an abusive client): about 1% admitted, mostly the rejection path.
    {"flood", 10ns, 10ms},
};

constexpr std::string_view hot_key = "user:123456";

template <class Algorithm>
void math(benchmark::State& state, load l) {
  quota q = quota::per(units, period);
  // Hides the quota's values from the optimiser, as in a limiter, where the quota is
  // data: a period known at compile time would turn the divisions into multiplications.
  benchmark::DoNotOptimize(q);
  std::int64_t now = 0;
  typename Algorithm::state s = Algorithm::fresh(q, now);
  const std::int64_t step = l.step.count();
  std::int64_t allowed = 0;
  for (auto _ : state) {
    now += step;
    const ratelimit::decision d = Algorithm::step(s, q, now, 1);
    allowed += d.allowed;
    benchmark::DoNotOptimize(d);
  }
  report_allowed(state, allowed);
}

/// The limiter all threads of a multi-threaded benchmark share. Built by thread 0 before
/// the timed loop, read by the others only after the barrier that starts it.
template <class Limiter>
std::unique_ptr<Limiter> shared_limiter;

template <class Algorithm, class Clock, class Storage>
void hot(benchmark::State& state, load l) {
  using limiter_type = limiter<Algorithm, Clock, Storage>;
  constexpr bool manual = std::is_same_v<Clock, manual_clock>;
  if (state.thread_index() == 0) {
    const quota q = manual ? quota::per(units, period) : quota::per(units, l.steady_period);
    shared_limiter<limiter_type> = std::make_unique<limiter_type>(q, Clock(), Storage());
  }
  std::int64_t allowed = 0;
  for (auto _ : state) {
    limiter_type& lim = *shared_limiter<limiter_type>;
    if constexpr (manual) lim.clock().advance(l.step);
    const ratelimit::decision d = lim.try_acquire(hot_key);
    allowed += d.allowed;
    benchmark::DoNotOptimize(d);
  }
  report_allowed(state, allowed);
  if (state.thread_index() == 0) shared_limiter<limiter_type>.reset();
}

// ---------------------------------------------------------------------------------------
// 10^6 keys.

constexpr std::size_t key_count = 1'000'000;

/// "user:0" ... "user:999999" (up to 11 bytes), in the order the tables are filled.
const std::vector<std::string>& keys_in_fill_order() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k;
    k.reserve(key_count);
    for (std::size_t i = 0; i < key_count; ++i) k.push_back("user:" + std::to_string(i));
    return k;
  }();
  return keys;
}

/// The same keys, shuffled once, in the order the timed loops visit them. Laid out in
/// that order, so that the next key is read sequentially, as if it came in a fresh
/// request: the cache misses measured are the table's, not this array's. Visiting in
/// another order than the fill keeps tables whose entries sit in insertion order from
/// being read sequentially.
const std::vector<std::string>& keys_in_visiting_order() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k = keys_in_fill_order();
    std::shuffle(k.begin(), k.end(), std::mt19937_64{20240601});
    return k;
  }();
  return keys;
}

/// A filled table and where its visit stopped. Filling 10^6 keys takes longer than
/// measuring them, and Google Benchmark calls a function several times (to size the run,
/// then once per repetition), so one table is kept across those calls and dropped when
/// another benchmark needs its own.
template <class Table>
struct filled_table {
  explicit filled_table(Table t) : table(std::move(t)) {}
  Table table;
  std::size_t next = 0;
};

std::shared_ptr<void> held_table;
std::string held_name;

template <class Table, class Fill>
filled_table<Table>& reuse_or_fill(const std::string& name, Fill fill) {
  if (held_name != name) {
    held_table.reset();
    held_table = fill();
    held_name = name;
  }
  return *static_cast<filled_table<Table>*>(held_table.get());
}

/// Quotas for keys visited about once per pass over 10^6 keys, so nearly once a second:
/// a key's state never gets back to fresh during a run, so no key is dropped and every
/// visit finds its key.
struct key_load {
  const char* name;
  quota q;
};

const key_load key_loads[] = {
    // 1000 an hour, used once a pass: every request admitted.
    {"mostly_allowed", quota::per_hour(1000)},
    // 1 an hour, used by the fill: every timed request rejected.
    {"mostly_denied", quota::per_hour(1)},
};

/// With manual_clock, 10^7 requests a second in all.
constexpr nanoseconds many_keys_step = 100ns;

template <class Algorithm, class Clock>
void many_keys(benchmark::State& state, const std::string& name, quota q) {
  using limiter_type = limiter<Algorithm, Clock>;
  constexpr bool manual = std::is_same_v<Clock, manual_clock>;
  auto& f = reuse_or_fill<limiter_type>(name, [&] {
    // Twice the keys, so that no shard reaches its share of the bound.
    auto filled = std::make_shared<filled_table<limiter_type>>(
        limiter_type(q, Clock(), ratelimit::in_memory_storage({.max_keys = 2 * key_count})));
    for (const std::string& key : keys_in_fill_order()) {
      if constexpr (manual) filled->table.clock().advance(many_keys_step);
      benchmark::DoNotOptimize(filled->table.try_acquire(key));
    }
    return filled;
  });
  const std::vector<std::string>& keys = keys_in_visiting_order();
  std::size_t i = f.next;
  std::int64_t allowed = 0;
  std::int64_t fresh = 0;
  for (auto _ : state) {
    if constexpr (manual) f.table.clock().advance(many_keys_step);
    const ratelimit::decision d = f.table.try_acquire(keys[i]);
    allowed += d.allowed;
    // A full quota means the key was new, or dropped since its last visit: the decision
    // then inserted it instead of finding it.
    fresh += d.allowed && d.remaining == q.limit - 1;
    benchmark::DoNotOptimize(d);
    if (++i == keys.size()) i = 0;
  }
  f.next = i;
  report_allowed(state, allowed);
  // Both show that the visits measured found their keys: `fresh` near 0, `keys` 10^6.
  state.counters["fresh"] =
      benchmark::Counter(static_cast<double>(fresh), benchmark::Counter::kAvgIterations);
  state.counters["keys"] = static_cast<double>(f.table.storage().size());
}

// ---------------------------------------------------------------------------------------
// Baselines.

void steady_clock_now(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(steady_clock::now());
}

/// What manual_clock adds to each hot_key/.../manual_clock iteration.
void manual_clock_advance(benchmark::State& state) {
  manual_clock clock;
  for (auto _ : state) {
    clock.advance(1ns);
    benchmark::DoNotOptimize(clock.now());
  }
}

/// With `read_clock`, each lookup follows a clock read, as in a decision. That is more
/// than the sum of the two: steady_clock::now() orders the instruction stream (rdtscp or
/// lfence), so a lookup can no longer overlap its cache misses with the next one's.
template <bool read_clock>
void unordered_map_find(benchmark::State& state) {
  using map = std::unordered_map<std::string, std::int64_t>;
  auto& f = reuse_or_fill<map>("unordered_map_find", [] {
    auto filled = std::make_shared<filled_table<map>>(map());
    std::int64_t value = 0;
    for (const std::string& key : keys_in_fill_order()) filled->table.emplace(key, value++);
    return filled;
  });
  const std::vector<std::string>& keys = keys_in_visiting_order();
  std::size_t i = f.next;
  for (auto _ : state) {
    if constexpr (read_clock) benchmark::DoNotOptimize(steady_clock::now());
    const auto found = f.table.find(keys[i]);
    benchmark::DoNotOptimize(found->second);
    if (++i == keys.size()) i = 0;
  }
  f.next = i;
  state.counters["keys"] = static_cast<double>(f.table.size());
}

// ---------------------------------------------------------------------------------------

template <class Fn, class... Args>
benchmark::internal::Benchmark* add(const std::string& name, Fn fn, Args... args) {
  return benchmark::RegisterBenchmark(name.c_str(), fn, args...);
}

template <class Algorithm>
void register_algorithm(const std::string& algorithm) {
  using ratelimit::in_memory_storage;
  using ratelimit::in_memory_storage_st;
  for (const load& l : loads) {
    add("math/" + algorithm + "/" + l.name, math<Algorithm>, l);
  }
  for (const load& l : loads) {
    add("hot_key/" + algorithm + "/steady_clock/" + l.name,
        hot<Algorithm, steady_clock, in_memory_storage>, l);
    add("hot_key/" + algorithm + "/manual_clock/" + l.name,
        hot<Algorithm, manual_clock, in_memory_storage>, l);
  }
  // The lock's cost: the same over_limit load without one, then two threads meeting on it.
  add("hot_key/" + algorithm + "/steady_clock/over_limit/no_lock",
      hot<Algorithm, steady_clock, in_memory_storage_st>, loads[1]);
  add("hot_key/" + algorithm + "/manual_clock/over_limit/no_lock",
      hot<Algorithm, manual_clock, in_memory_storage_st>, loads[1]);
  add("hot_key/" + algorithm + "/steady_clock/over_limit/two_threads",
      hot<Algorithm, steady_clock, in_memory_storage>, loads[1])
      ->Threads(2)
      ->UseRealTime();
  for (const key_load& l : key_loads) {
    for (const bool manual : {false, true}) {
      const std::string name =
          "keys_1M/" + algorithm + (manual ? "/manual_clock/" : "/steady_clock/") + l.name;
      if (manual) {
        add(name, many_keys<Algorithm, manual_clock>, name, l.q);
      } else {
        add(name, many_keys<Algorithm, steady_clock>, name, l.q);
      }
    }
  }
}

void register_all() {
  add("baseline/steady_clock_now", steady_clock_now);
  add("baseline/manual_clock_advance", manual_clock_advance);
  add("baseline/unordered_map_find/keys_1M", unordered_map_find<false>);
  add("baseline/steady_clock_now+unordered_map_find/keys_1M", unordered_map_find<true>);
  register_algorithm<ratelimit::algorithms::token_bucket>("token_bucket");
  register_algorithm<ratelimit::algorithms::leaky_bucket>("leaky_bucket");
  register_algorithm<ratelimit::algorithms::fixed_window>("fixed_window");
  register_algorithm<ratelimit::algorithms::sliding_log>("sliding_log");
  register_algorithm<ratelimit::algorithms::sliding_window_counter>("sliding_window_counter");
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
