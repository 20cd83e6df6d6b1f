#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "ratelimit/decision.hpp"
#include "ratelimit/detail/aligned_window.hpp"
#include "ratelimit/detail/wide_math.hpp"
#include "ratelimit/quota.hpp"

namespace ratelimit::algorithms {

/// Approximates a sliding window from two fixed-window counts: with `e` the time elapsed
/// in the current window, admits iff `previous·(period − e)/period + current + cost <=
/// limit`, i.e. it assumes the previous window's requests were spread evenly. Evaluated
/// exactly: both sides are scaled by `period` in 128-bit integers. O(1) state: 24 bytes.
struct sliding_window_counter {
  struct state {
    std::int64_t window;  ///< index of the window `current` belongs to
    std::int64_t previous;
    std::int64_t current;
  };

  static constexpr state fresh(const quota& q, std::int64_t now) noexcept {
    return {detail::floor_div(now, q.period.count()), 0, 0};
  }

  static constexpr decision step(state& s, const quota& q, std::int64_t now,
                                 std::int64_t cost) noexcept {
    using detail::u128;
    const std::int64_t period = q.period.count();
    const auto current = detail::aligned_window::containing(now, period, s.window);
    if (current.index > s.window) {
      s = {current.index, current.index == s.window + 1 ? s.current : 0, 0};
    }
    const detail::aligned_window window{s.window, period};
    // A clock stepped back before this window weighs the previous one fully.
    const auto elapsed = static_cast<std::uint64_t>(
        std::clamp<detail::i128>(detail::i128{now} - window.start(), 0, period));
    const auto unsigned_period = static_cast<std::uint64_t>(period);
    const u128 capacity = detail::wide_mul(static_cast<std::uint64_t>(q.limit), unsigned_period);
    const u128 carried =
        detail::wide_mul(static_cast<std::uint64_t>(s.previous), unsigned_period - elapsed);

    decision d{.limit = q.limit};
    if (cost > q.limit) {
      d.retry_after = std::chrono::nanoseconds::max();
    } else if (carried + units(s.current, cost) * unsigned_period <= capacity) {
      s.current += cost;
      d.allowed = true;
    } else {
      d.retry_after = detail::wait_until(admitted_from(s, window, q.limit, cost), now);
    }
    // `carried` exceeds `capacity` only when the quota shrank under a stored state.
    const auto free = carried < capacity
                          ? static_cast<std::int64_t>(
                                detail::divide(capacity - carried, unsigned_period).quotient)
                          : 0;
    d.remaining = std::max<std::int64_t>(free - s.current, 0);
    if (s.current > 0) {
      d.reset_after = detail::wait_until(window.end() + period, now);
    } else if (s.previous > 0) {
      d.reset_after = detail::wait_until(window.end(), now);
    }
    return d;
  }

 private:
  static constexpr detail::u128 units(std::int64_t count, std::int64_t cost) noexcept {
    return static_cast<detail::u128>(count) + static_cast<std::uint64_t>(cost);
  }

  /// The earliest instant a request of `cost <= limit` is admitted, once it was rejected.
  /// The weighted count only falls with time (it is continuous at window edges), so the
  /// answer is the first instant the weight of the window before drops enough.
  static constexpr detail::i128 admitted_from(const state& s, detail::aligned_window window,
                                              std::int64_t limit, std::int64_t cost) noexcept {
    const auto period = static_cast<std::uint64_t>(window.period);
    // Either still in this window, once `previous` weighs little enough, or in the next,
    // where `current` becomes the previous window. `weight` is never 0 here: a zero
    // weight with `count + cost <= limit` would have been admitted.
    const bool fits_in_this_window = units(s.current, cost) <= static_cast<std::uint64_t>(limit);
    const std::int64_t weight = fits_in_this_window ? s.previous : s.current;
    const std::int64_t room = fits_in_this_window ? limit - s.current - cost : limit - cost;
    const detail::u128 allowed_weight =
        detail::divide(detail::wide_mul(static_cast<std::uint64_t>(room), period),
                       static_cast<std::uint64_t>(weight))
            .quotient;
    const detail::i128 window_end =
        fits_in_this_window ? window.end() : window.end() + window.period;
    return window_end - static_cast<detail::i128>(std::min<detail::u128>(allowed_weight, period));
  }
};

}  // namespace ratelimit::algorithms
