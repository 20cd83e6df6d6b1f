#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <memory>
#include <ratio>
#include <thread>

#include "ratelimit/detail/wide_math.hpp"

namespace ratelimit {

/// Where "now" comes from. Any std::chrono clock models it, and so does any copyable
/// object with a `now()` member, which need not be static (a clock may carry state).
///
/// | expression         | result          | requirements                                  |
/// |--------------------|-----------------|-----------------------------------------------|
/// | `c.now()`          | `C::time_point` | thread-safe if the limiter is used by threads |
/// | `c.sleep_until(t)` |                 | optional: blocks until `c.now() >= t`; else a |
/// |                    |                 | waiting limiter sleeps on the system's timer  |
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

  manual_clock() : shared_(std::make_shared<shared>()) {}

  time_point now() const noexcept { return time_point{duration{shared_->now.load()}}; }

  /// Moves time by `d` (negative moves it back), saturating at the ends of int64, and
  /// wakes the threads sleeping on it.
  void advance(duration d) noexcept {
    rep current = shared_->now.load();
    while (
        !shared_->now.compare_exchange_weak(current, detail::saturating_add(current, d.count()))) {
    }
    wake_sleepers();
  }

  void set(time_point t) noexcept {
    shared_->now.store(t.time_since_epoch().count());
    wake_sleepers();
  }

  /// Blocks until another thread has moved the time to `t` or beyond: a waiting limiter
  /// on this clock is woken by advance() or set(), never by the passing of real time.
  void sleep_until(time_point t) const noexcept {
    shared_->sleepers.fetch_add(1);
    for (rep current = shared_->now.load(); current < t.time_since_epoch().count();
         current = shared_->now.load()) {
      shared_->now.wait(current);
    }
    shared_->sleepers.fetch_sub(1);
  }

  /// Threads in sleep_until(): a test moves time once the waiter it means to wake is asleep.
  int sleepers() const noexcept { return shared_->sleepers.load(); }

 private:
  void wake_sleepers() noexcept {
    // Sequentially consistent: a sleeper counts itself before it reads the time, so either
    // it is counted here or it reads the new time and does not sleep. Without sleepers,
    // an advance costs no notification.
    if (shared_->sleepers.load() > 0) shared_->now.notify_all();
  }

  struct shared {
    std::atomic<rep> now{0};
    std::atomic<int> sleepers{0};
  };
  std::shared_ptr<shared> shared_;
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

/// Blocks until the clock reads `target` (ns since its epoch) or later: on the clock's own
/// sleep_until when it has one, else on the system's timer, again until the clock agrees
/// (a coarse clock lags the timer by up to a tick).
template <clock_source Clock>
void sleep_until(const Clock& clock, std::int64_t target) {
  if constexpr (requires { clock.sleep_until(clock.now()); }) {
    using duration = typename Clock::duration;
    clock.sleep_until(
        typename Clock::time_point{std::chrono::ceil<duration>(std::chrono::nanoseconds{target})});
  } else {
    for (std::int64_t now = now_nanoseconds(clock); now < target; now = now_nanoseconds(clock)) {
      std::this_thread::sleep_for(std::chrono::nanoseconds{target - now});
    }
  }
}

}  // namespace detail
}  // namespace ratelimit
