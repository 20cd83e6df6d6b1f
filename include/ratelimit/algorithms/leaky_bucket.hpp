#pragma once

#include <cstdint>

#include "ratelimit/algorithms/token_bucket.hpp"
#include "ratelimit/decision.hpp"
#include "ratelimit/detail/wide_math.hpp"
#include "ratelimit/quota.hpp"

namespace ratelimit::algorithms {

/// A queue of at most `burst` requests drained at one per `period / limit`: each admitted
/// request gets `delay`, its wait in the queue, so requests served at (admit time +
/// delay) leave at a constant rate, without bursts. O(1) state: 24 bytes.
///
/// The queue's free places are a bucket's tokens, so with `I = period / limit` and `tat`
/// the time the queue drains, `delay = max(0, tat − now)` and the request is admitted iff
/// `delay + cost·I <= burst·I`. Delays are rounded up to the nanosecond; where `I` is not a
/// whole number of nanoseconds, consecutive departures are floor(I) or ceil(I) apart and
/// never drift from the exact rate.
struct leaky_bucket {
  using state = token_bucket::state;

  static constexpr state fresh(const quota& q, std::int64_t now) noexcept {
    return token_bucket::fresh(q, now);
  }

  static constexpr decision step(state& s, const quota& q, std::int64_t now,
                                 std::int64_t cost) noexcept {
    s.refill(q, now);
    const detail::u128 queue_drains_in = s.nanoseconds_until(q.burst, q);
    decision d = token_bucket::step(s, q, now, cost);
    if (d.allowed) d.delay = detail::wait_for(queue_drains_in, now);
    return d;
  }
};

}  // namespace ratelimit::algorithms
