#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <random>
#include <ratelimit/decision.hpp>
#include <ratelimit/detail/intended_wrap.hpp>
#include <ratelimit/quota.hpp>
#include <string>
#include <vector>

/// Seeded random requests for driving one key: quotas chosen to be awkward, time steps and
/// costs chosen to land on the edges where off-by-one errors live.
namespace ratelimit_test {

__extension__ typedef __int128 i128;
__extension__ typedef unsigned __int128 u128;

inline constexpr std::int64_t int64_max = std::numeric_limits<std::int64_t>::max();
inline constexpr std::int64_t int64_min = std::numeric_limits<std::int64_t>::min();

struct request {
  std::int64_t at;
  std::int64_t cost;
};

inline std::string describe(const ratelimit::quota& q) {
  return "quota{limit=" + std::to_string(q.limit) + ", period=" + std::to_string(q.period.count()) +
         "ns, burst=" + std::to_string(q.burst) + "}";
}

/// Rates that are not whole nanoseconds per unit, bursts above and below the limit, and
/// 1 per nanosecond: the quotas where rounding shows.
inline std::vector<ratelimit::quota> awkward_quotas() {
  using namespace std::chrono_literals;
  using ratelimit::quota;
  return {
      quota::per_minute(7),
      quota::per_minute(7).with_burst(3),
      quota::per_minute(7).with_burst(20),
      quota::per(10, 13s),
      quota::per(10, 13s).with_burst(25),
      quota::per_hour(1),
      quota::per_second(1'000'000'000),
      quota::per_second(1'000'000'000).with_burst(1),
      quota::per(1, 1ns),
      quota::per(3, 10ns),
      quota::per(5, 7ns).with_burst(2),
      quota::per(2, 3ns).with_burst(5),
      quota::per_second(1000).with_burst(1),
      quota::per(7, 1'000'000'007ns),
  };
}

/// Quotas at the ends of what the math accepts.
inline std::vector<ratelimit::quota> extreme_quotas() {
  using namespace std::chrono_literals;
  using ratelimit::quota;
  constexpr std::int64_t max_units = quota::max_units;
  constexpr std::chrono::nanoseconds longest = std::chrono::nanoseconds::max();
  return {
      quota::per(max_units, longest),
      quota::per(max_units, 1ns),
      quota::per(1, longest),
      quota::per(3, longest).with_burst(max_units),
      quota::per(3, 5'000'000'000'000'000'000ns),
      quota::per(max_units, 1s).with_burst(1),
      quota::per(1, 1ns).with_burst(max_units),
      quota::per(7, 200 * 8760h),
  };
}

struct trace_shape {
  bool backward = false;  ///< sometimes step the clock back, up to two periods
  bool extreme = false;   ///< steps and start times anywhere in int64
};

/// A key's requests, one at a time. The next step in time may depend on the previous
/// decision, so that retry_after and reset_after are hit exactly, and 1ns early.
class random_requests {
 public:
  random_requests(const ratelimit::quota& q, std::int64_t capacity, std::uint64_t seed,
                  trace_shape s = {})
      : quota_(q), capacity_(capacity), shape_(s), random_(seed) {}

  std::int64_t now() const { return now_; }
  void start_at(std::int64_t t) { now_ = t; }

  /// A start time: near zero, or for extreme shapes also near either end of int64.
  std::int64_t start() {
    const std::int64_t period = quota_.period.count();
    if (!shape_.extreme || below(3) == 0) {
      return between(-1'000'000'000'000'000, 1'000'000'000'000'000);
    }
    switch (below(3)) {
      case 0:
        return clamp(i128{int64_min} + between(0, clamp(i128{period} * 3)));
      case 1:
        return clamp(i128{int64_max} - between(0, clamp(i128{period} * 3)));
      default:
        return between(int64_min, int64_max);
    }
  }

  /// The next request, `after` being the decision of the previous one.
  request next(const ratelimit::decision& after) {
    now_ = clamp(i128{now_} + step(after));
    return {now_, cost()};
  }

  /// A uniform integer in [lo, hi].
  // The span and the offset are computed modulo 2^64, two's complement: they wrap on purpose.
  RATELIMIT_INTENDED_UNSIGNED_WRAP std::int64_t between(std::int64_t lo, std::int64_t hi) {
    const auto span = static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo);
    if (span == std::numeric_limits<std::uint64_t>::max()) {
      return static_cast<std::int64_t>(random_());
    }
    return static_cast<std::int64_t>(static_cast<std::uint64_t>(lo) + random_() % (span + 1));
  }

  /// [0, n); the modulo bias is irrelevant for picking cases.
  std::uint64_t below(std::uint64_t n) { return random_() % n; }

 private:
  static std::int64_t clamp(i128 v) {
    return v > int64_max ? int64_max : v < int64_min ? int64_min : static_cast<std::int64_t>(v);
  }

  std::int64_t step(const ratelimit::decision& after) {
    using std::chrono::nanoseconds;
    const std::int64_t period = quota_.period.count();
    const std::int64_t interval = std::max<std::int64_t>(1, period / quota_.limit);
    const std::uint64_t pick = below(100);
    if (shape_.backward && pick < 6) return -between(1, clamp(i128{period} * 2));
    if (pick < 16) return 0;
    if (pick < 30) return between(1, 10);
    if (pick < 44) return between(0, interval);
    if (pick < 58) {
      if (!after.allowed && after.retry_after > nanoseconds::zero() &&
          after.retry_after != nanoseconds::max()) {
        return after.retry_after.count() - static_cast<std::int64_t>(below(2));
      }
      return between(0, interval);
    }
    if (pick < 66) {
      if (after.reset_after > nanoseconds::zero() && after.reset_after != nanoseconds::max()) {
        return after.reset_after.count() - static_cast<std::int64_t>(below(2));
      }
      return between(0, period);
    }
    if (pick < 84) return between(0, period);
    if (pick < 94) return between(0, clamp(i128{period} * 3));
    if (pick < 99) return between(0, clamp(i128{period} * 100));
    return between(0, shape_.extreme ? int64_max : 1'000'000'000'000'000);
  }

  std::int64_t cost() {
    const std::uint64_t pick = below(100);
    if (pick < 70) return 1;
    if (pick < 82) return between(1, capacity_);
    if (pick < 87) return capacity_;
    if (pick < 91) return capacity_ == int64_max ? capacity_ : capacity_ + 1;
    if (pick < 94) return int64_max;
    if (pick < 97) return between(1, std::min<std::int64_t>(capacity_, 3));
    return between(capacity_, int64_max);
  }

  ratelimit::quota quota_;
  std::int64_t capacity_;
  trace_shape shape_;
  std::mt19937_64 random_;
  std::int64_t now_ = 0;
};

}  // namespace ratelimit_test
