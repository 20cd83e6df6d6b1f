// What one decision through redis_storage costs against a local redis-server, and the raw
// round trips it is judged against, in one run so that their ratios hold: EVALSHA of
// `return 1` and PING over one bare hiredis connection, and EVALSHA of the token bucket's
// own script with the arguments the storage sends (the server's share of a decision).
// `paired/...` interleaves decisions with raw round trips, so that their ratio holds even
// on a host whose load changes from one minute to the next.
//
// The server's port comes from RATELIMIT_REDIS_PORT; benchmarks/redis_run.sh starts a
// throwaway server and sets it. Every benchmark is timed on the wall clock: a client
// mostly waits for the server, so its CPU time is not the cost of a decision, but the
// CPU column still shows what the client spends per iteration (all threads together).

#include <benchmark/benchmark.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <latch>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ratelimit/redis.hpp"

namespace {

using namespace std::chrono_literals;
using ratelimit::quota;
using ratelimit::time_source;
using std::chrono::steady_clock;
using std::chrono::system_clock;

template <class Algorithm, class Clock>
using limiter = ratelimit::basic_limiter<Algorithm, Clock, ratelimit::redis_storage>;

int redis_port = 0;

/// The user keys every benchmark visits in turn: "user:0" ... "user:4095".
constexpr std::size_t key_count = 4096;

const std::vector<std::string>& keys() {
  static const std::vector<std::string> k = [] {
    std::vector<std::string> out;
    out.reserve(key_count);
    for (std::size_t i = 0; i < key_count; ++i) out.push_back("user:" + std::to_string(i));
    return out;
  }();
  return k;
}

/// 1000 a second per key: at the rates reached here (at most some 10^5 decisions a second
/// over 4096 keys, so under 50 a second per key) every request is admitted, and `allowed`
/// shows it. An admission is the dearer path on the server: one GET and one SET.
const quota per_key = quota::per_second(1000);

ratelimit::redis_options options(time_source time, std::size_t pool_size = 8) {
  ratelimit::redis_options o;
  o.port = redis_port;
  o.time = time;
  o.pool_size = pool_size;
  // Far above any wait measured here: a decision Redis did not make (degraded) would
  // measure the failure policy instead, so a benchmark that sees one reports an error.
  o.timeout = 1s;
  return o;
}

// ---------------------------------------------------------------------------------------
// Latencies and counters.

constexpr int max_threads = 64;

/// Nanoseconds per call, one log per thread of the running benchmark, allocated before its
/// timed loop. Each thread writes only its own, in its loop; thread 0 reads them all after
/// its loop, whose closing barrier (every thread's) orders the writes before the reads.
/// Every thread runs the same number of iterations.
std::array<std::vector<std::int64_t>, max_threads> latency_logs;

class latency_log {
 public:
  explicit latency_log(const benchmark::State& state)
      : log_(latency_logs[static_cast<std::size_t>(state.thread_index())]) {
    log_.resize(static_cast<std::size_t>(state.max_iterations));
  }

  void record(steady_clock::duration d) noexcept { log_[next_++] = d.count(); }

 private:
  std::vector<std::int64_t>& log_;
  std::size_t next_ = 0;
};

/// The nearest-rank percentile `p` of `v`, in microseconds; reorders `v`.
double percentile_us(std::vector<std::int64_t>& v, double p) {
  if (v.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
  const auto nth = v.begin() + static_cast<std::ptrdiff_t>(std::max<std::size_t>(rank, 1) - 1);
  std::nth_element(v.begin(), nth, v.end());
  return static_cast<double>(*nth) / 1000.0;
}

/// p50 and p99 of every call of every thread, as counters of thread 0 (counters of the
/// threads are summed; the others set none). With several threads, also the mean latency
/// of the luckiest and of the unluckiest thread: far apart, callers are not served in turn.
/// Call after the timed loop.
void report_latencies(benchmark::State& state) {
  if (state.thread_index() != 0) return;
  const auto count = static_cast<std::ptrdiff_t>(state.iterations());
  std::vector<std::int64_t> all;
  double fastest = 0;
  double slowest = 0;
  for (std::size_t t = 0; t < static_cast<std::size_t>(state.threads()); ++t) {
    const auto begin = latency_logs[t].begin();
    double sum = 0;
    for (auto it = begin; it != begin + count; ++it) sum += static_cast<double>(*it);
    const double mean = count == 0 ? 0.0 : sum / static_cast<double>(count) / 1000.0;
    fastest = t == 0 ? mean : std::min(fastest, mean);
    slowest = std::max(slowest, mean);
    all.insert(all.end(), begin, begin + count);
  }
  state.counters["p50_us"] = percentile_us(all, 0.50);
  state.counters["p99_us"] = percentile_us(all, 0.99);
  if (state.threads() > 1) {
    state.counters["thread_mean_min_us"] = fastest;
    state.counters["thread_mean_max_us"] = slowest;
  }
}

/// What the decisions said: admissions, and any that Redis did not make.
struct tally {
  std::int64_t allowed = 0;
  std::int64_t degraded = 0;

  void add(const ratelimit::decision& d) noexcept {
    allowed += d.allowed;
    degraded += d.degraded;
  }
};

void report(benchmark::State& state, const tally& t, std::int64_t decisions_per_iteration) {
  const auto per_iteration = static_cast<double>(decisions_per_iteration);
  state.counters["allowed"] = benchmark::Counter(static_cast<double>(t.allowed) / per_iteration,
                                                 benchmark::Counter::kAvgIterations);
  state.counters["decisions_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * per_iteration, benchmark::Counter::kIsRate);
  report_latencies(state);
  if (t.degraded > 0) {
    state.SkipWithError(
        (std::to_string(t.degraded) + " decisions degraded: Redis did not make them").c_str());
  }
}

/// One decision, so that the connection is open and the script loaded before timing.
template <class Limiter>
void warm_up(Limiter& lim) {
  const ratelimit::decision d = lim.try_acquire("warm-up");
  benchmark::DoNotOptimize(d);
}

// ---------------------------------------------------------------------------------------
// The limiter.

/// One thread, one decision per iteration, the keys in turn.
template <class Algorithm, class Clock>
void sequential(benchmark::State& state, time_source time) {
  limiter<Algorithm, Clock> lim(per_key, Clock(), ratelimit::redis_storage(options(time)));
  warm_up(lim);
  const std::vector<std::string>& k = keys();
  std::size_t i = 0;
  tally t;
  {
    latency_log log(state);
    for (auto _ : state) {
      const auto start = steady_clock::now();
      const ratelimit::decision d = lim.try_acquire(k[i]);
      log.record(steady_clock::now() - start);
      t.add(d);
      if (++i == k.size()) i = 0;
    }
  }
  report(state, t, 1);
}

/// One thread, one try_acquire_many of `state.range(0)` keys per iteration.
template <class Algorithm, class Clock>
void batch(benchmark::State& state, time_source time) {
  const auto size = static_cast<std::size_t>(state.range(0));
  limiter<Algorithm, Clock> lim(per_key, Clock(), ratelimit::redis_storage(options(time)));
  warm_up(lim);
  std::vector<ratelimit::request> requests;
  for (const std::string& key : keys()) requests.push_back({key, 1});
  std::size_t offset = 0;  // key_count is a multiple of every size
  tally t;
  {
    latency_log log(state);
    for (auto _ : state) {
      const auto start = steady_clock::now();
      const std::vector<ratelimit::decision> out =
          lim.try_acquire_many(std::span{requests}.subspan(offset, size));
      log.record(steady_clock::now() - start);
      for (const ratelimit::decision& d : out) t.add(d);
      offset += size;
      if (offset == requests.size()) offset = 0;
    }
  }
  report(state, t, static_cast<std::int64_t>(size));
}

/// The limiter the threads of a concurrent benchmark share: built by thread 0 before the
/// timed loop, used by the others only after the barrier that starts it.
std::unique_ptr<limiter<ratelimit::algorithms::token_bucket, steady_clock>> shared_limiter;

/// `state.threads()` threads, one limiter, a pool of `state.range(0)` connections.
void concurrent(benchmark::State& state) {
  if (state.thread_index() == 0) {
    const auto pool = static_cast<std::size_t>(state.range(0));
    shared_limiter = std::make_unique<limiter<ratelimit::algorithms::token_bucket, steady_clock>>(
        per_key, steady_clock(), ratelimit::redis_storage(options(time_source::server, pool)));
    // Opens the pool's connections before timing: as many callers as connections at once.
    std::latch together{static_cast<std::ptrdiff_t>(pool)};
    std::vector<std::jthread> callers;
    for (std::size_t c = 0; c < pool; ++c) {
      callers.emplace_back([&] {
        together.arrive_and_wait();
        warm_up(*shared_limiter);
      });
    }
  }
  const std::vector<std::string>& k = keys();
  // Each thread starts elsewhere in the keys, so that threads rarely meet on one key.
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * (k.size() / max_threads);
  tally t;
  {
    latency_log log(state);
    for (auto _ : state) {
      const auto start = steady_clock::now();
      const ratelimit::decision d = shared_limiter->try_acquire(k[i]);
      log.record(steady_clock::now() - start);
      t.add(d);
      if (++i == k.size()) i = 0;
    }
  }
  report(state, t, 1);
  if (state.thread_index() == 0) shared_limiter.reset();
}

// ---------------------------------------------------------------------------------------
// One hot key. While Redis answers, every decision is its round trip, rejections as well:
// the storage's deny cache (storage/redis/deny_cache.hpp) is read only for decisions Redis
// did not make (by the failure policy); a decision Redis made only updates it afterwards
// (`remember` on a rejection, `forget` on an admission). So the reject rows measure the
// script's rejection path on the server, not a local answer.

/// hot_key/.../allow: a quota so large that every call passes. The short period keeps the
/// sliding log's list to the calls of the last 10 ms (a hundred or so), not a second's.
const quota allow_all = quota::per(1'000'000, 10ms);

/// hot_key/.../reject: one a day, used up before timing (or by an earlier repetition: the
/// key outlives the limiter), so every timed call is rejected.
const quota reject_all = quota::per(1, 24h);

/// The limiter the threads of a hot-key benchmark share, as in `concurrent`.
template <class Limiter>
std::unique_ptr<Limiter> shared_hot_limiter;

/// Opens `n` of the pool's connections before timing: `n` callers at once.
template <class Limiter>
void open_connections(Limiter& lim, std::size_t n) {
  std::latch together{static_cast<std::ptrdiff_t>(n)};
  std::vector<std::jthread> callers;
  for (std::size_t c = 0; c < n; ++c) {
    callers.emplace_back([&] {
      together.arrive_and_wait();
      warm_up(lim);
    });
  }
}

/// `state.threads()` threads on one limiter, on one key (`key`), or with `key_per_thread`
/// on a key each (`key` + ":" + the thread's index). `reject`: every call rejected,
/// else every call admitted.
template <class Algorithm, class Clock>
void hot_key(benchmark::State& state, time_source time, bool reject, bool key_per_thread) {
  using limiter_type = limiter<Algorithm, Clock>;
  const std::string key =
      std::string(time == time_source::server ? "hot:server_time:" : "hot:client_time:") +
      (reject ? "reject" : "allow") +
      (key_per_thread ? ":" + std::to_string(state.thread_index()) : std::string());
  if (state.thread_index() == 0) {
    auto& lim = shared_hot_limiter<limiter_type>;
    lim = std::make_unique<limiter_type>(reject ? reject_all : allow_all, Clock(),
                                         ratelimit::redis_storage(options(time)));
    open_connections(*lim, static_cast<std::size_t>(state.threads()));
    // Uses up the quota of a key to reject (one call, or none if an earlier run did).
    for (int tries = 0; reject && !key_per_thread && tries < 10; ++tries) {
      if (!lim->try_acquire(key).allowed) break;
    }
  }
  tally t;
  {
    latency_log log(state);
    for (auto _ : state) {
      const auto start = steady_clock::now();
      const ratelimit::decision d = shared_hot_limiter<limiter_type>->try_acquire(key);
      log.record(steady_clock::now() - start);
      t.add(d);
    }
  }
  report(state, t, 1);
  if (state.thread_index() == 0) shared_hot_limiter<limiter_type>.reset();
}

// ---------------------------------------------------------------------------------------
// Baselines: one bare hiredis connection, no pool, no decision.

struct context_free {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};
using context_ptr = std::unique_ptr<redisContext, context_free>;

struct reply_free {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_free>;

context_ptr connect_raw() {
  const timeval second{1, 0};
  context_ptr c{redisConnectWithTimeout("127.0.0.1", redis_port, second)};
  if (c == nullptr || c->err != 0 || redisSetTimeout(c.get(), second) != REDIS_OK) return {};
  return c;
}

void append_argv(redisContext* c, std::span<const std::string_view> argv) {
  std::array<const char*, 16> pointers{};
  std::array<std::size_t, 16> lengths{};
  for (std::size_t i = 0; i < argv.size(); ++i) {
    pointers[i] = argv[i].data();
    lengths[i] = argv[i].size();
  }
  redisAppendCommandArgv(c, static_cast<int>(argv.size()), pointers.data(), lengths.data());
}

reply_ptr next_reply(redisContext* c) {
  void* raw = nullptr;
  if (redisGetReply(c, &raw) != REDIS_OK) return {};
  return reply_ptr{static_cast<redisReply*>(raw)};
}

/// One round trip, as a client library without a pipeline makes it.
reply_ptr command(redisContext* c, std::span<const std::string_view> argv) {
  std::array<const char*, 16> pointers{};
  std::array<std::size_t, 16> lengths{};
  for (std::size_t i = 0; i < argv.size(); ++i) {
    pointers[i] = argv[i].data();
    lengths[i] = argv[i].size();
  }
  return reply_ptr{static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), pointers.data(), lengths.data()))};
}

/// The SHA1 the server gives `source`, or "" if it did not load it.
std::string script_load(redisContext* c, std::string_view source) {
  const std::array<std::string_view, 3> argv{"SCRIPT", "LOAD", source};
  const reply_ptr r = command(c, argv);
  if (r == nullptr || r->type != REDIS_REPLY_STRING) return {};
  return {r->str, r->len};
}

constexpr std::string_view trivial_script = "return 1";

/// EVALSHA of an algorithm's own script, key after key, with the arguments redis_storage
/// sends for `per_key` (storage/redis/scripts.hpp gives the calling contract): the
/// server's work for a decision, and none of the library's. The keys have another prefix
/// than the limiter's, so that their state is their own.
class script_calls {
 public:
  /// Loads A's script over `c`; loaded() says whether that worked.
  template <class Algorithm>
  static script_calls load(redisContext* c, time_source time, std::size_t first_key = 0) {
    using script = ratelimit::detail::redis::script<Algorithm>;
    static_assert(script::keys == 1);
    script_calls calls;
    calls.sha_ = script_load(c, script::source);
    calls.client_time_ = time == time_source::client;
    const ratelimit::redis_options o = options(time);
    const std::int64_t unit = calls.client_time_ ? o.client_time_unit.count() : 1000;
    calls.unit_ = std::to_string(unit);
    calls.limit_ = std::to_string(per_key.limit);
    calls.period_ = std::to_string(per_key.period.count() / unit);
    calls.burst_ = std::to_string(per_key.burst);
    calls.slack_ = std::to_string(calls.client_time_ ? o.client_ttl_slack.count() : 0);
    calls.keys_.reserve(key_count);
    for (const std::string& user_key : keys()) {
      std::string name;
      ratelimit::detail::redis::key_name(name, "ratelimit-raw:", script::name, 1, user_key);
      calls.keys_.push_back(std::move(name));
    }
    calls.next_ = first_key % key_count;
    return calls;
  }

  bool loaded() const noexcept { return !sha_.empty(); }

  /// The next key's command, valid until the next call. On client time, `now` is
  /// system_clock's, read here, as the limiter reads it.
  std::span<const std::string_view> next() {
    std::string_view now;  // empty: the script reads TIME
    if (client_time_) {
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                          system_clock::now().time_since_epoch())
                          .count();
      const auto end = std::to_chars(now_.data(), now_.data() + now_.size(), us).ptr;
      now = {now_.data(), static_cast<std::size_t>(end - now_.data())};
    }
    argv_ = {"EVALSHA", sha_, "1", keys_[next_], now, limit_, period_, burst_, "1", unit_, slack_};
    if (++next_ == keys_.size()) next_ = 0;
    return argv_;
  }

 private:
  std::string sha_;
  bool client_time_ = false;
  std::string limit_, period_, burst_, unit_, slack_;
  std::vector<std::string> keys_;
  std::size_t next_ = 0;
  std::array<char, 24> now_{};
  std::array<std::string_view, 11> argv_;
};

bool is_decision_reply(const redisReply* r) {
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 5) return false;
  return std::all_of(r->element, r->element + r->elements,
                     [](const redisReply* e) { return e->type == REDIS_REPLY_INTEGER; });
}
bool is_one(const redisReply* r) {
  return r != nullptr && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
}

/// What a raw baseline runs: each iteration sends one command (or a pipeline of them).
enum class raw_command { ping, evalsha_return_1, evalsha_token_bucket };

/// Round trips over one connection per thread; `pipeline` commands per iteration.
void raw(benchmark::State& state, raw_command what, std::size_t pipeline) {
  const context_ptr c = connect_raw();
  if (c == nullptr) {
    state.SkipWithError("cannot connect to redis-server");
    return;
  }
  std::string sha;
  script_calls calls;
  bool loaded = true;
  switch (what) {
    case raw_command::ping:
      break;
    case raw_command::evalsha_return_1:
      sha = script_load(c.get(), trivial_script);
      loaded = !sha.empty();
      break;
    case raw_command::evalsha_token_bucket:
      // Each thread starts elsewhere in the keys, as the concurrent callers do.
      calls = script_calls::load<ratelimit::algorithms::token_bucket>(
          c.get(), time_source::server,
          static_cast<std::size_t>(state.thread_index()) * (key_count / max_threads));
      loaded = calls.loaded();
      break;
  }
  if (!loaded) {
    state.SkipWithError("SCRIPT LOAD failed");
    return;
  }
  const std::array<std::string_view, 1> ping{"PING"};
  const std::array<std::string_view, 3> evalsha_return_1{"EVALSHA", sha, "0"};
  const auto argv = [&]() -> std::span<const std::string_view> {
    switch (what) {
      case raw_command::ping:
        return ping;
      case raw_command::evalsha_return_1:
        return evalsha_return_1;
      case raw_command::evalsha_token_bucket:
        break;
    }
    return calls.next();
  };
  const auto valid = [&](const redisReply* r) {
    switch (what) {
      case raw_command::ping:
        return r != nullptr && r->type == REDIS_REPLY_STATUS;
      case raw_command::evalsha_return_1:
        return is_one(r);
      case raw_command::evalsha_token_bucket:
        break;
    }
    return is_decision_reply(r);
  };

  std::int64_t failed = 0;
  {
    latency_log log(state);
    for (auto _ : state) {
      const auto start = steady_clock::now();
      if (pipeline == 1) {
        const reply_ptr r = command(c.get(), argv());
        failed += !valid(r.get());
      } else {
        for (std::size_t n = 0; n < pipeline; ++n) append_argv(c.get(), argv());
        for (std::size_t n = 0; n < pipeline; ++n) {
          const reply_ptr r = next_reply(c.get());
          failed += !valid(r.get());
        }
      }
      log.record(steady_clock::now() - start);
    }
  }
  state.counters["commands_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * static_cast<double>(pipeline),
                         benchmark::Counter::kIsRate);
  report_latencies(state);
  if (failed > 0) state.SkipWithError((std::to_string(failed) + " replies were wrong").c_str());
}

// ---------------------------------------------------------------------------------------
// The ratio the targets are stated in, measured pairwise: the host is shared, and a ratio
// of two benchmarks run a minute apart moves with whatever else ran in that minute.

/// Each iteration makes three calls, in rotating order, and times each: a raw `EVALSHA` of
/// `return 1` (the round trip), a raw `EVALSHA` of the algorithm's own script with the
/// storage's arguments (the round trip plus the server's work), and a decision through the
/// limiter (plus the library's work). Both raw calls go over one bare connection of
/// their own. The iteration's time is the sum; the counters give each call's mean and p50
/// in microseconds, and decision / round trip.
template <class Algorithm, class Clock>
void paired(benchmark::State& state, time_source time) {
  limiter<Algorithm, Clock> lim(per_key, Clock(), ratelimit::redis_storage(options(time)));
  warm_up(lim);
  const context_ptr c = connect_raw();
  const std::string sha = c == nullptr ? std::string() : script_load(c.get(), trivial_script);
  script_calls calls;
  if (!sha.empty()) calls = script_calls::load<Algorithm>(c.get(), time);
  if (!calls.loaded()) {
    state.SkipWithError("cannot connect to redis-server, or SCRIPT LOAD failed");
    return;
  }
  const std::array<std::string_view, 3> evalsha_return_1{"EVALSHA", sha, "0"};
  const auto size = static_cast<std::size_t>(state.max_iterations);
  std::array<std::vector<std::int64_t>, 3> ns{std::vector<std::int64_t>(size),
                                              std::vector<std::int64_t>(size),
                                              std::vector<std::int64_t>(size)};
  enum { round_trip, script, decision };
  const std::vector<std::string>& k = keys();
  std::size_t i = 0;
  std::size_t n = 0;
  std::int64_t failed = 0;
  tally t;
  const auto call = [&](int which) {
    const auto start = steady_clock::now();
    switch (which) {
      case round_trip: {
        const reply_ptr r = command(c.get(), evalsha_return_1);
        failed += !is_one(r.get());
        break;
      }
      case script: {
        const reply_ptr r = command(c.get(), calls.next());
        failed += !is_decision_reply(r.get());
        break;
      }
      default:
        t.add(lim.try_acquire(k[i]));
        if (++i == k.size()) i = 0;
    }
    ns[static_cast<std::size_t>(which)][n] = (steady_clock::now() - start).count();
  };
  for (auto _ : state) {
    const int first = static_cast<int>(n % 3);
    for (int j = 0; j < 3; ++j) call((first + j) % 3);
    ++n;
  }
  const char* names[] = {"round_trip", "script", "decision"};
  std::array<double, 3> mean{};
  std::array<double, 3> p50{};
  for (std::size_t w = 0; w < 3; ++w) {
    ns[w].resize(n);
    double sum = 0;
    for (const std::int64_t v : ns[w]) sum += static_cast<double>(v);
    mean[w] = n == 0 ? 0.0 : sum / static_cast<double>(n) / 1000.0;
    p50[w] = percentile_us(ns[w], 0.50);
    state.counters[std::string(names[w]) + "_us"] = mean[w];
    state.counters[std::string(names[w]) + "_p50_us"] = p50[w];
  }
  if (mean[round_trip] > 0 && p50[round_trip] > 0) {
    state.counters["ratio"] = mean[decision] / mean[round_trip];
    state.counters["ratio_p50"] = p50[decision] / p50[round_trip];
  }
  state.counters["allowed"] =
      benchmark::Counter(static_cast<double>(t.allowed), benchmark::Counter::kAvgIterations);
  if (failed > 0) state.SkipWithError((std::to_string(failed) + " replies were wrong").c_str());
  if (t.degraded > 0) {
    state.SkipWithError(
        (std::to_string(t.degraded) + " decisions degraded: Redis did not make them").c_str());
  }
}

// ---------------------------------------------------------------------------------------

template <class Fn, class... Args>
benchmark::internal::Benchmark* add(const std::string& name, Fn fn, Args... args) {
  return benchmark::RegisterBenchmark(name.c_str(), fn, args...)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

template <class Algorithm>
void register_algorithm(const std::string& algorithm) {
  add("sequential/" + algorithm + "/server_time", sequential<Algorithm, steady_clock>,
      time_source::server);
  // A fleet's clock: system_clock, in the default unit of 1 us.
  add("sequential/" + algorithm + "/client_time", sequential<Algorithm, system_clock>,
      time_source::client);
  add("paired/" + algorithm + "/server_time", paired<Algorithm, steady_clock>, time_source::server);
  add("paired/" + algorithm + "/client_time", paired<Algorithm, system_clock>, time_source::client);
  for (const bool reject : {false, true}) {
    const std::string path = reject ? "/reject" : "/allow";
    add("hot_key/" + algorithm + "/server_time" + path, hot_key<Algorithm, steady_clock>,
        time_source::server, reject, false);
    add("hot_key/" + algorithm + "/client_time" + path, hot_key<Algorithm, system_clock>,
        time_source::client, reject, false);
  }
  // Two callers on one limiter, every call admitted: meeting on one key, then on a key each.
  add("two_threads_one_key/" + algorithm + "/server_time", hot_key<Algorithm, steady_clock>,
      time_source::server, false, false)
      ->Threads(2);
  add("two_threads_distinct_keys/" + algorithm + "/server_time", hot_key<Algorithm, steady_clock>,
      time_source::server, false, true)
      ->Threads(2);
}

constexpr std::array<std::size_t, 3> batch_sizes{16, 64, 256};

void register_all() {
  constexpr std::size_t one = 1;
  add("baseline/ping", raw, raw_command::ping, one);
  add("baseline/evalsha_return_1", raw, raw_command::evalsha_return_1, one)
      ->Threads(1)
      ->Threads(8)
      ->Threads(64);
  add("baseline/evalsha_token_bucket_script", raw, raw_command::evalsha_token_bucket, one)
      ->Threads(1)
      ->Threads(8)
      ->Threads(64);
  for (const std::size_t size : batch_sizes) {
    const std::string n = std::to_string(size);
    add("baseline/pipelined/evalsha_return_1/" + n, raw, raw_command::evalsha_return_1, size);
    add("baseline/pipelined/evalsha_token_bucket_script/" + n, raw,
        raw_command::evalsha_token_bucket, size);
  }

  register_algorithm<ratelimit::algorithms::token_bucket>("token_bucket");
  register_algorithm<ratelimit::algorithms::leaky_bucket>("leaky_bucket");
  register_algorithm<ratelimit::algorithms::fixed_window>("fixed_window");
  register_algorithm<ratelimit::algorithms::sliding_log>("sliding_log");
  register_algorithm<ratelimit::algorithms::sliding_window_counter>("sliding_window_counter");

  using ratelimit::algorithms::token_bucket;
  for (auto* b : {add("batch/token_bucket/server_time", batch<token_bucket, steady_clock>,
                      time_source::server),
                  add("batch/token_bucket/client_time", batch<token_bucket, system_clock>,
                      time_source::client)}) {
    b->ArgName("keys");
    for (const std::size_t size : batch_sizes) b->Arg(static_cast<std::int64_t>(size));
  }

  add("concurrent/token_bucket/server_time", concurrent)
      ->ArgName("pool")
      ->Arg(8)
      ->Arg(16)
      ->Threads(8)
      ->Threads(64);
  // As many connections as callers: no caller ever waits for one, which tells the pool's
  // queueing apart from the server's.
  add("concurrent/token_bucket/server_time", concurrent)->ArgName("pool")->Arg(64)->Threads(64);
}

/// The port in RATELIMIT_REDIS_PORT: 0 if unset, -1 if not a port.
int port_from_environment() {
  const char* text = std::getenv("RATELIMIT_REDIS_PORT");
  if (text == nullptr || *text == '\0') return 0;
  const std::string_view s{text};
  int port = 0;
  const auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), port);
  if (error != std::errc{} || end != s.data() + s.size() || port <= 0 || port > 65535) return -1;
  return port;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  redis_port = port_from_environment();
  if (redis_port == 0) {
    std::fprintf(stderr,
                 "redis_bench: skipped: RATELIMIT_REDIS_PORT is not set. Run "
                 "benchmarks/redis_run.sh, or start redis-server on 127.0.0.1 and set "
                 "RATELIMIT_REDIS_PORT to its port.\n");
    return 0;
  }
  if (redis_port < 0) {
    std::fprintf(stderr, "redis_bench: RATELIMIT_REDIS_PORT must be a port in [1, 65535]\n");
    return 2;
  }
  {
    const context_ptr c = connect_raw();
    const std::array<std::string_view, 1> ping{"PING"};
    if (c == nullptr || command(c.get(), ping) == nullptr) {
      std::fprintf(stderr, "redis_bench: no redis-server answers on 127.0.0.1:%d\n", redis_port);
      return 1;
    }
  }
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
