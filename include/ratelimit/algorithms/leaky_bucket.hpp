#pragma once

#include <algorithm>
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
    booking unused;
    return take<false>(s, q, now, cost, 0, unused);
  }

  /// What a reservation took, for cancel: the queue right after it, and the queue it
  /// would have been without it (`queue` may be saturated at the end of the clock, where
  /// subtracting the reservation back out could no longer be exact).
  struct booking {
    state queue;
    std::int64_t cost;
    state without;
  };

  /// As step, but the request is admitted iff its `delay` is at most `max_wait`, which
  /// bounds its wait in place of the queue's size: a reservation is a client that chose to
  /// wait, and may queue behind more than `burst` requests, as it would behind a full
  /// queue's departures. Departures stay spaced. A rejection's `retry_after` is the wait
  /// until this same reservation would succeed.
  static constexpr decision reserve(state& s, const quota& q, std::int64_t now, std::int64_t cost,
                                    std::int64_t max_wait, booking& b) noexcept {
    // A negative wait is none; a delay of nanoseconds::max() would read as "never".
    const std::int64_t wait = std::clamp<std::int64_t>(max_wait, 0, detail::int64_max - 1);
    return take<true>(
        s, q, now, cost,
        detail::wide_mul(static_cast<std::uint64_t>(wait), static_cast<std::uint64_t>(q.limit)), b);
  }

  /// Gives back what reservation `b` took. Until another request joins the queue, that is
  /// everything: the key is as if the reservation never happened. A request queued after
  /// it was given its instant behind it and keeps it, so then it gives back nothing: the
  /// queue departs back to back, and the gap could only be reused by a request served
  /// before one already promised. Returns the key's state after.
  static constexpr decision cancel(state& s, const quota& q, std::int64_t now,
                                   const booking& b) noexcept {
    const auto limit = static_cast<std::uint64_t>(q.limit);
    if (b.cost > 0 && s.drains_at == b.queue.drains_at && s.fraction == b.queue.fraction) {
      s = b.without;
    }
    decision d{.limit = q.limit};
    const auto interval = static_cast<std::uint64_t>(q.period.count());
    settle(d, s, units(q.burst, interval), interval, limit, now);
    return d;
  }

 private:
  /// Admits the request iff the queue ahead of it is at most `reserve_room` (1/limit ns)
  /// for a reservation, or leaves room for it under the capacity for a step.
  template <bool Reserving>
  static constexpr decision take(state& s, const quota& q, std::int64_t now, std::int64_t cost,
                                 detail::u128 reserve_room, booking& b) noexcept {
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
    } else if (const u128 after = queued + units(cost, interval);
               // A delay below nanoseconds::max(): queued <= longest_queue(limit), read off
               // the delay at hand rather than multiplied out.
               delay < static_cast<u128>(detail::int64_max) &&
               (Reserving ? queued <= reserve_room : after <= capacity)) {
      d.allowed = true;
      d.delay = std::chrono::nanoseconds{static_cast<std::int64_t>(delay)};
      s = draining_at(now, after, limit);
      if (Reserving) b = {s, cost, draining_at(now, queued, limit)};
    } else {
      const u128 room = std::min(Reserving ? reserve_room : capacity - units(cost, interval),
                                 longest_queue(limit));
      d.retry_after = detail::wait_until(admitted_from(s, room, limit), now);
    }
    settle(d, s, capacity, interval, limit, now);
    return d;
  }

  static constexpr void settle(decision& d, const state& s, detail::u128 capacity,
                               std::uint64_t interval, std::uint64_t limit,
                               std::int64_t now) noexcept {
    const detail::i128 drained = detail::i128{s.drains_at} + (s.fraction > 0 ? 1 : 0);
    const detail::u128 held = queued_at(s, now, limit);
    if (drained <= detail::int64_max && held < capacity && held <= longest_queue(limit)) {
      d.remaining = static_cast<std::int64_t>(detail::divide(capacity - held, interval).quotient);
    }
    d.reset_after = detail::wait_until(drained, now);
  }

  /// The longest queue (1/limit ns) a request may join: its delay must stay below
  /// nanoseconds::max(), which reads as "never". Before the clock's epoch a queue may end
  /// within the clock while the wait for it is longer; a request then waits until it is not.
  static constexpr detail::u128 longest_queue(std::uint64_t limit) noexcept {
    return detail::wide_mul(static_cast<std::uint64_t>(detail::int64_max - 1), limit);
  }

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
