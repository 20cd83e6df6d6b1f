#pragma once

#include <cstdint>

#include "ratelimit/detail/wide_math.hpp"
#include "ratelimit/quota.hpp"

/// The bucket shared by token_bucket and leaky_bucket: a level that refills continuously
/// at `limit / period` up to `burst`. The two algorithms admit the same requests; the
/// leaky bucket also reports how long the admitted request waits in its queue.
namespace ratelimit::detail {

/// Holds exactly `tokens + fraction / period` tokens: refilling adds `elapsed × limit`
/// in units of 1/period token, so rates like 7 per minute never drift.
struct fluid_bucket {
  /// The latest time seen. A clock that steps back refills nothing until it passes this
  /// again: no over-admission, and at most the step of extra lockout.
  std::int64_t refilled_at;
  std::int64_t tokens;    ///< whole tokens, in [0, burst]
  std::int64_t fraction;  ///< in [0, period); 0 whenever tokens == burst

  static constexpr fluid_bucket full(const quota& q, std::int64_t now) noexcept {
    return {now, q.burst, 0};
  }

  constexpr void refill(const quota& q, std::int64_t now) noexcept {
    if (now <= refilled_at) return;
    const std::uint64_t elapsed =
        static_cast<std::uint64_t>(now) - static_cast<std::uint64_t>(refilled_at);
    refilled_at = now;
    if (tokens >= q.burst) {  // also clamps a bucket whose quota shrank
      tokens = q.burst;
      fraction = 0;
      return;
    }
    const auto period = static_cast<std::uint64_t>(q.period.count());
    const u128 gained = wide_mul(elapsed, static_cast<std::uint64_t>(q.limit));
    if (gained >= missing(q.burst, period)) {
      tokens = q.burst;
      fraction = 0;
      return;
    }
    const u128 total = gained + static_cast<std::uint64_t>(fraction);
    tokens += static_cast<std::int64_t>(total / period);
    fraction = static_cast<std::int64_t>(total % period);
  }

  /// Nanoseconds until the bucket holds `units` whole tokens, rounded up; 0 if it does.
  constexpr u128 nanoseconds_until(std::int64_t units, const quota& q) const noexcept {
    if (tokens >= units) return 0;
    const auto period = static_cast<std::uint64_t>(q.period.count());
    return ceil_div(missing(units, period), static_cast<std::uint64_t>(q.limit));
  }

 private:
  /// (units − tokens − fraction/period) × period: the shortfall in 1/period tokens.
  constexpr u128 missing(std::int64_t units, std::uint64_t period) const noexcept {
    return wide_mul(static_cast<std::uint64_t>(units - tokens), period) -
           static_cast<std::uint64_t>(fraction);
  }
};

}  // namespace ratelimit::detail
