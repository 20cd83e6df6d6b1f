// What one decision costs, for each algorithm: the math alone, one hot key through a
// limiter, 10^6 keys in random order, and the baselines these are judged against (a clock
// read, a std::unordered_map lookup), all in one run so that their ratios hold. Each
// limiter row runs on three clocks (steady_clock, coarse_steady_clock, and manual_clock,
// the time supplied) and on both in-memory storages (sharded and locked, and
// in_memory_storage_st without locks: `/no_lock`); one hot key also with two threads, on
// one key and on a key each.
//
// Each benchmark reports `allowed`, the fraction of its requests admitted: an admission
// and a rejection take different paths, so a number means little without its mix.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
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
using ratelimit::coarse_steady_clock;
using ratelimit::manual_clock;
using ratelimit::quota;
using std::chrono::nanoseconds;
using std::chrono::steady_clock;

// The named limiters (ratelimit::token_bucket<Clock, Storage>, ...) only add a
// constructor to basic_limiter, so one template covers all five algorithms.
template <class Algorithm, class Clock, class Storage = ratelimit::in_memory_storage>
using limiter = ratelimit::basic_limiter<Algorithm, Clock, Storage>;

/// The clock's segment of a benchmark's name.
template <class Clock>
constexpr const char* clock_name = "steady_clock";
template <>
constexpr const char* clock_name<manual_clock> = "manual_clock";
template <>
constexpr const char* clock_name<coarse_steady_clock> = "coarse_clock";

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
///
/// coarse_steady_clock moves in ticks of 1-4 ms: between two ticks every request sees the
/// same time, and a tick brings a whole tick's worth of units at once. So its quota has
/// steady_clock's rate over `coarse_period`, longer than a tick, so that the burst holds
/// what a tick brings and each load keeps its mix (see hot_quota).
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

/// distinct_keys/...: thread i decides on key i, so that two threads meet on nothing but
/// the limiter and, one time in 64 (the shards' count; the hash is seeded per storage),
/// a shard's lock.
constexpr std::array<std::string_view, 2> thread_keys = {hot_key, "user:654321"};

/// Longer than coarse_steady_clock's longest tick (4 ms), and a whole number of each
/// load's steady_period over 1000.
constexpr nanoseconds coarse_period = 8ms;

/// The quota a hot key gets under `l` with Clock: the rate is steady_clock's for every
/// clock but manual_clock, which supplies the time in steps.
template <class Clock>
quota hot_quota(const load& l) {
  if constexpr (std::is_same_v<Clock, manual_clock>) {
    return quota::per(units, period);
  } else if constexpr (std::is_same_v<Clock, coarse_steady_clock>) {
    // 800'000, 80'000 and 800 units per 8 ms: steady_clock's rate, in a burst that holds
    // two 4 ms ticks' worth.
    return quota::per(units * coarse_period / l.steady_period, coarse_period);
  } else {
    return quota::per(units, l.steady_period);
  }
}

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

/// One key, or with `key_per_thread` one key per thread, all on one limiter.
template <class Algorithm, class Clock, class Storage, class Observer = ratelimit::no_observer>
void hot(benchmark::State& state, load l, bool key_per_thread) {
  using limiter_type = ratelimit::basic_limiter<Algorithm, Clock, Storage, Observer>;
  constexpr bool manual = std::is_same_v<Clock, manual_clock>;
  if (state.thread_index() == 0) {
    if constexpr (std::is_same_v<Observer, ratelimit::metrics>) {
      shared_limiter<limiter_type> = std::make_unique<limiter_type>(
          hot_quota<Clock>(l), Clock(), Storage(), ratelimit::metrics{"bench"});
    } else {
      shared_limiter<limiter_type> =
          std::make_unique<limiter_type>(hot_quota<Clock>(l), Clock(), Storage());
    }
  }
  const std::string_view key =
      key_per_thread ? thread_keys.at(static_cast<std::size_t>(state.thread_index())) : hot_key;
  std::int64_t allowed = 0;
  for (auto _ : state) {
    limiter_type& lim = *shared_limiter<limiter_type>;
    if constexpr (manual) lim.clock().advance(l.step);
    const ratelimit::decision d = lim.try_acquire(key);
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

template <class Algorithm, class Clock, class Storage>
void many_keys(benchmark::State& state, const std::string& name, quota q) {
  using limiter_type = limiter<Algorithm, Clock, Storage>;
  constexpr bool manual = std::is_same_v<Clock, manual_clock>;
  auto& f = reuse_or_fill<limiter_type>(name, [&] {
    // Twice the keys, so that no shard reaches its share of the bound.
    auto filled = std::make_shared<filled_table<limiter_type>>(
        limiter_type(q, Clock(), Storage({.max_keys = 2 * key_count})));
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

template <class Clock>
void clock_now(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(Clock::now());
}

/// What manual_clock adds to each hot_key/.../manual_clock iteration.
void manual_clock_advance(benchmark::State& state) {
  manual_clock clock;
  for (auto _ : state) {
    clock.advance(1ns);
    benchmark::DoNotOptimize(clock.now());
  }
}

/// With a Clock, each lookup follows a read of it, as in a decision (`void`: no clock).
/// That is more than the sum of the two: steady_clock::now() orders the instruction
/// stream (rdtscp or lfence), so a lookup can no longer overlap its cache misses with the
/// next one's.
template <class Clock>
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
    if constexpr (!std::is_void_v<Clock>) benchmark::DoNotOptimize(Clock::now());
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

/// hot_key/<algorithm>/<clock>/<load><suffix>, for every load and clock.
template <class Algorithm, class Storage>
void add_hot_rows(const std::string& algorithm, const std::string& suffix) {
  const auto row = [&]<class Clock>(const load& l) {
    add("hot_key/" + algorithm + "/" + clock_name<Clock> + "/" + l.name + suffix,
        hot<Algorithm, Clock, Storage>, l, false);
  };
  for (const load& l : loads) {
    row.template operator()<steady_clock>(l);
    row.template operator()<manual_clock>(l);
    row.template operator()<coarse_steady_clock>(l);
  }
}

/// keys_1M/<algorithm>/<clock>/<load><suffix>, for every load and clock.
template <class Algorithm, class Storage>
void add_many_keys_rows(const std::string& algorithm, const std::string& suffix) {
  const auto row = [&]<class Clock>(const key_load& l) {
    const std::string name =
        "keys_1M/" + algorithm + "/" + clock_name<Clock> + "/" + l.name + suffix;
    add(name, many_keys<Algorithm, Clock, Storage>, name, l.q);
  };
  for (const key_load& l : key_loads) {
    row.template operator()<steady_clock>(l);
    row.template operator()<manual_clock>(l);
    row.template operator()<coarse_steady_clock>(l);
  }
}

template <class Algorithm>
void register_algorithm(const std::string& algorithm) {
  using ratelimit::in_memory_storage;
  using ratelimit::in_memory_storage_st;
  for (const load& l : loads) {
    add("math/" + algorithm + "/" + l.name, math<Algorithm>, l);
  }
  add_hot_rows<Algorithm, in_memory_storage>(algorithm, "");
  // The lock's cost: the same without one.
  add_hot_rows<Algorithm, in_memory_storage_st>(algorithm, "/no_lock");
  // Two threads on one limiter: on the same key, then on a key each; under_limit is the
  // allow path the peers are measured on, over_limit keeps every state mid-refill.
  for (const load& l : {loads[0], loads[1]}) {
    add("hot_key/" + algorithm + "/steady_clock/" + l.name + "/two_threads",
        hot<Algorithm, steady_clock, in_memory_storage>, l, false)
        ->Threads(2)
        ->UseRealTime();
    add("distinct_keys/" + algorithm + "/steady_clock/" + l.name + "/two_threads",
        hot<Algorithm, steady_clock, in_memory_storage>, l, true)
        ->Threads(2)
        ->UseRealTime();
  }
  // What an observer costs: none without one (the rows above), and the metrics observer's
  // counting and its two extra steady_clock reads with one.
  for (const load& l : {loads[0], loads[1]}) {
    add("hot_key/" + algorithm + "/steady_clock/" + l.name + "/metrics",
        hot<Algorithm, steady_clock, in_memory_storage, ratelimit::metrics>, l, false);
  }
  add_many_keys_rows<Algorithm, in_memory_storage>(algorithm, "");
  add_many_keys_rows<Algorithm, in_memory_storage_st>(algorithm, "/no_lock");
}

void register_all() {
  add("baseline/steady_clock_now", clock_now<steady_clock>);
  add("baseline/coarse_steady_clock_now", clock_now<coarse_steady_clock>);
  add("baseline/manual_clock_advance", manual_clock_advance);
  add("baseline/unordered_map_find/keys_1M", unordered_map_find<void>);
  add("baseline/steady_clock_now+unordered_map_find/keys_1M", unordered_map_find<steady_clock>);
  add("baseline/coarse_steady_clock_now+unordered_map_find/keys_1M",
      unordered_map_find<coarse_steady_clock>);
  register_algorithm<ratelimit::algorithms::token_bucket>("token_bucket");
  register_algorithm<ratelimit::algorithms::leaky_bucket>("leaky_bucket");
  register_algorithm<ratelimit::algorithms::fixed_window>("fixed_window");
  register_algorithm<ratelimit::algorithms::sliding_log>("sliding_log");
  register_algorithm<ratelimit::algorithms::sliding_window_counter>("sliding_window_counter");
}

/// Seconds each repetition runs for, unless --benchmark_min_time says otherwise: Google
/// Benchmark's default (0.5 s) would make a run of every row with
/// --benchmark_repetitions=10 last over 20 minutes on 2 cores. 0.2 s still counts 10^6
/// decisions or more a repetition (half a million with 10^6 keys). A row's own MinTime() would
/// change its name (".../min_time:0.200"), so the default is set for all rows at once.
char default_min_time[] = "--benchmark_min_time=0.2";

/// argv, with default_min_time in front unless it sets --benchmark_min_time itself.
std::vector<char*> with_default_min_time(int argc, char** argv) {
  std::vector<char*> out(argv, argv + argc);
  const bool given = std::any_of(out.begin() + 1, out.end(), [](const char* arg) {
    return std::string_view{arg}.starts_with("--benchmark_min_time");
  });
  if (!given) out.insert(out.begin() + 1, default_min_time);
  out.push_back(nullptr);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  std::vector<char*> args = with_default_min_time(argc, argv);
  int count = static_cast<int>(args.size()) - 1;
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
