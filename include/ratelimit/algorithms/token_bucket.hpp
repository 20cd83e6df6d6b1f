#pragma once

#include <chrono>
#include <cstdint>

#include "ratelimit/decision.hpp"
#include "ratelimit/detail/wide_math.hpp"
#include "ratelimit/quota.hpp"

namespace ratelimit::algorithms {

/// Starts full with `burst` tokens, refills continuously at `limit / period` up to
/// `burst`, admits a request iff it finds at least `cost` tokens. Bursts up to `burst`,
/// then the average rate. After the clock steps back the bucket neither refills nor
/// drains until time passes the latest instant it saw. O(1) state: 24 bytes.
struct token_bucket {
  /// Holds exactly `tokens + fraction / period` tokens: refilling adds `elapsed × limit`
  /// in units of 1/period token, so rates like 7 per minute never drift.
  struct state {
    /// The latest time seen. A clock that steps back refills nothing until it passes
    /// this again: no over-admission, and at most the step of extra lockout.
    std::int64_t refilled_at;
    std::int64_t tokens;    ///< whole tokens, in [0, burst]
    std::int64_t fraction;  ///< in [0, period); 0 whenever tokens == burst

    constexpr void refill(const quota& q, std::int64_t now) noexcept {
      if (now <= refilled_at) return;
      const std::uint64_t elapsed =
          static_cast<std::uint64_t>(now) - static_cast<std::uint64_t>(refilled_at);
      refilled_at = now;
      const auto period = static_cast<std::uint64_t>(q.period.count());
      const detail::u128 gained = detail::wide_mul(elapsed, static_cast<std::uint64_t>(q.limit));
      // `tokens >= burst` also clamps a bucket whose quota shrank.
      if (tokens >= q.burst || gained >= missing(q.burst, period)) {
        tokens = q.burst;
        fraction = 0;
        return;
      }
      const detail::u128 total = gained + static_cast<std::uint64_t>(fraction);
      tokens += static_cast<std::int64_t>(total / period);
      fraction = static_cast<std::int64_t>(total % period);
    }

    /// The first instant the bucket holds `units` tokens, for `units > tokens`; measured
    /// from `refilled_at`, which a stepped-back clock has not reached yet.
    constexpr detail::i128 holds_from(std::int64_t units, const quota& q) const noexcept {
      const auto period = static_cast<std::uint64_t>(q.period.count());
      const auto limit = static_cast<std::uint64_t>(q.limit);
      return detail::i128{refilled_at} +
             static_cast<detail::i128>(detail::ceil_div(missing(units, period), limit));
    }

   private:
    /// (units − tokens − fraction/period) × period: the shortfall in 1/period tokens.
    constexpr detail::u128 missing(std::int64_t units, std::uint64_t period) const noexcept {
      return detail::wide_mul(static_cast<std::uint64_t>(units - tokens), period) -
             static_cast<std::uint64_t>(fraction);
    }
  };

  static constexpr state fresh(const quota& q, std::int64_t now) noexcept {
    return {now, q.burst, 0};
  }

  static constexpr decision step(state& s, const quota& q, std::int64_t now,
                                 std::int64_t cost) noexcept {
    s.refill(q, now);
    decision d{.limit = q.limit};
    if (cost > q.burst) {
      d.retry_after = std::chrono::nanoseconds::max();
    } else if (s.tokens >= cost) {
      s.tokens -= cost;
      d.allowed = true;
    } else {
      d.retry_after = detail::wait_until(s.holds_from(cost, q), now);
    }
    d.remaining = s.tokens;
    if (s.tokens < q.burst) d.reset_after = detail::wait_until(s.holds_from(q.burst, q), now);
    return d;
  }
};

}  // namespace ratelimit::algorithms
