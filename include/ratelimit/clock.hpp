#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <memory>
#include <ratio>

#include "ratelimit/detail/wide_math.hpp"

namespace ratelimit {

/// Where "now" comes from. Any std::chrono clock models it, and so does any copyable
/// object with a `now()` member, which need not be static (a clock may carry state).
///
/// | expression | result           | requirements                                  |
/// |------------|------------------|-----------------------------------------------|
/// | `c.now()`  | `C::time_point`  | thread-safe if the limiter is used by threads |
template <class C>
concept clock_source = std::copy_constructible<C> && requires(const C& c) {
  typename C::duration;
  typename C::time_point;
  { c.now() } -> std::same_as<typename C::time_point>;
};

/// A clock that moves only when told to. Copies share one time, so a test advances the
/// clock its limiter holds. Starts at its epoch. Thread-safe.
class manual_clock {
 public:
  using rep = std::int64_t;
  using period = std::nano;
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<manual_clock>;
  /// It can be set backwards.
  static constexpr bool is_steady = false;

  manual_clock() : now_(std::make_shared<std::atomic<rep>>(0)) {}

  time_point now() const noexcept { return time_point{duration{now_->load()}}; }

  /// Moves time by `d` (negative moves it back), saturating at the ends of int64.
  void advance(duration d) noexcept {
    rep current = now_->load();
    while (!now_->compare_exchange_weak(current, detail::saturating_add(current, d.count()))) {
    }
  }

  void set(time_point t) noexcept { now_->store(t.time_since_epoch().count()); }

 private:
  std::shared_ptr<std::atomic<rep>> now_;
};

namespace detail {

/// Nanoseconds since the clock's epoch, saturating for coarse clocks whose far values
/// do not fit (where std::chrono::duration_cast would overflow).
template <class Duration>
constexpr std::int64_t to_nanoseconds(Duration d) noexcept {
  static_assert(std::is_integral_v<typename Duration::rep>,
                "ratelimit: the clock's rep must be an integer (no floating point in decisions)");
  using ratio = std::ratio_divide<typename Duration::period, std::nano>;
  const i128 count = static_cast<i128>(d.count());
  if constexpr (ratio::den == 1) {
    constexpr i128 bound = i128{int64_max} / ratio::num + 1;
    if (count >= bound) return int64_max;
    if (count <= -bound) return int64_min;
    return static_cast<std::int64_t>(count * ratio::num);
  } else {
    return saturate(count * ratio::num / ratio::den);
  }
}

template <clock_source Clock>
std::int64_t now_nanoseconds(const Clock& clock) {
  return to_nanoseconds(clock.now().time_since_epoch());
}

}  // namespace detail
}  // namespace ratelimit
