#pragma once

#include <chrono>
#include <utility>

#include "ratelimit/algorithm.hpp"
#include "ratelimit/clock.hpp"
#include "ratelimit/decision.hpp"
#include "ratelimit/quota.hpp"
#include "ratelimit/storage.hpp"

namespace ratelimit {

template <algorithm Algorithm, clock_source Clock, storage_for<Algorithm> Storage, class Observer>
class basic_limiter;

/// Units of a key booked now for a request served later (a limiter's `reserve`): serve it
/// after `delay()`, or give the units back with the limiter's `cancel`. Move-only, so that
/// its units go back at most once. Not thread-safe: one owner at a time.
template <reservable Algorithm>
class reservation {
 public:
  reservation(reservation&& other) noexcept
      : decision_(other.decision_),
        booking_(other.booking_),
        quota_(other.quota_),
        outstanding_(std::exchange(other.outstanding_, false)) {}
  reservation& operator=(reservation&& other) noexcept {
    decision_ = other.decision_;
    booking_ = other.booking_;
    quota_ = other.quota_;
    outstanding_ = std::exchange(other.outstanding_, false);
    return *this;
  }

  /// Whether the units were booked: the request may be served after delay().
  explicit operator bool() const noexcept { return decision_.allowed; }
  /// The wait to honour before serving the request: not a moment less.
  std::chrono::nanoseconds delay() const noexcept { return decision_.delay; }
  /// The reservation's decision: a rejection's retry_after is the wait until the same
  /// reservation (cost and longest wait) would succeed.
  const ratelimit::decision& decision() const noexcept { return decision_; }
  /// Booked and not yet given back.
  bool outstanding() const noexcept { return outstanding_; }

 private:
  template <algorithm A, clock_source C, storage_for<A> S, class O>
  friend class basic_limiter;

  reservation(const ratelimit::decision& d, const typename Algorithm::booking& b,
              const ratelimit::quota& q) noexcept
      : decision_(d), booking_(b), quota_(q), outstanding_(d.allowed && !d.degraded) {}

  ratelimit::decision decision_;
  typename Algorithm::booking booking_;
  ratelimit::quota quota_;
  bool outstanding_;
};

}  // namespace ratelimit
