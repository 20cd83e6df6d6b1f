#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "ratelimit/algorithm.hpp"
#include "ratelimit/algorithms/fixed_window.hpp"
#include "ratelimit/algorithms/leaky_bucket.hpp"
#include "ratelimit/algorithms/sliding_log.hpp"
#include "ratelimit/algorithms/sliding_window_counter.hpp"
#include "ratelimit/algorithms/token_bucket.hpp"
#include "ratelimit/clock.hpp"
#include "ratelimit/decision.hpp"
#include "ratelimit/detail/jitter.hpp"
#include "ratelimit/observer.hpp"
#include "ratelimit/quota.hpp"
#include "ratelimit/reservation.hpp"
#include "ratelimit/storage.hpp"
#include "ratelimit/storage/in_memory.hpp"

namespace ratelimit {

/// Glues a quota, a clock and a storage to an algorithm, and tells `Observer` (see
/// decision_observer) of every decision. As thread-safe as its storage, clock and observer:
/// with the defaults, one limiter serves any number of threads.
template <algorithm Algorithm, clock_source Clock, storage_for<Algorithm> Storage,
          class Observer = no_observer>
class basic_limiter {
 public:
  using algorithm_type = Algorithm;
  using clock_type = Clock;
  using storage_type = Storage;
  using observer_type = Observer;

  /// Throws std::invalid_argument naming the field if `q` is invalid.
  basic_limiter(ratelimit::quota q, Clock clock, Storage storage, Observer observer = Observer())
      : quota_(q.validated()),
        clock_(std::move(clock)),
        storage_(std::move(storage)),
        observer_(std::move(observer)) {
    if constexpr (backend_error_observer<Observer> &&
                  requires { storage_.add_error_listener([](const backend_error&) {}); }) {
      storage_.add_error_listener(
          [observer = observer_](const backend_error& e) mutable { observer.on_backend_error(e); });
    }
    if constexpr (requires { storage_.template prepare<Algorithm>(quota_); }) {
      storage_.template prepare<Algorithm>(quota_);
    }
  }

  /// Decides whether a request of `cost` units for `key` may pass now, and consumes the
  /// units if it may. Throws std::invalid_argument only for `cost <= 0`.
  [[nodiscard]] decision try_acquire(std::string_view key, std::int64_t cost = 1) {
    check_cost(cost);
    return observed(key, [&](std::int64_t now) {
      return storage_.template decide<Algorithm>(key, quota_, now, cost);
    });
  }

  /// As try_acquire(key, cost), under `q` instead of the limiter's quota: for tiers, where
  /// the quota depends on who calls (a free user's, a premium user's). Throws
  /// std::invalid_argument for an invalid `q`, one the storage can't decide, or `cost <= 0`.
  ///
  /// A key whose quota changes keeps its state, read under the new quota. With the same
  /// period, what the key has used stays used: a token bucket keeps its missing tokens, the
  /// windows and the log their counts, and the new limit and burst apply at once. A leaky
  /// bucket keeps the instant its queue drains, so its length is counted in the new
  /// interval. Changing a tier's period rescales the token bucket's deficit and realigns
  /// the windows: keep one period across a rule's tiers.
  [[nodiscard]] decision try_acquire(std::string_view key, std::int64_t cost,
                                     const ratelimit::quota& q) {
    check_cost(cost);
    const ratelimit::quota valid = q.validated();
    if constexpr (requires { storage_.template prepare<Algorithm>(valid); }) {
      storage_.template prepare<Algorithm>(valid);
    }
    return observed(key, [&](std::int64_t now) {
      return storage_.template decide<Algorithm>(key, valid, now, cost);
    });
  }

  /// Books `cost` units of `key` now for a request that waits up to `max_wait` for them:
  /// if they are (or, for a token bucket, will have refilled) available within that wait,
  /// they are taken at once and the reservation's delay() is the wait to honour; else
  /// nothing is taken. For event loops: schedule the request after delay(), or cancel().
  /// Throws std::invalid_argument only for `cost <= 0` or a negative `max_wait`.
  template <reservable A = Algorithm>
  requires reserving_storage_for<Storage, A>
  [[nodiscard]] reservation<A> reserve(std::string_view key, std::int64_t cost,
                                       std::chrono::nanoseconds max_wait) {
    check_cost(cost);
    check_wait(max_wait);
    std::optional<reservation<A>> r;
    observed(key, [&](std::int64_t now) {
      r.emplace(reserve_at(key, cost, max_wait.count(), now));
      return r->decision();
    });
    return std::move(*r);
  }

  /// Gives back what `r`, reserved on `key` by this limiter, took, if no request still
  /// standing has been booked on the key after it; else nothing, as a later request was
  /// promised its instant on the strength of those units (see the algorithm's cancel).
  /// Nothing for a rejected, degraded or already cancelled reservation. Serving the
  /// request afterwards is the caller's error.
  template <reservable A>
  requires reserving_storage_for<Storage, A> && std::same_as<A, Algorithm>
  void cancel(std::string_view key, reservation<A>& r) {
    if (!std::exchange(r.outstanding_, false)) return;
    static_cast<void>(
        storage_.template cancel<A>(key, r.quota_, detail::now_nanoseconds(clock_), r.booking_));
  }

  /// Waits up to `max_wait` until `cost` units of `key` are available, takes them and
  /// returns the admission; or returns the rejection at once when the wait would be longer
  /// (it never sleeps just to fail). The buckets reserve (see reserve()), so waiters are
  /// served in the order they came and one wait is all it takes; the windows retry when
  /// their retry_after is due, and a waiter that then finds the units gone to another
  /// waits again, or gives up at the rejection that would overrun `max_wait`. A rejection's
  /// retry_after is the wait until the same acquire would succeed.
  ///
  /// `jitter` (>= 0) adds a uniform draw from [0, jitter] to every wait, never beyond
  /// `max_wait`, so that waiters released together don't retry together. The limiter's
  /// clock sleeps (manual_clock wakes on advance()); admitted, `delay` is 0: it was waited.
  /// Throws std::invalid_argument for `cost <= 0` or a negative `max_wait` or `jitter`.
  [[nodiscard]] decision acquire(std::string_view key, std::int64_t cost,
                                 std::chrono::nanoseconds max_wait,
                                 std::chrono::nanoseconds jitter = {}) {
    check_cost(cost);
    check_wait(max_wait);
    if (jitter.count() < 0) {
      throw std::invalid_argument("ratelimit: jitter must be >= 0ns (got " +
                                  std::to_string(jitter.count()) + "ns)");
    }
    std::int64_t now = detail::now_nanoseconds(clock_);
    const std::int64_t deadline = detail::saturating_add(now, max_wait.count());
    if constexpr (reserving_storage_for<Storage, Algorithm>) {
      decision d = observed(key, [&](std::int64_t) {
        return reserve_at(key, cost, max_wait.count(), now).decision();
      });
      if (d.allowed && d.delay.count() > 0) {
        wait(detail::saturating_add(now, d.delay.count()), deadline, jitter);
        d.delay = {};
      }
      return d;
    } else {
      for (;;) {
        decision d = observed(key, [&](std::int64_t) {
          return storage_.template decide<Algorithm>(key, quota_, now, cost);
        });
        if (d.allowed) {
          // A leaky bucket on a storage that can't reserve: admitted is queued, and the
          // queue's delay (at most burst intervals) must be honoured even past max_wait.
          if (d.delay.count() > 0) {
            detail::sleep_until(clock_, detail::saturating_add(now, d.delay.count()));
            d.delay = {};
          }
          return d;
        }
        const std::chrono::nanoseconds budget{deadline - now};
        if (d.retry_after > budget) {
          if (d.retry_after != std::chrono::nanoseconds::max()) d.retry_after -= budget;
          return d;
        }
        wait(now + d.retry_after.count(), deadline, jitter);
        now = detail::now_nanoseconds(clock_);
      }
    }
  }

  /// As acquire(key, cost, max_wait, jitter) for one unit.
  [[nodiscard]] decision acquire(std::string_view key, std::chrono::nanoseconds max_wait,
                                 std::chrono::nanoseconds jitter = {}) {
    return acquire(key, 1, max_wait, jitter);
  }

  /// Decides several requests at one time: in one round trip where the storage can (Redis),
  /// one after the other otherwise. Throws std::invalid_argument for a cost <= 0, before
  /// deciding any.
  [[nodiscard]] std::vector<decision> try_acquire_many(std::span<const request> requests) {
    for (const request& r : requests) check_cost(r.cost);
    std::vector<decision> out(requests.size());
    const auto started = std::chrono::steady_clock::now();
    const std::int64_t now = detail::now_nanoseconds(clock_);
    if constexpr (requires {
                    storage_.template decide_many<Algorithm>(requests, quota_, now, std::span{out});
                  }) {
      storage_.template decide_many<Algorithm>(requests, quota_, now, std::span{out});
    } else {
      for (std::size_t i = 0; i < requests.size(); ++i) {
        out[i] =
            storage_.template decide<Algorithm>(requests[i].key, quota_, now, requests[i].cost);
      }
    }
    if constexpr (decision_observer<Observer>) {
      // Each decision of a batch is told with the batch's latency: they were made together.
      const std::chrono::nanoseconds latency = std::chrono::steady_clock::now() - started;
      for (std::size_t i = 0; i < requests.size(); ++i) {
        observer_.on_decision({.key = requests[i].key,
                               .decision = out[i],
                               .rule = 0,
                               .rule_name = {},
                               .latency = latency});
      }
    }
    return out;
  }

  const ratelimit::quota& quota() const noexcept { return quota_; }
  Clock& clock() noexcept { return clock_; }
  Storage& storage() noexcept { return storage_; }
  Observer& observer() noexcept { return observer_; }

 private:
  /// `decide(now)`, told to the observer if it listens: with no observer, just that.
  template <class Decide>
  decision observed(std::string_view key, Decide decide) {
    if constexpr (decision_observer<Observer>) {
      const auto started = std::chrono::steady_clock::now();
      // On steady_clock, the limiter's reading of the time starts the latency too: one
      // clock read fewer, a third of what observing costs.
      const decision d = decide(std::is_same_v<Clock, std::chrono::steady_clock>
                                    ? detail::to_nanoseconds(started.time_since_epoch())
                                    : detail::now_nanoseconds(clock_));
      observer_.on_decision({.key = key,
                             .decision = d,
                             .rule = 0,
                             .rule_name = {},
                             .latency = std::chrono::steady_clock::now() - started});
      return d;
    } else {
      return decide(detail::now_nanoseconds(clock_));
    }
  }

  template <reservable A = Algorithm>
  reservation<A> reserve_at(std::string_view key, std::int64_t cost, std::int64_t max_wait,
                            std::int64_t now) {
    typename A::booking booking{};
    const decision d = storage_.template reserve<A>(key, quota_, now, cost, max_wait, booking);
    return reservation<A>(d, booking, quota_);
  }

  /// Sleeps until `until` plus jitter, and never past `deadline`.
  void wait(std::int64_t until, std::int64_t deadline, std::chrono::nanoseconds jitter) {
    const std::int64_t spread = std::min(jitter.count(), deadline - until);
    detail::sleep_until(clock_, until + detail::jitter_up_to(spread));
  }

  static void check_wait(std::chrono::nanoseconds max_wait) {
    if (max_wait.count() < 0) {
      throw std::invalid_argument("ratelimit: max_wait must be >= 0ns (got " +
                                  std::to_string(max_wait.count()) + "ns)");
    }
  }

  static void check_cost(std::int64_t cost) {
    if (cost <= 0) {
      throw std::invalid_argument("ratelimit: cost must be > 0 (got " + std::to_string(cost) + ")");
    }
  }

  ratelimit::quota quota_;
  Clock clock_;
  Storage storage_;
  [[no_unique_address]] Observer observer_;
};

// The five limiters are classes, not aliases, so that class template argument deduction
// works: `ratelimit::token_bucket limiter{ratelimit::quota::per_second(10)};`.

/// Bursts up to `burst`, then `limit` per `period` on average. See algorithms::token_bucket.
template <clock_source Clock = std::chrono::steady_clock,
          storage_for<algorithms::token_bucket> Storage = in_memory_storage,
          class Observer = no_observer>
class token_bucket : public basic_limiter<algorithms::token_bucket, Clock, Storage, Observer> {
 public:
  explicit token_bucket(ratelimit::quota q, Clock clock = Clock(), Storage storage = Storage(),
                        Observer observer = Observer())
      : basic_limiter<algorithms::token_bucket, Clock, Storage, Observer>(
            q, std::move(clock), std::move(storage), std::move(observer)) {}
};

/// Constant output rate: admitted requests carry the `delay` that spaces them out. See
/// algorithms::leaky_bucket.
template <clock_source Clock = std::chrono::steady_clock,
          storage_for<algorithms::leaky_bucket> Storage = in_memory_storage,
          class Observer = no_observer>
class leaky_bucket : public basic_limiter<algorithms::leaky_bucket, Clock, Storage, Observer> {
 public:
  explicit leaky_bucket(ratelimit::quota q, Clock clock = Clock(), Storage storage = Storage(),
                        Observer observer = Observer())
      : basic_limiter<algorithms::leaky_bucket, Clock, Storage, Observer>(
            q, std::move(clock), std::move(storage), std::move(observer)) {}
};

/// `limit` per aligned window; up to 2× at a window edge. See algorithms::fixed_window.
template <clock_source Clock = std::chrono::steady_clock,
          storage_for<algorithms::fixed_window> Storage = in_memory_storage,
          class Observer = no_observer>
class fixed_window : public basic_limiter<algorithms::fixed_window, Clock, Storage, Observer> {
 public:
  explicit fixed_window(ratelimit::quota q, Clock clock = Clock(), Storage storage = Storage(),
                        Observer observer = Observer())
      : basic_limiter<algorithms::fixed_window, Clock, Storage, Observer>(
            q, std::move(clock), std::move(storage), std::move(observer)) {}
};

/// Exactly `limit` in any window of one period, at O(limit) memory per key. See
/// algorithms::sliding_log.
template <clock_source Clock = std::chrono::steady_clock,
          storage_for<algorithms::sliding_log> Storage = in_memory_storage,
          class Observer = no_observer>
class sliding_log : public basic_limiter<algorithms::sliding_log, Clock, Storage, Observer> {
 public:
  explicit sliding_log(ratelimit::quota q, Clock clock = Clock(), Storage storage = Storage(),
                       Observer observer = Observer())
      : basic_limiter<algorithms::sliding_log, Clock, Storage, Observer>(
            q, std::move(clock), std::move(storage), std::move(observer)) {}
};

/// A sliding window estimated from two window counts, in O(1) memory. See
/// algorithms::sliding_window_counter.
template <clock_source Clock = std::chrono::steady_clock,
          storage_for<algorithms::sliding_window_counter> Storage = in_memory_storage,
          class Observer = no_observer>
class sliding_window_counter
    : public basic_limiter<algorithms::sliding_window_counter, Clock, Storage, Observer> {
 public:
  explicit sliding_window_counter(ratelimit::quota q, Clock clock = Clock(),
                                  Storage storage = Storage(), Observer observer = Observer())
      : basic_limiter<algorithms::sliding_window_counter, Clock, Storage, Observer>(
            q, std::move(clock), std::move(storage), std::move(observer)) {}
};

}  // namespace ratelimit
