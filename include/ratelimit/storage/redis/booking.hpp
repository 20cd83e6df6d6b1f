#pragma once

#include <hiredis/hiredis.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "ratelimit/algorithms/leaky_bucket.hpp"
#include "ratelimit/algorithms/token_bucket.hpp"
#include "ratelimit/decision.hpp"
#include "ratelimit/detail/wide_math.hpp"
#include "ratelimit/quota.hpp"
#include "ratelimit/storage/redis/reply.hpp"
#include "ratelimit/storage/redis/scripts.hpp"

/// How the buckets' reservations travel to and from their scripts (storage/redis/scripts.hpp):
/// the longest wait a reservation sends, the state its reply reports, and the booking
/// built from it and sent back by cancel. A booking keeps the algorithm's own fields in
/// nanoseconds, as in memory; the scripts count in units of `unit_ns`, as integers below
/// 2^53, and every conversion between the two is exact or refused.
namespace ratelimit::detail::redis {

/// A reservation's reply: `{allowed, remaining, retry_after, reset_after, delay}` as
/// decode() reads it, then the two integers of the state it left, in the script's units.
struct decoded_reservation {
  outcome result = outcome::failed;
  decision value{};
  std::array<long long, 2> state{};
};

inline decoded_reservation decode_reservation(const redisReply* reply, const quota& q,
                                              std::int64_t unit_ns) noexcept {
  if (reply == nullptr) return {};
  if (reply->type == REDIS_REPLY_ERROR) return {error_outcome(reply), {}, {}};
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 7) return {};
  const decoded d = decode_fields(reply->element, q, unit_ns);
  if (d.result != outcome::decided) return {};
  decoded_reservation out{outcome::decided, d.value, {}};
  for (std::size_t i = 0; i < 2; ++i) {
    const redisReply* element = reply->element[5 + i];
    if (element == nullptr || element->type != REDIS_REPLY_INTEGER) return {};
    out.state[i] = element->integer;
  }
  return out;
}

/// What a cancel sends: ARGV[5] (the cost to give back) and ARGV[8], ARGV[9].
struct cancel_arguments {
  std::int64_t cost = 0;
  std::array<std::int64_t, 2> state{};
};

/// Whether `v` (an integer in units) reaches a script exactly.
constexpr bool exact(i128 v) noexcept { return v < exact_below && v > -exact_below; }

/// The bucket's period in units and its capacity, `burst × period`, in 1/period token
/// (token bucket) or 1/limit unit (leaky bucket).
struct bucket_units {
  std::uint64_t period;
  u128 capacity;

  bucket_units(const quota& q, std::int64_t unit_ns) noexcept
      : period(static_cast<std::uint64_t>(q.period.count() / unit_ns)),
        capacity(wide_mul(static_cast<std::uint64_t>(q.burst), period)) {}
};

/// The cost to give back, or 0 (nothing) unless `cost × period` reaches the script exactly.
inline std::int64_t exact_cost(std::int64_t cost, std::uint64_t period) noexcept {
  if (cost <= 0) return 0;
  const u128 length = wide_mul(static_cast<std::uint64_t>(cost), period);
  return length < static_cast<u128>(exact_below) ? cost : 0;
}

/// One specialization per bucket.
template <class A>
struct booking_units;

template <>
struct booking_units<algorithms::token_bucket> {
  using booking = algorithms::token_bucket::booking;

  /// The longest wait, in units, that a reservation waiting up to `max_wait` ns sends:
  /// floor(max_wait / unit_ns), so that a delay of whole units never exceeds max_wait, then
  /// clamped to (2^53 − 1 − burst·period) / limit and to 2^50 units. A reservation
  /// admitted after waiting w units leaves a debt of at most limit·w (1/period token) above
  /// the capacity: the first bound keeps the deficit below 2^53, the second keeps every
  /// time the script derives from it below 2^53 (refilled_at, below 2^52, plus the time
  /// to fill plus w). Clamping only ever rejects: a reservation whose wait exceeds the
  /// bound is refused, and its retry_after counts from the bound.
  static std::int64_t max_wait(const quota& q, std::int64_t max_wait_ns,
                               std::int64_t unit_ns) noexcept {
    const bucket_units b(q, unit_ns);
    if (b.capacity >= static_cast<u128>(exact_below)) return 0;
    const std::int64_t debt = (exact_below - 1 - static_cast<std::int64_t>(b.capacity)) / q.limit;
    return std::min({std::max<std::int64_t>(max_wait_ns, 0) / unit_ns, longest_duration, debt});
  }

  /// The booking of a reservation of `cost` that left the key at `state` = (refilled_at,
  /// deficit) in units; false if that is no state the script leaves.
  static bool from_reply(const std::array<long long, 2>& state, std::int64_t cost,
                         std::int64_t unit_ns, const quota&, booking& b) noexcept {
    const auto [refilled_at, deficit] = state;
    if (deficit < 0 || !exact(refilled_at) || !exact(deficit)) return false;
    // |refilled_at| is below 2^53 and unit_ns at most 10^6: 128 bits hold the product.
    const i128 booked_at = i128{refilled_at} * unit_ns;
    if (booked_at > int64_max || booked_at < int64_min) {
      b = {};  // a time int64 nanoseconds can't hold: cost 0, its cancel gives back nothing
      return true;
    }
    const u128 units =
        wide_mul(static_cast<std::uint64_t>(deficit), static_cast<std::uint64_t>(unit_ns));
    b = {static_cast<std::int64_t>(booked_at), static_cast<std::uint64_t>(units),
         static_cast<std::uint64_t>(units >> 64), cost};
    return true;
  }

  /// What cancel sends for `b`: its cost, booked_at and deficit in units. A booking whose
  /// fields are not whole units below 2^53 (none a reservation on this storage returns)
  /// can't be represented in the script: its cost is sent as 0 and it gives back nothing,
  /// since a rounded one could give back what later bookings count on.
  static cancel_arguments to_units(const booking& b, const quota& q,
                                   std::int64_t unit_ns) noexcept {
    const bucket_units units(q, unit_ns);
    const u128 deficit = u128{b.deficit_high} << 64 | b.deficit_low;
    const std::int64_t cost = exact_cost(b.cost, units.period);
    const std::int64_t booked_at = b.booked_at / unit_ns;
    if (cost == 0 || b.booked_at % unit_ns != 0 || !exact(booked_at) ||
        deficit % static_cast<std::uint64_t>(unit_ns) != 0 ||
        deficit / static_cast<std::uint64_t>(unit_ns) >= static_cast<u128>(exact_below)) {
      return {};
    }
    return {cost,
            {booked_at, static_cast<std::int64_t>(deficit / static_cast<std::uint64_t>(unit_ns))}};
  }

  /// For the deny cache, after Redis rejected (not "never") a reservation of `cost` that
  /// waited up to `wait` units, leaving the key at `state`: the time until a plain step of
  /// that cost passes. The script reported retry = ready − wait, where ready is the step's
  /// own wait.
  static std::chrono::nanoseconds step_retry_after(const decision& d,
                                                   const std::array<long long, 2>&, const quota&,
                                                   std::int64_t, std::int64_t wait,
                                                   std::int64_t unit_ns) noexcept {
    return std::chrono::nanoseconds{saturate(i128{d.retry_after.count()} + i128{wait} * unit_ns)};
  }
};

template <>
struct booking_units<algorithms::leaky_bucket> {
  using booking = algorithms::leaky_bucket::booking;

  /// The longest wait, in units, that a reservation waiting up to `max_wait` ns sends:
  /// floor(max_wait / unit_ns), so that a delay of whole units never exceeds max_wait,
  /// clamped to 2^50 units. A reservation queues behind as many requests as its wait
  /// allows, past the capacity: the clamp keeps the instant its queue drains, at most now
  /// plus the wait plus its own length, below 2^53. Clamping only ever rejects: a
  /// reservation whose delay exceeds the bound is refused, its retry_after counted from it.
  static std::int64_t max_wait(const quota&, std::int64_t max_wait_ns,
                               std::int64_t unit_ns) noexcept {
    return std::min(std::max<std::int64_t>(max_wait_ns, 0) / unit_ns, longest_duration);
  }

  /// The booking of a reservation of `cost` that left the queue at `state` = (drains_at
  /// in units, fraction in 1/limit unit); false if that is no state the script leaves.
  static bool from_reply(const std::array<long long, 2>& state, std::int64_t cost,
                         std::int64_t unit_ns, const quota& q, booking& b) noexcept {
    const auto [drains_at, fraction] = state;
    if (fraction < 0 || fraction >= q.limit || !exact(drains_at)) return false;
    // tat in 1/limit ns: below 2^53 · 2^53 · 10^6 in magnitude, within 128 bits.
    const i128 limit = q.limit;
    const i128 tat = (i128{drains_at} * limit + fraction) * unit_ns;
    // The queue without it, as in memory: a booking is the same value whichever storage
    // made it (the script itself restores the queue from the queue and the cost).
    const i128 without = tat - i128{cost} * q.period.count();
    const i128 whole = floor_div(tat, limit);
    const i128 whole_without = floor_div(without, limit);
    if (whole > int64_max || whole_without < int64_min) {
      b = {};  // an instant int64 nanoseconds can't hold: cost 0, its cancel gives back nothing
      return true;
    }
    b = {{static_cast<std::int64_t>(whole), static_cast<std::int64_t>(tat - whole * limit)},
         cost,
         {static_cast<std::int64_t>(whole_without),
          static_cast<std::int64_t>(without - whole_without * limit)}};
    return true;
  }

  /// What cancel sends for `b`: its cost, and the queue it left in units. A queue that is
  /// not a whole number of 1/limit unit, or drains 2^53 units or more from the epoch
  /// (none a reservation on this storage returns), can't be represented in the script: its
  /// cost is sent as 0 and it gives back nothing, since a rounded one could match a queue
  /// the booking did not leave.
  static cancel_arguments to_units(const booking& b, const quota& q,
                                   std::int64_t unit_ns) noexcept {
    const bucket_units units(q, unit_ns);
    const std::int64_t cost = exact_cost(b.cost, units.period);
    const i128 limit = q.limit;
    const i128 tat = i128{b.queue.drains_at} * limit + b.queue.fraction;  // in 1/limit ns
    if (cost == 0 || b.queue.fraction < 0 || tat % unit_ns != 0) return {};
    const i128 scaled = tat / unit_ns;  // in 1/limit unit
    const i128 drains_at = floor_div(scaled, limit);
    if (!exact(drains_at)) return {};
    return {cost,
            {static_cast<std::int64_t>(drains_at),
             static_cast<std::int64_t>(scaled - drains_at * limit)}};
  }

  /// For the deny cache, after Redis rejected (not "never") a reservation of `cost` that
  /// waited up to `wait` units, leaving the queue at `state`: the time until a plain step
  /// of that cost passes, 0 if it passes now. The reservation passes once the queue ahead
  /// of it is `wait` long, at drained − wait (drained: drains_at rounded up to the unit),
  /// `retry_after` from now; the step once the queue leaves it room under the capacity,
  /// at admitted_from(room) as the script computes it. The difference of the two instants
  /// needs no `now`, which with server time only the script knows.
  static std::chrono::nanoseconds step_retry_after(const decision& d,
                                                   const std::array<long long, 2>& state,
                                                   const quota& q, std::int64_t cost,
                                                   std::int64_t wait,
                                                   std::int64_t unit_ns) noexcept {
    const auto [drains_at, fraction] = state;
    const bucket_units b(q, unit_ns);
    // The step's room, below 2^53 since cost <= burst here (the rejection is not "never").
    const auto room = static_cast<std::int64_t>(
        b.capacity - wide_mul(static_cast<std::uint64_t>(cost), b.period));
    const i128 reserved_from = i128{drains_at} + (fraction > 0 ? 1 : 0) - wait;
    const i128 stepped_from =
        room >= fraction ? i128{drains_at} - (room - fraction) / q.limit : i128{drains_at} + 1;
    const i128 retry = i128{d.retry_after.count()} + (stepped_from - reserved_from) * unit_ns;
    return std::chrono::nanoseconds{retry > 0 ? saturate(retry) : 0};
  }
};

}  // namespace ratelimit::detail::redis
