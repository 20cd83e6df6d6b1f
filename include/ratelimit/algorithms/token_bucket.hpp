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
  /// The bucket holds `burst − deficit / period` tokens, exactly: the deficit counts
  /// missing tokens in units of 1/period token, so a refill of `elapsed × limit` units
  /// never rounds and rates like 7 per minute never drift. Keeping the deficit rather
  /// than the tokens lets `remaining` and `reset_after` divide independently of each
  /// other (and of the refill), which shortens the decision's critical path.
  struct state {
    /// The latest time seen. A clock that steps back refills nothing until it passes
    /// this again: no over-admission, and at most the step of extra lockout.
    std::int64_t refilled_at;
    /// The deficit, as two words: a 128-bit member would pad the state to 32 bytes.
    std::uint64_t deficit_low;
    std::uint64_t deficit_high;

    constexpr detail::u128 deficit() const noexcept {
      return detail::u128{deficit_high} << 64 | deficit_low;
    }
    constexpr void set_deficit(detail::u128 d) noexcept {
      deficit_low = static_cast<std::uint64_t>(d);
      deficit_high = static_cast<std::uint64_t>(d >> 64);
    }
  };

  static constexpr state fresh(const quota&, std::int64_t now) noexcept { return {now, 0, 0}; }

  static constexpr decision step(state& s, const quota& q, std::int64_t now,
                                 std::int64_t cost) noexcept {
    const auto period = static_cast<std::uint64_t>(q.period.count());
    const auto limit = static_cast<std::uint64_t>(q.limit);
    detail::u128 deficit = s.deficit();
    if (now > s.refilled_at) {
      const std::uint64_t elapsed =
          static_cast<std::uint64_t>(now) - static_cast<std::uint64_t>(s.refilled_at);
      const detail::u128 refill = detail::wide_mul(elapsed, limit);
      deficit = deficit > refill ? deficit - refill : 0;
      s.refilled_at = now;
    }

    decision d{.limit = q.limit};
    const detail::u128 capacity = detail::wide_mul(static_cast<std::uint64_t>(q.burst), period);
    if (cost > q.burst) {
      d.retry_after = std::chrono::nanoseconds::max();
    } else if (const detail::u128 spend =
                   detail::wide_mul(static_cast<std::uint64_t>(cost), period);
               deficit + spend <= capacity) {
      deficit += spend;
      d.allowed = true;
    } else {
      d.retry_after = wait(s, deficit - (capacity - spend), limit, now);
    }
    s.set_deficit(deficit);
    // A deficit above the capacity (a quota that shrank) holds no whole token.
    if (deficit < capacity) {
      d.remaining = q.burst - static_cast<std::int64_t>(detail::ceil_div(deficit, period));
    }
    d.reset_after = wait(s, deficit, limit, now);
    return d;
  }

 private:
  /// The wait until `units` (1/period token) have refilled, counted from `refilled_at`,
  /// which a stepped-back clock has not reached yet.
  static constexpr std::chrono::nanoseconds wait(const state& s, detail::u128 units,
                                                 std::uint64_t limit, std::int64_t now) noexcept {
    if (units == 0) return std::chrono::nanoseconds::zero();
    return detail::wait_until(
        detail::i128{s.refilled_at} + static_cast<detail::i128>(detail::ceil_div(units, limit)),
        now);
  }
};

}  // namespace ratelimit::algorithms
