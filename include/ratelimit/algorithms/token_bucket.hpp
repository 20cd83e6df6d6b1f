#pragma once

#include <chrono>
#include <cstdint>

#include "ratelimit/decision.hpp"
#include "ratelimit/detail/fluid_bucket.hpp"
#include "ratelimit/quota.hpp"

namespace ratelimit::algorithms {

/// Starts full with `burst` tokens, refills continuously at `limit / period` up to
/// `burst`, admits a request iff it finds at least `cost` tokens. Bursts up to `burst`,
/// then the average rate. O(1) state: 24 bytes.
struct token_bucket {
  using state = detail::fluid_bucket;

  static constexpr state fresh(const quota& q, std::int64_t now) noexcept {
    return state::full(q, now);
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
      d.retry_after = detail::wait_for(s.nanoseconds_until(cost, q), now);
    }
    d.remaining = s.tokens;
    d.reset_after = detail::wait_for(s.nanoseconds_until(q.burst, q), now);
    return d;
  }
};

}  // namespace ratelimit::algorithms
