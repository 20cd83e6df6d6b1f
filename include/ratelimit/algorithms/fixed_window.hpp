#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "ratelimit/decision.hpp"
#include "ratelimit/detail/aligned_window.hpp"
#include "ratelimit/detail/wide_math.hpp"
#include "ratelimit/quota.hpp"

namespace ratelimit::algorithms {

/// Counts admitted units in windows `[k·period, (k+1)·period)` of the clock's epoch and
/// admits iff `count + cost <= limit`. The cheapest algorithm, and the least exact: a
/// client can pass `limit` at the end of one window and `limit` again at the start of the
/// next, 2× the limit within one period. O(1) state: 16 bytes.
struct fixed_window {
  struct state {
    std::int64_t window;  ///< index of the window `count` belongs to
    std::int64_t count;
  };

  static constexpr state fresh(const quota& q, std::int64_t now) noexcept {
    return {detail::floor_div(now, q.period.count()), 0};
  }

  static constexpr decision step(state& s, const quota& q, std::int64_t now,
                                 std::int64_t cost) noexcept {
    const auto current = detail::aligned_window::containing(now, q.period.count(), s.window);
    // A clock stepped back into an earlier window keeps counting in the later one.
    if (current.index > s.window) s = {current.index, 0};
    const detail::aligned_window window{s.window, q.period.count()};

    decision d{.limit = q.limit};
    if (cost > q.limit) {
      d.retry_after = std::chrono::nanoseconds::max();
    } else if (cost <= q.limit - s.count) {
      s.count += cost;
      d.allowed = true;
    } else {
      d.retry_after = detail::wait_until(window.end(), now);
    }
    // A count above the limit is left by a quota that shrank under the key.
    d.remaining = std::max<std::int64_t>(q.limit - s.count, 0);
    if (s.count > 0) d.reset_after = detail::wait_until(window.end(), now);
    return d;
  }
};

}  // namespace ratelimit::algorithms
