#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "ratelimit/decision.hpp"
#include "ratelimit/detail/wide_math.hpp"
#include "ratelimit/quota.hpp"

namespace ratelimit::algorithms {

/// Starts full with `burst` tokens, refills continuously at `limit / period` up to
/// `burst`, admits a request iff it finds at least `cost` tokens. Bursts up to `burst`,
/// then the average rate. After the clock steps back the bucket neither refills nor
/// drains until time passes the latest instant it saw. A reservation may borrow tokens
/// that have not refilled yet: the bucket then holds fewer than none, a debt later
/// requests wait out. O(1) state: 24 bytes.
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
    booking unused;
    return take<false>(s, q, now, cost, 0, unused);
  }

  /// What a reservation took, for cancel: the state's time and deficit right after it.
  struct booking {
    std::int64_t booked_at;
    std::uint64_t deficit_low;
    std::uint64_t deficit_high;
    std::int64_t cost;
  };

  /// As step, but a request whose tokens refill within `max_wait` is admitted now, with
  /// `delay` the wait for them: the bucket goes into debt, which later requests wait out.
  /// A rejection's `retry_after` is the wait until this same reservation would succeed.
  static constexpr decision reserve(state& s, const quota& q, std::int64_t now, std::int64_t cost,
                                    std::int64_t max_wait, booking& b) noexcept {
    // A negative wait is none; a delay of nanoseconds::max() would read as "never".
    return take<true>(s, q, now, cost, std::clamp<std::int64_t>(max_wait, 0, detail::int64_max - 1),
                      b);
  }

  /// Gives back what reservation `b` took, if no request still standing was booked on the
  /// key after it: the key is then exactly as if the reservation never happened. (Bookings
  /// after it that were themselves cancelled don't count.) Otherwise it gives back
  /// nothing: a later booking was promised its instant on the strength of these tokens,
  /// and the key keeps no schedule to tell which of them it still owes. x/time/rate gives
  /// back a share estimated from the last booking, and has shipped over-admissions there.
  /// Returns the key's state after.
  static constexpr decision cancel(state& s, const quota& q, std::int64_t now,
                                   const booking& b) noexcept {
    const auto period = static_cast<std::uint64_t>(q.period.count());
    const auto limit = static_cast<std::uint64_t>(q.limit);
    detail::u128 deficit = s.deficit();
    // Refills alone bring the booked deficit to exactly `untouched`; a booking since adds
    // to it, and only the give-back of a later booking takes that away again. A state
    // older than the booking is not the one it was booked on (the key was dropped and the
    // clock stepped back): it owes nothing.
    if (s.refilled_at >= b.booked_at) {
      const detail::u128 booked = detail::u128{b.deficit_high} << 64 | b.deficit_low;
      const detail::u128 refilled = detail::wide_mul(
          static_cast<std::uint64_t>(detail::i128{s.refilled_at} - b.booked_at), limit);
      const detail::u128 untouched = booked > refilled ? booked - refilled : 0;
      if (deficit == untouched) {
        const detail::u128 give = detail::wide_mul(static_cast<std::uint64_t>(b.cost), period);
        deficit = deficit > give ? deficit - give : 0;
      }
    }
    deficit = refill(s, deficit, limit, now);
    decision d{.limit = q.limit};
    settle(d, s, deficit, q, now);
    return d;
  }

 private:
  /// A step, or a reservation: the step keeps its own code, since its every nanosecond
  /// counts.
  template <bool Reserving>
  static constexpr decision take(state& s, const quota& q, std::int64_t now, std::int64_t cost,
                                 std::int64_t max_wait, booking& b) noexcept {
    const auto period = static_cast<std::uint64_t>(q.period.count());
    const auto limit = static_cast<std::uint64_t>(q.limit);
    detail::u128 deficit = refill(s, s.deficit(), limit, now);

    decision d{.limit = q.limit};
    const detail::u128 capacity = detail::wide_mul(static_cast<std::uint64_t>(q.burst), period);
    if (cost > q.burst) {
      d.retry_after = std::chrono::nanoseconds::max();
    } else if (const detail::u128 spend =
                   detail::wide_mul(static_cast<std::uint64_t>(cost), period);
               deficit + spend <= capacity) {
      deficit += spend;
      d.allowed = true;
    } else if (const detail::i128 ready = refilled(s, deficit - (capacity - spend), limit);
               ready > detail::int64_max) {
      d.retry_after = std::chrono::nanoseconds::max();
    } else if (Reserving && ready - now <= max_wait) {
      deficit += spend;
      d.allowed = true;
      d.delay = detail::wait_until(ready, now);
    } else {
      // max_wait comes off before the wait saturates: a clock near its start may be more
      // than int64 nanoseconds before `ready`, and max_wait less may still fit.
      d.retry_after = detail::wait_until(ready - max_wait, now);
    }
    settle(d, s, deficit, q, now);
    if (Reserving && d.allowed) b = {s.refilled_at, s.deficit_low, s.deficit_high, cost};
    return d;
  }

  /// The deficit left once the bucket has refilled up to `now`.
  static constexpr detail::u128 refill(state& s, detail::u128 deficit, std::uint64_t limit,
                                       std::int64_t now) noexcept {
    if (now > s.refilled_at) {
      const auto elapsed = static_cast<std::uint64_t>(detail::i128{now} - s.refilled_at);
      const detail::u128 refilled = detail::wide_mul(elapsed, limit);
      deficit = deficit > refilled ? deficit - refilled : 0;
      s.refilled_at = now;
    }
    return deficit;
  }

  static constexpr void settle(decision& d, state& s, detail::u128 deficit, const quota& q,
                               std::int64_t now) noexcept {
    const auto period = static_cast<std::uint64_t>(q.period.count());
    s.set_deficit(deficit);
    // A deficit above the capacity (debt, or a quota that shrank) holds no whole token.
    if (deficit < detail::wide_mul(static_cast<std::uint64_t>(q.burst), period)) {
      d.remaining = q.burst - static_cast<std::int64_t>(detail::ceil_div(deficit, period));
    }
    d.reset_after = wait(s, deficit, static_cast<std::uint64_t>(q.limit), now);
  }

  /// The instant by which `units` (1/period token) have refilled, counted from
  /// `refilled_at`, which a stepped-back clock has not reached yet.
  static constexpr detail::i128 refilled(const state& s, detail::u128 units,
                                         std::uint64_t limit) noexcept {
    return detail::i128{s.refilled_at} + static_cast<detail::i128>(detail::ceil_div(units, limit));
  }

  static constexpr std::chrono::nanoseconds wait(const state& s, detail::u128 units,
                                                 std::uint64_t limit, std::int64_t now) noexcept {
    if (units == 0) return std::chrono::nanoseconds::zero();
    return detail::wait_until(refilled(s, units, limit), now);
  }
};

}  // namespace ratelimit::algorithms
