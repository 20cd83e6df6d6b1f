#pragma once

#include <hiredis/hiredis.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "ratelimit/clock.hpp"
#include "ratelimit/concurrency.hpp"
#include "ratelimit/detail/seeded_hash.hpp"
#include "ratelimit/detail/wide_math.hpp"
#include "ratelimit/storage/redis.hpp"
#include "ratelimit/storage/redis/circuit_breaker.hpp"
#include "ratelimit/storage/redis/connection_pool.hpp"
#include "ratelimit/storage/redis/key_name.hpp"
#include "ratelimit/storage/redis/load_script.hpp"
#include "ratelimit/storage/redis/reply.hpp"
#include "ratelimit/storage/redis/scripts.hpp"
#include "ratelimit/storage/redis/sha1.hpp"

namespace ratelimit {
namespace detail::redis {

/// The leases of one key: a sorted set whose members are the permits out, each scored by
/// the instant its lease ends. A lease whose end is <= now is over: its slot is free,
/// whether or not its holder is still alive to say so.
///
/// Calling contract: `EVALSHA sha 1 key now operation max_in_flight lease member ttl`, with
/// | ARGV | meaning                                                                       |
/// |------|-------------------------------------------------------------------------------|
/// | 1    | now in units (decimal), or empty: the script reads `TIME`, in microseconds    |
/// | 2    | `acquire`, `renew`, `release` or `count`                                      |
/// | 3    | max_in_flight (< 2^53)                                                        |
/// | 4    | the lease in units (<= 2^50)                                                  |
/// | 5    | the permit's member, unique to it                                             |
/// | 6    | the key's TTL in milliseconds: the lease, rounded up, plus slack              |
/// The reply is `{status, in_flight}`: acquire, 1 if it added `member` with a lease ending at
/// now + lease; renew, 1 if `member`'s lease was still running and now ends at now + lease;
/// release, 1 if it removed a running lease; count, 0. `in_flight` counts the leases running
/// after the call. Every write of a lease sets the key's TTL to one lease from now, which
/// outlasts every lease in the set (none ends later than the one just written); an empty
/// set is no key at all. Times are integers below 2^52 units in magnitude, so that
/// `now + lease` is exact in a double and in a sorted set's score.
inline constexpr std::string_view concurrency_source = R"lua(
local now
if ARGV[1] == '' then
  local time = redis.call('TIME')
  now = time[1] * 1000000 + time[2]
else
  now = ARGV[1] + 0
end
if now >= 4503599627370496 or now <= -4503599627370496 then
  return redis.error_reply('ratelimit: now must be below 2^52 in magnitude')
end
local key, operation = KEYS[1], ARGV[2]
-- Numbers reach redis.call with every digit; `..` would format them with an exponent.
if operation == 'count' then
  return {0, redis.call('ZCARD', key) - redis.call('ZCOUNT', key, '-inf', now)}
end
local max_in_flight, lease, member, ttl = ARGV[3] + 0, ARGV[4] + 0, ARGV[5], ARGV[6]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
local held = redis.call('ZCARD', key)
if operation == 'acquire' then
  if held >= max_in_flight then return {0, held} end
  redis.call('ZADD', key, now + lease, member)
  redis.call('PEXPIRE', key, ttl)
  return {1, held + 1}
elseif operation == 'renew' then
  if not redis.call('ZSCORE', key, member) then return {0, held} end
  redis.call('ZADD', key, 'XX', now + lease, member)
  redis.call('PEXPIRE', key, ttl)
  return {1, held}
elseif operation == 'release' then
  local removed = redis.call('ZREM', key, member)
  return {removed, held - removed}
end
return redis.error_reply('ratelimit: unknown operation ' .. operation)
)lua";

/// The concurrency script's key names: `prefix{tag}cc:user_key`, as key_name builds them.
inline constexpr std::string_view concurrency_name = "cc";

struct free_reply {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, free_reply>;

/// `EVALSHA sha 1 key args...` on `c`, whose reply it returns. If the server lost the script
/// (restart, failover, SCRIPT FLUSH), the script did not run: it is loaded and run once
/// more. nullptr on an I/O error, a failed load or once `deadline` has passed; what the
/// connection holds is then unknown, and it must be broken off.
inline reply_ptr evalsha_one_key(connection& c, std::string_view source, std::string_view sha,
                                 std::string_view key, std::span<const std::string_view> args,
                                 clock::time_point deadline) {
  std::array<std::string_view, 12> argv{"EVALSHA", sha, "1", key};
  assert(args.size() <= argv.size() - 4);
  const std::size_t argc = 4 + args.size();
  std::copy(args.begin(), args.end(), argv.begin() + 4);
  for (int attempt = 0;; ++attempt) {
    c.append(std::span{argv.data(), argc});
    if (!c.flush(deadline)) return nullptr;
    reply_ptr reply{c.receive(deadline)};
    if (reply == nullptr || attempt == 1 || reply->type != REDIS_REPLY_ERROR ||
        error_outcome(reply.get()) != outcome::noscript) {
      return reply;
    }
    if (!load_script(c, source, sha, deadline)) return nullptr;
  }
}

}  // namespace detail::redis

/// At most `max_in_flight` requests in flight per key across every process that shares a
/// Redis server and key prefix. A permit is a lease: it holds its slot until released, or
/// until `lease` has passed since it was granted (or last renewed), whichever comes first.
/// A holder that dies without releasing, or whose release never reaches Redis, so frees its
/// slots within one lease, and never sooner:
///
///     ratelimit::redis_concurrency_limiter exports{2, std::chrono::minutes{5}, options};
///     if (auto p = exports.try_acquire(tenant)) {
///       run_export();    // longer than the lease? call p.renew() on the way
///     }                  // p leaves scope: one ZREM
///
/// One key is one sorted set (detail::redis::concurrency_source): every operation is one
/// EVALSHA that drops the ended leases and then decides, atomically on the server, with the
/// key's TTL set in the same script. Time is the server's `TIME` by default; with
/// time_source::client it is `Clock`'s, in `client_time_unit`s, which must read below 2^52
/// units (system_clock in microseconds does until the year 2112).
///
/// Redis failing never throws and never blocks longer than `timeout`; a breaker stops paying
/// the timeout while it is down. The permit says `degraded()`, and the failure policy says
/// what it is: fail_open, granted (and releasing it does nothing remotely); fail_closed,
/// refused; local_fallback, a slot of an in-memory concurrency_limiter of
/// max(1, max_in_flight / fallback_instances) per key. A release that cannot reach Redis
/// leaves the lease to end on its own.
///
/// A copyable handle: copies share one connection pool, breaker and fallback. Thread-safe;
/// `Clock::now()` must be, with client time.
template <clock_source Clock = std::chrono::system_clock>
class redis_concurrency_limiter {
  struct shared;

 public:
  /// A lease on one slot of one key, released by `release()` or destruction; a release
  /// waits for Redis, for at most the timeout. Move-only; a moved-from or refused permit
  /// holds nothing. One permit is not for two threads at once; distinct permits are.
  class permit {
   public:
    permit() noexcept = default;
    permit(permit&& other) noexcept { take(other); }
    permit& operator=(permit&& other) noexcept {
      if (this != &other) {
        release();
        take(other);
      }
      return *this;
    }
    permit(const permit&) = delete;
    permit& operator=(const permit&) = delete;
    ~permit() { release(); }

    /// Whether the permit was granted and not released since.
    explicit operator bool() const noexcept { return granted_; }

    /// Decided by the failure policy, without Redis. A degraded permit holds no lease.
    bool degraded() const noexcept { return degraded_; }

    /// Extends the lease to one full lease from now; true if Redis did. False if the lease
    /// had ended (its slot may have gone to another request: stop, or acquire anew) or Redis
    /// could not be reached (the lease then still ends when it did), and for an empty
    /// permit. A degraded permit holds no lease, so nothing ends it: true.
    bool renew() {
      if (!granted_) return false;
      if (shared_ == nullptr) return true;
      const auto answer = shared_->call("renew", key_, member_);
      return answer.has_value() && answer->status == 1;
    }

    /// Gives the slot back; does nothing the second time.
    void release() noexcept {
      granted_ = false;
      local_.release();
      if (const std::shared_ptr<shared> s = std::move(shared_)) {
        try {
          static_cast<void>(s->call("release", key_, member_));
        } catch (...) {
          // Out of memory on the way to Redis: the lease ends on its own.
        }
      }
    }

   private:
    friend class redis_concurrency_limiter;

    void take(permit& other) noexcept {
      shared_ = std::move(other.shared_);
      key_ = std::move(other.key_);
      member_ = std::move(other.member_);
      local_ = std::move(other.local_);
      granted_ = std::exchange(other.granted_, false);
      degraded_ = std::exchange(other.degraded_, false);
    }

    std::shared_ptr<shared> shared_;  ///< set while a lease is held in Redis
    std::string key_;                 ///< the Redis key
    std::string member_;              ///< the lease's member in it
    concurrency_limiter::permit local_;
    bool granted_ = false;
    bool degraded_ = false;
  };

  /// Throws std::invalid_argument naming the value for `max_in_flight` outside [1, 2^53), a
  /// lease that is not a positive whole number of time units (1us with server time,
  /// `client_time_unit` with client time) of at most 2^50 units, or invalid options (as
  /// redis_storage would).
  redis_concurrency_limiter(std::int64_t max_in_flight, std::chrono::nanoseconds lease,
                            redis_options options = {}, Clock clock = {})
      : shared_(std::make_shared<shared>(max_in_flight, lease,
                                         checked(max_in_flight, lease, std::move(options)),
                                         std::move(clock))) {}

  /// A lease on a slot of `key` if fewer than `max_in_flight` leases are running, else an
  /// empty permit. Without Redis, what the failure policy makes of it.
  [[nodiscard]] permit try_acquire(std::string_view key) {
    shared& s = *shared_;
    permit p;
    detail::redis::key_name(p.key_, s.options.key_prefix, detail::redis::concurrency_name, 1, key);
    p.member_ = s.next_member();
    if (const auto answer = s.call("acquire", p.key_, p.member_)) {
      if (answer->status == 1) {
        p.shared_ = shared_;
        p.granted_ = true;
      }
      return p;
    }
    p.degraded_ = true;
    switch (s.options.on_failure) {
      case failure_policy::fail_open:
        p.granted_ = true;
        break;
      case failure_policy::fail_closed:
        break;
      case failure_policy::local_fallback:
        p.local_ = s.local.try_acquire(key);
        p.granted_ = static_cast<bool>(p.local_);
        break;
    }
    return p;
  }

  /// The leases running on `key` now, as Redis counts them; nullopt if Redis can't say.
  std::optional<std::int64_t> in_flight(std::string_view key) {
    std::string name;
    detail::redis::key_name(name, shared_->options.key_prefix, detail::redis::concurrency_name, 1,
                            key);
    const auto answer = shared_->call("count", name, "");
    if (!answer) return std::nullopt;
    return answer->in_flight;
  }

  /// Whether Redis is deemed away: the breaker is open and the failure policy decides.
  bool degraded() const { return shared_->breaker.open(); }

  std::int64_t max_in_flight() const noexcept { return shared_->max_in_flight; }
  std::chrono::nanoseconds lease() const noexcept { return shared_->lease; }
  const redis_options& options() const noexcept { return shared_->options; }

 private:
  struct answer {
    std::int64_t status;
    std::int64_t in_flight;
  };

  struct shared {
    shared(std::int64_t max, std::chrono::nanoseconds lease_length, redis_options o, Clock c)
        : options(std::move(o)),
          max_in_flight(max),
          lease(lease_length),
          clock(std::move(c)),
          unit_ns(options.time == time_source::server ? 1000 : options.client_time_unit.count()),
          pool(options.host, options.port, options.pool_size),
          breaker(options.breaker_threshold, options.probe_interval),
          local(std::max<std::int64_t>(max / options.fallback_instances, 1)) {
      max_digits = std::to_string(max);
      lease_digits = std::to_string(lease.count() / unit_ns);
      // TTLs count whole milliseconds from the command's start, leases count units: without
      // slack a key could go before its last lease ends. Client clocks are not Redis's.
      const std::int64_t slack =
          options.time == time_source::server ? 1 : options.client_ttl_slack.count();
      const std::int64_t lease_ms = lease.count() / 1'000'000 + (lease.count() % 1'000'000 != 0);
      ttl_digits = std::to_string(detail::saturating_add(lease_ms, slack));
      // Unique to this limiter among every process sharing the server: a random number, and
      // the process id in case two processes drew the same one.
      member_prefix =
          std::to_string(detail::random_seed()) + '-' + std::to_string(::getpid()) + '-';
    }

    std::string next_member() {
      return member_prefix + std::to_string(serial.fetch_add(1, std::memory_order_relaxed));
    }

    /// One operation on one key in Redis; nullopt if Redis did not answer it (down, slow,
    /// an error reply, a reply that makes no sense), or the breaker is open.
    std::optional<answer> call(std::string_view operation, std::string_view key,
                               std::string_view member) {
      namespace r = detail::redis;
      const auto started = r::clock::now();
      if (!breaker.allow(started)) return std::nullopt;
      std::optional<answer> result;
      if (auto connection = pool.acquire(started + options.timeout)) {
        std::array<char, 24> now_digits{};
        std::size_t now_size = 0;
        if (options.time == time_source::client) {
          const std::int64_t now = detail::floor_div(detail::now_nanoseconds(clock), unit_ns);
          now_size = static_cast<std::size_t>(
              std::to_chars(now_digits.data(), now_digits.data() + now_digits.size(), now).ptr -
              now_digits.data());
        }
        const std::array<std::string_view, 6> args{std::string_view{now_digits.data(), now_size},
                                                   operation,
                                                   max_digits,
                                                   lease_digits,
                                                   member,
                                                   ttl_digits};
        const r::reply_ptr reply = r::evalsha_one_key(*connection, r::concurrency_source, sha(),
                                                      key, args, started + options.timeout);
        if (reply == nullptr) {
          connection.break_off();
        } else {
          result = decode(*reply);
        }
      }
      if (result) {
        breaker.succeeded();
      } else {
        breaker.failed(r::clock::now());
      }
      return result;
    }

    const redis_options options;
    const std::int64_t max_in_flight;
    const std::chrono::nanoseconds lease;
    const Clock clock;
    const std::int64_t unit_ns;
    std::string max_digits, lease_digits, ttl_digits, member_prefix;
    std::atomic<std::uint64_t> serial{0};
    detail::redis::connection_pool pool;
    detail::redis::circuit_breaker breaker;
    concurrency_limiter local;
  };

  static const std::string& sha() {
    static const std::string digest = detail::redis::sha1_hex(detail::redis::concurrency_source);
    return digest;
  }

  /// `{status, in_flight}`, two sane integers; anything else (an error reply, nil, another
  /// shape) is a failure: a reply that cannot be trusted grants nothing.
  static std::optional<answer> decode(const redisReply& reply) noexcept {
    if (reply.type != REDIS_REPLY_ARRAY || reply.elements != 2) return std::nullopt;
    const redisReply* status = reply.element[0];
    const redisReply* in_flight = reply.element[1];
    if (status == nullptr || in_flight == nullptr || status->type != REDIS_REPLY_INTEGER ||
        in_flight->type != REDIS_REPLY_INTEGER || (status->integer != 0 && status->integer != 1) ||
        in_flight->integer < 0) {
      return std::nullopt;
    }
    return answer{status->integer, in_flight->integer};
  }

  /// `options` as redis_storage validates them, once `max_in_flight` and `lease` pass too.
  static redis_options checked(std::int64_t max_in_flight, std::chrono::nanoseconds lease,
                               redis_options options) {
    // The storage's own checks, with its messages: it throws for what it would refuse.
    options = redis_storage::validated(std::move(options));
    const std::int64_t unit_ns =
        options.time == time_source::server ? 1000 : options.client_time_unit.count();
    const auto fail = [](const std::string& what) {
      throw std::invalid_argument("ratelimit::redis_concurrency_limiter: " + what);
    };
    if (max_in_flight <= 0 || max_in_flight >= detail::redis::exact_below) {
      fail("max_in_flight must be in [1, 2^53) (got " + std::to_string(max_in_flight) + ")");
    }
    const std::string got = "(got " + std::to_string(lease.count()) + "ns)";
    if (lease.count() <= 0) fail("lease must be > 0ns " + got);
    if (lease.count() % unit_ns != 0) {
      fail("lease must be a whole number of " + std::to_string(unit_ns) + "ns units " + got);
    }
    if (lease.count() / unit_ns > detail::redis::longest_duration) {
      fail("lease must be <= 2^50 units of " + std::to_string(unit_ns) + "ns " + got);
    }
    return options;
  }

  std::shared_ptr<shared> shared_;
};

}  // namespace ratelimit
