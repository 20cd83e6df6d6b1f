#pragma once

#include <hiredis/hiredis.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ratelimit/algorithm.hpp"
#include "ratelimit/decision.hpp"
#include "ratelimit/detail/wide_math.hpp"
#include "ratelimit/observer.hpp"
#include "ratelimit/quota.hpp"
#include "ratelimit/storage.hpp"
#include "ratelimit/storage/in_memory.hpp"
#include "ratelimit/storage/redis/booking.hpp"
#include "ratelimit/storage/redis/circuit_breaker.hpp"
#include "ratelimit/storage/redis/connection_pool.hpp"
#include "ratelimit/storage/redis/deny_cache.hpp"
#include "ratelimit/storage/redis/key_name.hpp"
#include "ratelimit/storage/redis/load_script.hpp"
#include "ratelimit/storage/redis/reply.hpp"
#include "ratelimit/storage/redis/scripts.hpp"
#include "ratelimit/storage/redis/sha1.hpp"

namespace ratelimit {

/// What a decision is when Redis cannot make it (down, slow, refusing). Whatever the
/// policy, a key Redis rejected stays rejected for its retry_after, and the decision says
/// `degraded`.
enum class failure_policy {
  fail_open,       ///< admit: availability first
  fail_closed,     ///< reject, retry_after = the probe interval: protection first
  local_fallback,  ///< decide in this process, on the quota divided by fallback_instances
};

/// Whose clock a decision reads.
enum class time_source {
  server,  ///< the script reads Redis's TIME: app servers with skewed clocks agree
  client,  ///< the limiter's clock: deterministic, as tests need
};

struct redis_options {
  std::string host = "127.0.0.1";
  int port = 6379;
  /// Bounds a whole decision: waiting for a connection, connecting, the command.
  std::chrono::milliseconds timeout{50};
  /// Starts every key; must not contain `{` or `}`, which would move the cluster slot.
  std::string key_prefix = "ratelimit:";
  failure_policy on_failure = failure_policy::fail_open;
  time_source time = time_source::server;
  /// Connections shared by every thread using the storage and its copies.
  std::size_t pool_size = 8;
  /// local_fallback: how many processes share the quota while Redis is away. Each one then
  /// allows limit / fallback_instances and burst / fallback_instances (at least 1).
  std::int64_t fallback_instances = 1;
  /// Failures in a row after which calls stop waiting for Redis (the breaker opens) ...
  int breaker_threshold = 3;
  /// ... and the time until one call probes it again; one probe per interval, so
  /// reconnection attempts never hammer a server that is down.
  std::chrono::milliseconds probe_interval{500};
  /// Rejections remembered for the failure policy (rounded up to a power of two).
  std::size_t deny_cache_slots = 4096;
  /// time_source::client: the unit the scripts count time in. 1ns gives decisions identical
  /// to the in-memory storage's, for clocks whose values stay below 2^52 ns (manual_clock,
  /// or steady_clock for 52 days of uptime); 1us (the default) suits system_clock.
  std::chrono::nanoseconds client_time_unit = std::chrono::microseconds{1};
  /// time_source::client: added to every key's TTL. The clients' clocks are not Redis's:
  /// a key must outlive its state however differently they run.
  std::chrono::milliseconds client_ttl_slack = std::chrono::minutes{1};
};

/// Per-key state in Redis, shared by every process that uses the same server and prefix.
/// One decision is one EVALSHA of the algorithm's Lua twin (storage/redis/scripts.hpp):
/// the read-modify-write runs atomically on the server, with a TTL set in the same script.
/// The buckets also reserve and cancel (reserve(), cancel()): one EVALSHA each as well.
/// A script the server lost (restart, failover, SCRIPT FLUSH) is loaded again and the call
/// retried once; a call that failed otherwise is never replayed, since it may have run.
///
/// Failures never throw and never block longer than `timeout`: the failure policy decides,
/// and a circuit breaker stops paying the timeout while Redis is down.
///
/// A copyable handle: copies share one connection pool, breaker and deny cache. Thread-safe.
class redis_storage {
 public:
  explicit redis_storage(redis_options options = {})
      : shared_(std::make_shared<shared>(validated(std::move(options)))) {}

  /// Throws std::invalid_argument, naming the field, for a quota the scripts can't decide
  /// exactly (their numbers are doubles: every value must stay below 2^53).
  template <algorithm A>
  void prepare(const quota& q) const {
    detail::redis::script<A>::check(q, unit_ns());
  }

  template <algorithm A>
  decision decide(std::string_view key, const quota& q, std::int64_t now, std::int64_t cost) {
    const request one{key, cost};
    decision d;
    decide_many<A>(std::span{&one, 1}, q, now, std::span{&d, 1});
    return d;
  }

  /// Decides every request in one pipelined round trip; `out` gets one decision each.
  template <algorithm A>
  void decide_many(std::span<const request> requests, const quota& q, std::int64_t now,
                   std::span<decision> out) {
    shared& s = *shared_;
    // Which requests Redis decided; a buffer per thread, so that no call allocates.
    thread_local std::vector<char> decided;
    decided.assign(requests.size(), false);
    attempt(s, [&](detail::redis::clock::time_point deadline) {
      return run<A>(s, requests, q, now, deadline, out, decided);
    });
    for (std::size_t i = 0; i < requests.size(); ++i) {
      if (!decided[i]) {
        out[i] = without_backend<A>(s, requests[i], q, now);
      } else if (out[i].allowed) {
        s.denied.forget(script<A>::name, requests[i].key);
      } else if (out[i].retry_after != std::chrono::nanoseconds::max()) {
        // A request too large to ever pass says nothing about the key's smaller ones.
        s.denied.remember(script<A>::name, requests[i].key,
                          detail::saturating_add(now, out[i].retry_after.count()));
      }
    }
  }

  /// Decides a request of `cost` against every rule at once, all or nothing, as
  /// in_memory_storage::decide_all does: one EVALSHA of a script made of the rules'
  /// scripts, which writes nothing unless every rule admits the request. In a rejected set,
  /// a rule that would have admitted it says so, with the `remaining` it would have left.
  ///
  /// Each rule's key is named as a single rule's is, so rules of different keys hash to
  /// different Redis Cluster slots (see the README). Failures never throw: the failure
  /// policy answers for the set. Throws std::invalid_argument, naming the rule and field,
  /// only for a quota the scripts can't decide exactly (as prepare() would).
  template <algorithm... As>
  std::array<decision, sizeof...(As)> decide_all(
      const std::array<std::string_view, sizeof...(As)>& keys,
      const std::array<quota, sizeof...(As)>& quotas, std::int64_t now, std::int64_t cost) {
    return decide_all_of<As...>(keys, quotas, now, cost, std::index_sequence_for<As...>{});
  }

  /// Books `cost` units of `key` for a request that may wait up to `max_wait` ns, as
  /// A::reserve does (see in_memory_storage::reserve), in one EVALSHA of A's own script
  /// told the wait; an admission fills `b`, which cancel() takes. With client time in 1ns
  /// units, decisions and bookings are in_memory_storage's to the nanosecond, but for a
  /// clamp on the wait, which keeps what a reservation leaves exact in the script's
  /// doubles: at most 2^50 units (13 days at 1ns, 35 years at 1us) for both buckets, and
  /// for a token bucket at most (2^53 − 1 − burst·period) / limit units (period in units),
  /// so that its debt stays below 2^53 (at 1ns: 2^50 for per_second(1000), 7'340'031 for
  /// per(2^30, 2^20ns)). A reservation that needs a longer wait is rejected, its
  /// retry_after counted from the clamped wait: the clamp only ever admits less. Units of
  /// more than 1ns floor the wait to whole units, so that a delay never exceeds it.
  ///
  /// Never throws; blocks at most the timeout. Without Redis (the breaker open, or this call
  /// failed) the failure policy answers, `degraded`, and nothing is booked on Redis: `b`
  /// becomes a booking of cost 0, whose cancel gives back nothing, and the limiter never
  /// cancels a degraded reservation anyway. If Redis rejected the key shortly before (the
  /// deny cache), a reservation whose wait doesn't reach the end of that rejection is
  /// rejected, retry_after the time until it would; otherwise fail_open admits it, delay
  /// the time until the rejection ends (0 if none); fail_closed rejects it, retry_after
  /// the probe interval; local_fallback reserves on the local in-memory storage at the
  /// quota divided by fallback_instances (units it never gets back), delay at least until
  /// the rejection ends.
  template <reservable A>
  requires requires { detail::redis::cancel_script<A>::source; }
  decision reserve(std::string_view key, const quota& q, std::int64_t now, std::int64_t cost,
                   std::int64_t max_wait, typename A::booking& b) {
    using units = detail::redis::booking_units<A>;
    shared& s = *shared_;
    const std::int64_t unit = unit_ns();
    const std::int64_t wait = units::max_wait(q, max_wait, unit);
    std::optional<detail::redis::decoded_reservation> r;
    attempt(s, [&](detail::redis::clock::time_point deadline) {
      r = run_reserve<A>(s, key, q, now, cost, wait, deadline, b);
      return r.has_value();
    });
    if (!r) return reserve_without_backend<A>(s, key, q, now, cost, max_wait, b);
    const decision& d = r->value;
    // The deny cache holds when a plain step (try_acquire) of the key passes again: that is
    // what decide() remembers, and what the policies read. A rejected reservation's
    // retry_after counts to when the same reservation passes: sooner than the step by its
    // wait (token bucket), or sooner or later (leaky bucket: the step is bounded by the
    // capacity, the reservation by its wait). Remembered as is, it could let a degraded
    // try_acquire through while Redis still rejects it, or lock out one Redis admits; so
    // what is remembered is the step's own retry_after, from the state the script left.
    if (d.allowed) {
      s.denied.forget(script<A>::name, key);
    } else if (d.retry_after != std::chrono::nanoseconds::max()) {
      const std::chrono::nanoseconds step =
          units::step_retry_after(d, r->state, q, cost, wait, unit);
      if (step.count() > 0) {
        s.denied.remember(script<A>::name, key, detail::saturating_add(now, step.count()));
      } else {
        s.denied.forget(script<A>::name, key);  // a step passes now
      }
    }
    return d;
  }

  /// Gives back what the reservation booked as `b` (by reserve(), on this storage, under
  /// `q`) took, as A::cancel does (see in_memory_storage::cancel): one EVALSHA of A's
  /// cancel script, which returns the key's state after, as a decision admitting nothing.
  /// A booking whose fields the script can't hold exactly (not whole units below 2^53:
  /// no reservation on this storage returns one) gives back nothing, rather than something
  /// rounded that later bookings count on.
  ///
  /// Never throws; blocks at most the timeout, and not at all while the breaker is open.
  /// Without Redis it does nothing and returns a degraded decision admitting nothing: the
  /// units stay booked until they would have been used. The deny cache is left as it is.
  template <reservable A>
  requires requires { detail::redis::cancel_script<A>::source; }
  decision cancel(std::string_view key, const quota& q, std::int64_t now,
                  const typename A::booking& b) {
    shared& s = *shared_;
    std::optional<decision> d;
    attempt(s, [&](detail::redis::clock::time_point deadline) {
      d = run_cancel<A>(s, key, q, now, b, deadline);
      return d.has_value();
    });
    // A give-back may leave a deny cache entry stricter than Redis would now be: the safe
    // side, and only while Redis is away.
    if (!d) return decision{.limit = q.limit, .degraded = true};
    return *d;
  }

  /// Calls `listener` on every failure from now on, on the failing thread: "unavailable"
  /// (refused, timed out, broken, or an error reply such as OOM) or "breaker_open" (not
  /// tried: Redis is deemed away). A limiter whose observer has `on_backend_error` adds
  /// a copy of it here when built. Listeners live as long as the storage; each must be
  /// thread-safe and must not throw.
  void add_error_listener(std::function<void(const backend_error&)> listener) {
    const std::lock_guard lock{shared_->listeners_mutex};
    shared_->listeners.push_back(std::move(listener));
  }

  /// Whether Redis is deemed away: the breaker is open and the failure policy decides.
  bool degraded() const { return shared_->breaker.open(); }

  const redis_options& options() const noexcept { return shared_->options; }

  /// `o`, or std::invalid_argument naming the field and its value.
  static redis_options validated(redis_options o) {
    const auto fail = [](const std::string& what) {
      throw std::invalid_argument("ratelimit::redis_options: " + what);
    };
    if (o.key_prefix.find_first_of("{}") != std::string::npos) {
      fail("key_prefix must not contain '{' or '}' (got \"" + o.key_prefix + "\")");
    }
    if (o.port <= 0 || o.port > 65535)
      fail("port must be in [1, 65535] (got " + std::to_string(o.port) + ")");
    if (o.timeout.count() <= 0)
      fail("timeout must be > 0ms (got " + std::to_string(o.timeout.count()) + "ms)");
    if (o.pool_size == 0) fail("pool_size must be > 0 (got 0)");
    if (o.fallback_instances <= 0) {
      fail("fallback_instances must be > 0 (got " + std::to_string(o.fallback_instances) + ")");
    }
    if (o.breaker_threshold <= 0) {
      fail("breaker_threshold must be > 0 (got " + std::to_string(o.breaker_threshold) + ")");
    }
    if (o.probe_interval.count() <= 0) {
      fail("probe_interval must be > 0ms (got " + std::to_string(o.probe_interval.count()) + "ms)");
    }
    // TTLs are in milliseconds: a unit that divides one converts exactly.
    if (o.client_time_unit.count() <= 0 || 1'000'000 % o.client_time_unit.count() != 0) {
      fail("client_time_unit must divide one millisecond (got " +
           std::to_string(o.client_time_unit.count()) + "ns)");
    }
    if (o.client_ttl_slack.count() < 0) {
      fail("client_ttl_slack must be >= 0ms (got " + std::to_string(o.client_ttl_slack.count()) +
           "ms)");
    }
    return o;
  }

 private:
  struct shared {
    explicit shared(redis_options o)
        : options(std::move(o)),
          pool(options.host, options.port, options.pool_size),
          breaker(options.breaker_threshold, options.probe_interval),
          denied(options.deny_cache_slots) {}

    redis_options options;
    detail::redis::connection_pool pool;
    detail::redis::circuit_breaker breaker;
    detail::redis::deny_cache denied;
    in_memory_storage local;
    std::mutex listeners_mutex;
    std::vector<std::function<void(const backend_error&)>> listeners;

    void report(std::string_view what) noexcept {
      const std::lock_guard lock{listeners_mutex};
      for (const auto& listener : listeners) listener({.backend = "redis", .what = what});
    }
  };

  /// This process's share of `q` while Redis is away: local_fallback.
  static quota fallback_share(const shared& s, const quota& q) {
    const std::int64_t n = s.options.fallback_instances;
    return {std::max<std::int64_t>(q.limit / n, 1), q.period,
            std::max<std::int64_t>(q.burst / n, 1)};
  }

  /// Runs `run(deadline)` unless the breaker is open, and keeps the breaker and the error
  /// listeners informed. True if Redis answered.
  template <class Run>
  static bool attempt(shared& s, Run run) {
    const auto started = detail::redis::clock::now();
    if (!s.breaker.allow(started)) {
      s.report("breaker_open");
      return false;
    }
    if (run(started + s.options.timeout)) {
      s.breaker.succeeded();
      return true;
    }
    s.breaker.failed(detail::redis::clock::now());
    s.report("unavailable");
    return false;
  }

  template <algorithm A>
  using script = detail::redis::script<A>;

  template <algorithm A>
  static const std::string& sha() {
    static const std::string digest = detail::redis::sha1_hex(script<A>::source);
    return digest;
  }

  std::int64_t unit_ns() const noexcept {
    return shared_->options.time == time_source::server ? 1000
                                                        : shared_->options.client_time_unit.count();
  }

  /// The ARGV every request of one call shares: time, quota, unit, TTL slack.
  struct arguments {
    arguments(const redis_storage& storage, const quota& q, std::int64_t now) : quota(q) {
      const redis_options& o = storage.shared_->options;
      const std::int64_t unit = storage.unit_ns();
      if (o.time == time_source::client) format(now_, detail::floor_div(now, unit));
      format(limit_, q.limit);
      format(period_, q.period.count() / unit);
      format(burst_, q.burst);
      format(unit_, unit);
      // Server time is read in microseconds, expiry counts whole milliseconds from the
      // command's start: without a millisecond of slack a key could expire early.
      format(slack_, o.time == time_source::client ? o.client_ttl_slack.count() : 1);
      prefix = o.key_prefix;
      capacity = std::max(q.limit, q.burst);
      unit_ns = unit;
    }

    const ratelimit::quota& quota;
    std::string_view prefix;
    std::int64_t capacity;
    std::int64_t unit_ns;
    std::string_view now() const { return now_.view(); }
    std::string_view limit() const { return limit_.view(); }
    std::string_view period() const { return period_.view(); }
    std::string_view burst() const { return burst_.view(); }
    std::string_view unit() const { return unit_.view(); }
    std::string_view slack() const { return slack_.view(); }

   private:
    struct number {
      std::array<char, 24> digits{};
      std::size_t size = 0;
      std::string_view view() const { return {digits.data(), size}; }
    };
    static void format(number& n, std::int64_t v) {
      n.size = static_cast<std::size_t>(
          std::to_chars(n.digits.data(), n.digits.data() + n.digits.size(), v).ptr -
          n.digits.data());
    }
    number now_, limit_, period_, burst_, unit_, slack_;
  };

  /// Runs the requests' scripts in one pipeline, marking in `decided` those Redis decided;
  /// true if it decided them all.
  template <algorithm A>
  bool run(shared& s, std::span<const request> requests, const quota& q, std::int64_t now,
           detail::redis::clock::time_point deadline, std::span<decision> out,
           std::vector<char>& decided) {
    auto lease = s.pool.acquire(deadline);
    if (!lease) return false;
    const arguments args(*this, q, now);
    // The requests to run: all of them, then those whose script the server had lost (they
    // did not run, so they are safe to run again once it is loaded). A request that failed
    // otherwise is never run again: it may have run.
    thread_local std::vector<std::size_t> pending;
    pending.resize(requests.size());
    std::iota(pending.begin(), pending.end(), std::size_t{0});
    for (int attempt = 0; attempt < 2 && !pending.empty(); ++attempt) {
      if ((attempt == 1 && !load<A>(*lease, deadline)) ||
          !exchange<A>(*lease, args, requests, pending, deadline, out, decided)) {
        lease.break_off();  // a timeout or an I/O error: what the connection holds is unknown
        return false;
      }
    }
    return std::all_of(decided.begin(), decided.end(), [](char d) { return d != 0; });
  }

  /// Sends the scripts of `requests[pending]` and reads their replies into `out`, keeping in
  /// `pending` those whose script was lost. False if the connection failed.
  template <algorithm A>
  static bool exchange(detail::redis::connection& c, const arguments& args,
                       std::span<const request> requests, std::vector<std::size_t>& pending,
                       detail::redis::clock::time_point deadline, std::span<decision> out,
                       std::vector<char>& decided) {
    // Sending every few commands lets the server start on them while the rest are formatted.
    constexpr std::size_t chunk = 16;
    for (std::size_t n = 0; n < pending.size(); ++n) {
      append<A>(c, args, requests[pending[n]]);
      if ((n + 1) % chunk == 0 && (!c.flush(deadline) || detail::redis::clock::now() >= deadline)) {
        return false;
      }
    }
    if (!c.flush(deadline)) return false;
    std::size_t lost = 0;
    for (const std::size_t i : pending) {
      redisReply* reply = c.receive(deadline);
      if (reply == nullptr) return false;
      const detail::redis::decoded d = detail::redis::decode(reply, args.quota, args.unit_ns);
      freeReplyObject(reply);
      out[i] = d.value;
      decided[i] = d.result == detail::redis::outcome::decided;
      if (d.result == detail::redis::outcome::noscript) pending[lost++] = i;
    }
    pending.resize(lost);
    return true;
  }

  template <algorithm A>
  static void append(detail::redis::connection& c, const arguments& args, const request& r) {
    // Key names live in buffers reused across calls: no allocation once they have grown.
    thread_local std::array<std::string, 2> names;
    for (int k = 0; k < script<A>::keys; ++k) {
      detail::redis::key_name(names[static_cast<std::size_t>(k)], args.prefix, script<A>::name,
                              k + 1, r.key);
    }
    // Costs above every capacity are "never" for every algorithm; the script needs only
    // to see one that is too large, and one that fits in its doubles.
    std::array<char, 24> cost_digits{};
    const std::int64_t cost = std::min(r.cost, args.capacity + 1);
    const auto cost_end =
        std::to_chars(cost_digits.data(), cost_digits.data() + cost_digits.size(), cost).ptr;
    std::array<char, 24> keys_digits{};
    keys_digits[0] = static_cast<char>('0' + script<A>::keys);

    std::array<std::string_view, 13> argv;
    std::size_t argc = 0;
    argv[argc++] = "EVALSHA";
    argv[argc++] = sha<A>();
    argv[argc++] = {keys_digits.data(), 1};
    for (int k = 0; k < script<A>::keys; ++k) argv[argc++] = names[static_cast<std::size_t>(k)];
    argv[argc++] = args.now();
    argv[argc++] = args.limit();
    argv[argc++] = args.period();
    argv[argc++] = args.burst();
    argv[argc++] = {cost_digits.data(), static_cast<std::size_t>(cost_end - cost_digits.data())};
    argv[argc++] = args.unit();
    argv[argc++] = args.slack();
    c.append(std::span{argv.data(), argc});
  }

  template <algorithm A>
  static bool load(detail::redis::connection& c, detail::redis::clock::time_point deadline) {
    return detail::redis::load_script(c, script<A>::source, sha<A>(), deadline);
  }

  /// A decimal integer in a buffer of its own.
  struct decimal {
    explicit decimal(std::int64_t v) {
      size = static_cast<std::size_t>(
          std::to_chars(digits.data(), digits.data() + digits.size(), v).ptr - digits.data());
    }
    std::string_view view() const { return {digits.data(), size}; }

    std::array<char, 24> digits{};
    std::size_t size = 0;
  };

  /// One EVALSHA (`argv`, whose second argument is `sha`), loading `source` once if the
  /// server lost it; `read(reply)` returns the outcome it found. True if it was `decided`.
  /// A timeout or an I/O error closes the connection: what it holds is unknown.
  template <class Read>
  static bool evaluate(shared& s, std::span<const std::string_view> argv, std::string_view source,
                       std::string_view sha, detail::redis::clock::time_point deadline,
                       Read&& read) {
    auto lease = s.pool.acquire(deadline);
    if (!lease) return false;
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (attempt == 1 && !detail::redis::load_script(*lease, source, sha, deadline)) {
        lease.break_off();
        return false;
      }
      lease->append(argv);
      redisReply* reply = lease->flush(deadline) ? lease->receive(deadline) : nullptr;
      if (reply == nullptr) {
        lease.break_off();
        return false;
      }
      const detail::redis::outcome result = read(reply);
      freeReplyObject(reply);
      if (result != detail::redis::outcome::noscript) {
        return result == detail::redis::outcome::decided;
      }
    }
    return false;
  }

  template <reservable A>
  static const std::string& cancel_sha() {
    static const std::string digest =
        detail::redis::sha1_hex(detail::redis::cancel_script<A>::source);
    return digest;
  }

  /// A's script as a reservation waiting up to `wait` units; Redis's decision and the state
  /// it left, or nothing if Redis did not decide. ARGV as a step's, then the wait.
  template <reservable A>
  std::optional<detail::redis::decoded_reservation> run_reserve(
      shared& s, std::string_view key, const quota& q, std::int64_t now, std::int64_t cost,
      std::int64_t wait, detail::redis::clock::time_point deadline, typename A::booking& b) {
    const arguments args(*this, q, now);
    thread_local std::string name;
    detail::redis::key_name(name, args.prefix, script<A>::name, 1, key);
    // As in append(): a cost above every capacity is "never", and fits in a double.
    const decimal cost_text(std::min(cost, args.capacity + 1));
    const decimal wait_text(wait);
    const std::array<std::string_view, 12> argv{"EVALSHA",     sha<A>(),     "1",
                                                name,          args.now(),   args.limit(),
                                                args.period(), args.burst(), cost_text.view(),
                                                args.unit(),   args.slack(), wait_text.view()};
    std::optional<detail::redis::decoded_reservation> out;
    evaluate(s, argv, script<A>::source, sha<A>(), deadline, [&](const redisReply* reply) {
      const detail::redis::decoded_reservation r =
          detail::redis::decode_reservation(reply, q, args.unit_ns);
      if (r.result != detail::redis::outcome::decided) return r.result;
      typename A::booking booked{};
      if (r.value.allowed &&
          !detail::redis::booking_units<A>::from_reply(r.state, cost, args.unit_ns, q, booked)) {
        return detail::redis::outcome::failed;
      }
      if (r.value.allowed) b = booked;
      out = r;
      return detail::redis::outcome::decided;
    });
    return out;
  }

  /// A's cancel script for booking `b`; the key's state after, or nothing if Redis did not
  /// answer. ARGV as a step's, with the booking's cost, then its two fields in units.
  template <reservable A>
  std::optional<decision> run_cancel(shared& s, std::string_view key, const quota& q,
                                     std::int64_t now, const typename A::booking& b,
                                     detail::redis::clock::time_point deadline) {
    const arguments args(*this, q, now);
    thread_local std::string name;
    detail::redis::key_name(name, args.prefix, script<A>::name, 1, key);
    const detail::redis::cancel_arguments booked =
        detail::redis::booking_units<A>::to_units(b, q, args.unit_ns);
    const decimal cost_text(booked.cost);
    const decimal first(booked.state[0]);
    const decimal second(booked.state[1]);
    const std::array<std::string_view, 13> argv{"EVALSHA",     cancel_sha<A>(), "1",
                                                name,          args.now(),      args.limit(),
                                                args.period(), args.burst(),    cost_text.view(),
                                                args.unit(),   args.slack(),    first.view(),
                                                second.view()};
    std::optional<decision> out;
    evaluate(s, argv, detail::redis::cancel_script<A>::source, cancel_sha<A>(), deadline,
             [&](const redisReply* reply) {
               const detail::redis::decoded d = detail::redis::decode(reply, q, args.unit_ns);
               if (d.result == detail::redis::outcome::decided) out = d.value;
               return d.result;
             });
    return out;
  }

  /// A reservation's answer without Redis: see reserve().
  template <reservable A>
  static decision reserve_without_backend(shared& s, std::string_view key, const quota& q,
                                          std::int64_t now, std::int64_t cost,
                                          std::int64_t max_wait, typename A::booking& b) {
    b = {};  // nothing booked on Redis: a cost of 0, whose cancel gives back nothing
    decision d{.limit = q.limit, .degraded = true};
    // Until when Redis last said a step of the key is rejected: a reservation then waits
    // at least that long.
    std::int64_t held = 0;
    if (const std::int64_t until = s.denied.rejected_until(script<A>::name, key); until > now) {
      held = detail::saturate(detail::i128{until} - now);
      d.reset_after = std::chrono::nanoseconds{held};
      if (held > max_wait) {
        d.retry_after = std::chrono::nanoseconds{held - max_wait};
        return d;
      }
    }
    switch (s.options.on_failure) {
      case failure_policy::fail_open:
        d.allowed = true;
        d.delay = std::chrono::nanoseconds{held};
        break;
      case failure_policy::fail_closed:
        d.retry_after = s.options.probe_interval;
        break;
      case failure_policy::local_fallback: {
        const quota share = fallback_share(s, q);
        // Degraded, so never cancelled: the local booking is not kept.
        typename A::booking local{};
        d = s.local.template reserve<A>(key, share, now, cost, max_wait, local);
        d.limit = q.limit;
        d.degraded = true;
        if (d.allowed) d.delay = std::max(d.delay, std::chrono::nanoseconds{held});
        break;
      }
    }
    return d;
  }

  template <algorithm A>
  static decision without_backend(shared& s, const request& r, const quota& q, std::int64_t now) {
    decision d{.limit = q.limit, .degraded = true};
    if (const std::int64_t until = s.denied.rejected_until(script<A>::name, r.key); until > now) {
      d.retry_after = d.reset_after = std::chrono::nanoseconds{until - now};
      return d;
    }
    switch (s.options.on_failure) {
      case failure_policy::fail_open:
        d.allowed = true;
        break;
      case failure_policy::fail_closed:
        d.retry_after = s.options.probe_interval;
        break;
      case failure_policy::local_fallback: {
        const quota share = fallback_share(s, q);
        d = s.local.decide<A>(r.key, share, now, r.cost);
        d.limit = q.limit;
        d.degraded = true;
        break;
      }
    }
    return d;
  }

  template <class... As>
  using multi_script = detail::redis::multi_script<As...>;

  template <algorithm... As>
  static const std::string& multi_sha() {
    static const std::string digest = detail::redis::sha1_hex(multi_script<As...>::source());
    return digest;
  }

  template <algorithm... As, std::size_t... I>
  std::array<decision, sizeof...(As)> decide_all_of(
      const std::array<std::string_view, sizeof...(As)>& keys,
      const std::array<quota, sizeof...(As)>& quotas, std::int64_t now, std::int64_t cost,
      std::index_sequence<I...>) {
    constexpr std::size_t n = sizeof...(As);
    const std::int64_t unit = unit_ns();
    (check_rule<As>(I, quotas[I], unit), ...);
    shared& s = *shared_;
    std::array<decision, n> out{};
    const bool decided = attempt(s, [&](detail::redis::clock::time_point deadline) {
      return run_all<As...>(s, keys, quotas, now, cost, deadline, out);
    });
    if (!decided) return all_without_backend<As...>(s, keys, quotas, now, cost);
    const auto remember = [&](std::string_view name, std::string_view key, const decision& d) {
      if (d.allowed) {
        s.denied.forget(name, key);
      } else if (d.retry_after != std::chrono::nanoseconds::max()) {
        s.denied.remember(name, key, detail::saturating_add(now, d.retry_after.count()));
      }
    };
    (remember(script<As>::name, keys[I], out[I]), ...);
    return out;
  }

  template <algorithm A>
  static void check_rule(std::size_t index, const quota& q, std::int64_t unit) {
    try {
      script<A>::check(q, unit);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("ratelimit::redis_storage::decide_all: rule " +
                                  std::to_string(index) + ": " + e.what());
    }
  }

  /// One EVALSHA of the rules' script, loading it once if the server lost it; true if
  /// Redis decided the set (into `out`).
  template <algorithm... As>
  bool run_all(shared& s, const std::array<std::string_view, sizeof...(As)>& keys,
               const std::array<quota, sizeof...(As)>& quotas, std::int64_t now, std::int64_t cost,
               detail::redis::clock::time_point deadline,
               std::array<decision, sizeof...(As)>& out) {
    constexpr std::size_t n = sizeof...(As);
    const redis_options& o = s.options;
    const std::int64_t unit = unit_ns();
    const std::array<std::string_view, n> names{script<As>::name...};

    // Key names and numbers live in buffers reused across calls: no allocation once grown.
    thread_local std::array<std::string, 32> key_names;
    using digits = std::array<char, 24>;
    thread_local std::array<digits, 3 + 4 * 32> numbers;
    std::array<std::string_view, 3 + 4 + 5 * n> argv;
    std::size_t argc = 0;
    std::size_t used = 0;
    const auto number = [&](std::int64_t v) {
      digits& d = numbers[used++];
      return std::string_view{
          d.data(),
          static_cast<std::size_t>(std::to_chars(d.data(), d.data() + d.size(), v).ptr - d.data())};
    };
    argv[argc++] = "EVALSHA";
    argv[argc++] = multi_sha<As...>();
    argv[argc++] = number(static_cast<std::int64_t>(n));
    for (std::size_t i = 0; i < n; ++i) {
      detail::redis::key_name(key_names[i], o.key_prefix, names[i], 1, keys[i]);
      argv[argc++] = key_names[i];
    }
    argv[argc++] =
        o.time == time_source::client ? number(detail::floor_div(now, unit)) : std::string_view{};
    argv[argc++] = number(unit);
    argv[argc++] = number(o.time == time_source::client ? o.client_ttl_slack.count() : 1);
    for (std::size_t i = 0; i < n; ++i) {
      const quota& q = quotas[i];
      argv[argc++] = number(q.limit);
      argv[argc++] = number(q.period.count() / unit);
      argv[argc++] = number(q.burst);
      // As in append(): a cost above every capacity is "never", and fits in a double.
      argv[argc++] = number(std::min(cost, std::max(q.limit, q.burst) + 1));
    }

    return evaluate(s, std::span{argv.data(), argc}, multi_script<As...>::source(),
                    multi_sha<As...>(), deadline, [&](const redisReply* reply) {
                      return detail::redis::decode_all(reply, quotas, unit, out);
                    });
  }

  /// The set's decision without Redis. A rule whose key Redis rejected shortly before
  /// rejects it still, whatever the policy; the other rules then report what the policy
  /// would say of them alone (local_fallback: admitted, as nothing is consumed locally
  /// for a set that is rejected anyway). Otherwise the policy answers for the set:
  /// fail_open admits it, fail_closed rejects it, local_fallback decides it in this
  /// process on every quota divided by fallback_instances, all or nothing.
  template <algorithm... As, std::size_t N = sizeof...(As)>
  static std::array<decision, N> all_without_backend(shared& s,
                                                     const std::array<std::string_view, N>& keys,
                                                     const std::array<quota, N>& quotas,
                                                     std::int64_t now, std::int64_t cost) {
    const std::array<std::string_view, N> names{script<As>::name...};
    std::array<decision, N> out{};
    bool denied = false;
    for (std::size_t i = 0; i < N; ++i) {
      out[i] = decision{.limit = quotas[i].limit, .degraded = true};
      if (const std::int64_t until = s.denied.rejected_until(names[i], keys[i]); until > now) {
        out[i].retry_after = out[i].reset_after = std::chrono::nanoseconds{until - now};
        denied = true;
      }
    }
    const failure_policy policy = s.options.on_failure;
    if (!denied && policy == failure_policy::local_fallback) {
      std::array<quota, N> shares{};
      for (std::size_t i = 0; i < N; ++i) shares[i] = fallback_share(s, quotas[i]);
      out = s.local.template decide_all<As...>(keys, shares, now, cost);
      for (std::size_t i = 0; i < N; ++i) {
        out[i].limit = quotas[i].limit;
        out[i].degraded = true;
      }
      return out;
    }
    for (std::size_t i = 0; i < N; ++i) {
      if (out[i].retry_after.count() > 0) continue;  // rejected by the deny cache
      if (policy == failure_policy::fail_closed) {
        out[i].retry_after = s.options.probe_interval;
      } else {
        out[i].allowed = true;
      }
    }
    return out;
  }

  std::shared_ptr<shared> shared_;
};

}  // namespace ratelimit
