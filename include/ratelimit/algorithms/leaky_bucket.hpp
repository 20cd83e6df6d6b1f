#pragma once

#include <chrono>
#include <cstdint>

#include "ratelimit/decision.hpp"
#include "ratelimit/detail/wide_math.hpp"
#include "ratelimit/quota.hpp"

namespace ratelimit::algorithms {

/// A queue of at most `burst` requests drained at one per `I = period / limit`: each
/// admitted request gets `delay`, its wait in the queue, so requests served at (admit
/// time + delay) leave at a constant rate, without bursts. With `tat` the instant the
/// queue drains: `delay = max(0, tat − now)`; admits iff `delay + cost·I <= burst·I`, then
/// `tat = now + delay + cost·I`. O(1) state: 16 bytes.
///
/// `tat` is exact: whole nanoseconds plus a fraction in units of 1/limit ns, so the rate
/// never drifts; a reported delay is rounded up to the nanosecond, and where `I` is not
/// a whole number of nanoseconds consecutive departures are floor(I) or ceil(I) apart.
/// A clock stepped back finds the queue that much longer, so departures stay spaced. A
/// request that would leave the queue after the end of the clock is never admitted.
struct leaky_bucket {
  struct state {
    std::int64_t drains_at;  ///< tat, whole nanoseconds
    std::int64_t fraction;   ///< tat's fraction of a nanosecond, in 1/limit ns: [0, limit]
  };

  /// Drained since the beginning of the clock.
  static constexpr state fresh(const quota&, std::int64_t) noexcept {
    return {detail::int64_min, 0};
  }

  static constexpr decision step(state& s, const quota& q, std::int64_t now,
                                 std::int64_t cost) noexcept {
    using detail::u128;
    const auto limit = static_cast<std::uint64_t>(q.limit);
    const auto interval = static_cast<std::uint64_t>(q.period.count());  // I, in 1/limit ns
    const u128 capacity = units(q.burst, interval);
    const u128 queued = queued_at(s, now, limit);
    const u128 delay = detail::ceil_div(queued, limit);

    decision d{.limit = q.limit};
    if (cost > q.burst ||
        detail::i128{now} + static_cast<detail::i128>(delay) > detail::int64_max) {
      d.retry_after = std::chrono::nanoseconds::max();
    } else if (const u128 after = queued + units(cost, interval); after <= capacity) {
      d.allowed = true;
      d.delay = std::chrono::nanoseconds{static_cast<std::int64_t>(delay)};
      s = draining_at(now, after, limit);
    } else {
      d.retry_after =
          detail::wait_until(admitted_from(s, capacity - units(cost, interval), limit), now);
    }
    const detail::i128 drained = detail::i128{s.drains_at} + (s.fraction > 0 ? 1 : 0);
    const u128 held = queued_at(s, now, limit);
    if (drained <= detail::int64_max && held < capacity) {
      d.remaining = static_cast<std::int64_t>(detail::divide(capacity - held, interval).quotient);
    }
    d.reset_after = detail::wait_until(drained, now);
    return d;
  }

 private:
  static constexpr detail::u128 units(std::int64_t requests, std::uint64_t interval) noexcept {
    return detail::wide_mul(static_cast<std::uint64_t>(requests), interval);
  }

  /// The queue drains `queued` (1/limit ns) after `now`. A drain instant past the end of
  /// the clock is kept as INT64_MAX + 1ns (a fraction of a whole `limit`): every request
  /// behind it would leave after the end of time, so none is admitted.
  static constexpr state draining_at(std::int64_t now, detail::u128 queued,
                                     std::uint64_t limit) noexcept {
    const detail::division ns = detail::divide(queued, limit);
    const detail::i128 whole = detail::i128{now} + static_cast<detail::i128>(ns.quotient);
    if (whole > detail::int64_max) return {detail::int64_max, static_cast<std::int64_t>(limit)};
    return {static_cast<std::int64_t>(whole), static_cast<std::int64_t>(ns.remainder)};
  }

  /// `max(0, tat − now)` in 1/limit ns.
  static constexpr detail::u128 queued_at(const state& s, std::int64_t now,
                                          std::uint64_t limit) noexcept {
    const detail::i128 ahead = detail::i128{s.drains_at} - now;
    if (ahead < 0) return 0;
    return static_cast<detail::u128>(ahead) * limit + static_cast<std::uint64_t>(s.fraction);
  }

  /// The first instant at which at most `room` (in 1/limit ns) is queued.
  static constexpr detail::i128 admitted_from(const state& s, detail::u128 room,
                                              std::uint64_t limit) noexcept {
    const detail::u128 fraction = static_cast<std::uint64_t>(s.fraction);
    if (room >= fraction)
      return detail::i128{s.drains_at} -
             static_cast<detail::i128>(detail::divide(room - fraction, limit).quotient);
    return detail::i128{s.drains_at} +
           static_cast<detail::i128>(detail::ceil_div(fraction - room, limit));
  }
};

}  // namespace ratelimit::algorithms
