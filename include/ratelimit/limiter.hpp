#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
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
#include "ratelimit/quota.hpp"
#include "ratelimit/storage.hpp"
#include "ratelimit/storage/in_memory.hpp"

namespace ratelimit {

/// Glues a quota, a clock and a storage to an algorithm. As thread-safe as its storage
/// and clock: with the defaults, one limiter serves any number of threads.
template <algorithm Algorithm, clock_source Clock, storage_for<Algorithm> Storage>
class basic_limiter {
 public:
  using algorithm_type = Algorithm;
  using clock_type = Clock;
  using storage_type = Storage;

  /// Throws std::invalid_argument naming the field if `q` is invalid.
  basic_limiter(ratelimit::quota q, Clock clock, Storage storage)
      : quota_(q.validated()), clock_(std::move(clock)), storage_(std::move(storage)) {
    if constexpr (requires { storage_.template prepare<Algorithm>(quota_); }) {
      storage_.template prepare<Algorithm>(quota_);
    }
  }

  /// Decides whether a request of `cost` units for `key` may pass now, and consumes the
  /// units if it may. Throws std::invalid_argument only for `cost <= 0`.
  [[nodiscard]] decision try_acquire(std::string_view key, std::int64_t cost = 1) {
    check_cost(cost);
    return storage_.template decide<Algorithm>(key, quota_, detail::now_nanoseconds(clock_), cost);
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
    return storage_.template decide<Algorithm>(key, valid, detail::now_nanoseconds(clock_), cost);
  }

  /// Decides several requests at one time: in one round trip where the storage can (Redis),
  /// one after the other otherwise. Throws std::invalid_argument for a cost <= 0, before
  /// deciding any.
  [[nodiscard]] std::vector<decision> try_acquire_many(std::span<const request> requests) {
    for (const request& r : requests) check_cost(r.cost);
    std::vector<decision> out(requests.size());
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
    return out;
  }

  const ratelimit::quota& quota() const noexcept { return quota_; }
  Clock& clock() noexcept { return clock_; }
  Storage& storage() noexcept { return storage_; }

 private:
  static void check_cost(std::int64_t cost) {
    if (cost <= 0) {
      throw std::invalid_argument("ratelimit: cost must be > 0 (got " + std::to_string(cost) + ")");
    }
  }

  ratelimit::quota quota_;
  Clock clock_;
  Storage storage_;
};

// The five limiters are classes, not aliases, so that class template argument deduction
// works: `ratelimit::token_bucket limiter{ratelimit::quota::per_second(10)};`.

/// Bursts up to `burst`, then `limit` per `period` on average. See algorithms::token_bucket.
template <clock_source Clock = std::chrono::steady_clock,
          storage_for<algorithms::token_bucket> Storage = in_memory_storage>
class token_bucket : public basic_limiter<algorithms::token_bucket, Clock, Storage> {
 public:
  explicit token_bucket(ratelimit::quota q, Clock clock = Clock(), Storage storage = Storage())
      : basic_limiter<algorithms::token_bucket, Clock, Storage>(q, std::move(clock),
                                                                std::move(storage)) {}
};

/// Constant output rate: admitted requests carry the `delay` that spaces them out. See
/// algorithms::leaky_bucket.
template <clock_source Clock = std::chrono::steady_clock,
          storage_for<algorithms::leaky_bucket> Storage = in_memory_storage>
class leaky_bucket : public basic_limiter<algorithms::leaky_bucket, Clock, Storage> {
 public:
  explicit leaky_bucket(ratelimit::quota q, Clock clock = Clock(), Storage storage = Storage())
      : basic_limiter<algorithms::leaky_bucket, Clock, Storage>(q, std::move(clock),
                                                                std::move(storage)) {}
};

/// `limit` per aligned window; up to 2× at a window edge. See algorithms::fixed_window.
template <clock_source Clock = std::chrono::steady_clock,
          storage_for<algorithms::fixed_window> Storage = in_memory_storage>
class fixed_window : public basic_limiter<algorithms::fixed_window, Clock, Storage> {
 public:
  explicit fixed_window(ratelimit::quota q, Clock clock = Clock(), Storage storage = Storage())
      : basic_limiter<algorithms::fixed_window, Clock, Storage>(q, std::move(clock),
                                                                std::move(storage)) {}
};

/// Exactly `limit` in any window of one period, at O(limit) memory per key. See
/// algorithms::sliding_log.
template <clock_source Clock = std::chrono::steady_clock,
          storage_for<algorithms::sliding_log> Storage = in_memory_storage>
class sliding_log : public basic_limiter<algorithms::sliding_log, Clock, Storage> {
 public:
  explicit sliding_log(ratelimit::quota q, Clock clock = Clock(), Storage storage = Storage())
      : basic_limiter<algorithms::sliding_log, Clock, Storage>(q, std::move(clock),
                                                               std::move(storage)) {}
};

/// A sliding window estimated from two window counts, in O(1) memory. See
/// algorithms::sliding_window_counter.
template <clock_source Clock = std::chrono::steady_clock,
          storage_for<algorithms::sliding_window_counter> Storage = in_memory_storage>
class sliding_window_counter
    : public basic_limiter<algorithms::sliding_window_counter, Clock, Storage> {
 public:
  explicit sliding_window_counter(ratelimit::quota q, Clock clock = Clock(),
                                  Storage storage = Storage())
      : basic_limiter<algorithms::sliding_window_counter, Clock, Storage>(q, std::move(clock),
                                                                          std::move(storage)) {}
};

}  // namespace ratelimit
