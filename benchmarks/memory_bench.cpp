// Bytes per key at 10^6 keys, for each algorithm, measured rather than computed: this
// program replaces the global operator new and delete to count the bytes live on the
// heap, and reads the resident set size from /proc/self/statm beside it (heap_counter.hpp,
// shared with flood_check). Each benchmark
// runs once (its time is the fill's) and reports counters:
//   bytes_per_key      heap bytes live after the fill minus before, over the keys held
//                      (as malloc_usable_size counts them: what malloc hands out, without
//                      its 8-byte chunk headers);
//   rss_bytes_per_key  growth of the resident set over the same fill, over the keys held;
//   keys               keys the storage holds afterwards (10^6: nothing was evicted).
// Then the flood: 10^7 distinct keys into a storage bounded to 10^6 (`max_keys`), to show
// that the bound holds and what it costs at its peak:
//   peak_heap_bytes    highest heap bytes live during the flood, minus before it (the
//                      replaced operator new keeps the maximum of its live counter);
//   peak_rss_bytes     highest resident set during the flood (read every 2^16 keys and
//                      at the end), minus before it;
//   keys_after         keys the storage holds at the end: at most max_keys;
//   peak_heap_bytes_per_max_key   peak_heap_bytes / max_keys.
// The resident set never shrinks back entirely when memory is freed (malloc_trim gives
// back what it can), so a benchmark that runs after another may reuse pages the other
// left resident and show less growth than it would alone. The flood is registered last
// for that reason; to be sure of any one row, run it alone (--benchmark_filter).
// Linux and glibc only, like the numbers it exists to produce.

#include <benchmark/benchmark.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "heap_counter.hpp"
#include "ratelimit/ratelimit.hpp"

namespace {

using heap_counter::live_bytes;
using heap_counter::peak_bytes;
using heap_counter::resident_bytes;

constexpr std::size_t key_count = 1'000'000;

/// "user:0" ... "user:999999": up to 11 bytes, held inline by the tables (15 at most).
const std::vector<std::string>& keys() {
  static const std::vector<std::string> all = [] {
    std::vector<std::string> k;
    k.reserve(key_count);
    for (std::size_t i = 0; i < key_count; ++i) k.push_back("user:" + std::to_string(i));
    return k;
  }();
  return all;
}

/// Fills a table by calling `fill` once per key and reports what the table grew by.
template <class Fill>
void measure(benchmark::State& state, Fill fill) {
  keys();
  for (auto _ : state) {
    // Gives back what earlier benchmarks freed, so that the resident set grows with this
    // table's pages rather than reusing theirs.
    malloc_trim(0);
    const std::int64_t bytes_before = live_bytes.load();
    const std::int64_t resident_before = resident_bytes();
    std::int64_t bytes_after = 0;
    std::int64_t resident_after = 0;
    const std::size_t held = fill([&] {
      bytes_after = live_bytes.load();
      resident_after = resident_bytes();
    });
    const auto per_key = [&](std::int64_t bytes) {
      return static_cast<double>(bytes) / static_cast<double>(held == 0 ? 1 : held);
    };
    state.counters["bytes_per_key"] = per_key(bytes_after - bytes_before);
    state.counters["rss_bytes_per_key"] = per_key(resident_after - resident_before);
    state.counters["keys"] = static_cast<double>(held);
  }
}

template <class Algorithm>
void limiter_bytes(benchmark::State& state) {
  measure(state, [](auto measure_now) {
    using limiter =
        ratelimit::basic_limiter<Algorithm, ratelimit::manual_clock, ratelimit::in_memory_storage>;
    // One request a key, 100ns apart, against 1000 an hour: each key is held with one
    // unit used, as in a busy server's table. Twice the keys as the bound: no eviction.
    limiter l{ratelimit::quota::per_hour(1000), ratelimit::manual_clock(),
              ratelimit::in_memory_storage({.max_keys = 2 * key_count})};
    for (const std::string& key : keys()) {
      l.clock().advance(std::chrono::nanoseconds{100});
      benchmark::DoNotOptimize(l.try_acquire(key));
    }
    measure_now();
    return l.storage().size();
  });
}

/// For comparison: the node-based map a first attempt would use, holding the same state.
void unordered_map_bytes(benchmark::State& state) {
  measure(state, [](auto measure_now) {
    std::unordered_map<std::string, ratelimit::algorithms::token_bucket::state> map;
    for (const std::string& key : keys()) map.try_emplace(key);
    measure_now();
    return map.size();
  });
}

constexpr std::size_t flood_keys = 10'000'000;
constexpr std::size_t flood_max_keys = 1'000'000;

/// 10^7 distinct keys ("flood:0" ... "flood:9999999", up to 13 bytes, held inline), one
/// request each, as fast as the loop runs, into a token bucket whose storage holds at most
/// 10^6 keys. The time is supplied, 100 ns a request, against 1000 an hour: no key gets
/// back to fresh during the flood, so every key past the bound evicts one still in use,
/// the bound's worst case. The keys are formatted in a buffer: the flood allocates nothing
/// of its own, so the heap counted is the storage's.
void flood(benchmark::State& state) {
  using limiter = ratelimit::basic_limiter<ratelimit::algorithms::token_bucket,
                                           ratelimit::manual_clock, ratelimit::in_memory_storage>;
  for (auto _ : state) {
    malloc_trim(0);
    const std::int64_t bytes_before = live_bytes.load();
    const std::int64_t resident_before = resident_bytes();
    peak_bytes.store(bytes_before);
    std::int64_t resident_peak = resident_before;
    std::size_t held = 0;
    {
      limiter l{ratelimit::quota::per_hour(1000), ratelimit::manual_clock(),
                ratelimit::in_memory_storage({.max_keys = flood_max_keys})};
      heap_counter::numbered_keys key("flood:");
      for (std::size_t i = 0; i < flood_keys; ++i) {
        l.clock().advance(std::chrono::nanoseconds{100});
        benchmark::DoNotOptimize(l.try_acquire(key[i]));
        if ((i & 0xffff) == 0xffff) resident_peak = std::max(resident_peak, resident_bytes());
      }
      resident_peak = std::max(resident_peak, resident_bytes());
      held = l.storage().size();
    }
    const std::int64_t peak = peak_bytes.load() - bytes_before;
    state.counters["peak_heap_bytes"] = static_cast<double>(peak);
    state.counters["peak_rss_bytes"] = static_cast<double>(resident_peak - resident_before);
    state.counters["keys_after"] = static_cast<double>(held);
    state.counters["peak_heap_bytes_per_max_key"] =
        static_cast<double>(peak) / static_cast<double>(flood_max_keys);
  }
}

}  // namespace

BENCHMARK(limiter_bytes<ratelimit::algorithms::token_bucket>)
    ->Name("bytes_per_key/token_bucket")
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(limiter_bytes<ratelimit::algorithms::leaky_bucket>)
    ->Name("bytes_per_key/leaky_bucket")
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(limiter_bytes<ratelimit::algorithms::fixed_window>)
    ->Name("bytes_per_key/fixed_window")
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(limiter_bytes<ratelimit::algorithms::sliding_window_counter>)
    ->Name("bytes_per_key/sliding_window_counter")
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(limiter_bytes<ratelimit::algorithms::sliding_log>)
    ->Name("bytes_per_key/sliding_log")
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(unordered_map_bytes)
    ->Name("bytes_per_key/baseline/unordered_map")
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
// Last: see the resident set's caveat at the top.
BENCHMARK(flood)->Name("flood/token_bucket")->Iterations(1)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
