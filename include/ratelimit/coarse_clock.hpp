#pragma once

#include <chrono>
#include <ctime>

namespace ratelimit {

/// A steady clock that trades resolution for speed: on Linux it reads
/// `CLOCK_MONOTONIC_COARSE`, the time of the last scheduler tick (1-4 ms old, as
/// `clock_getres` tells), from the vDSO without the hardware counter read that
/// `steady_clock` pays. Elsewhere it is `steady_clock`.
///
/// Decisions stay exact for the time the clock shows; only that time moves in ticks. So a
/// bucket refills in steps of a tick's worth of units and a wait is told from the last
/// tick. Choose it when periods are long against a tick and the clock read is a large
/// part of a decision (a hot key in memory); keep `steady_clock` for sub-tick shaping.
struct coarse_steady_clock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<coarse_steady_clock>;
  static constexpr bool is_steady = true;

  static time_point now() noexcept {
#if defined(CLOCK_MONOTONIC_COARSE)
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return time_point{std::chrono::seconds{ts.tv_sec} + std::chrono::nanoseconds{ts.tv_nsec}};
#else
    return time_point{std::chrono::steady_clock::now().time_since_epoch()};
#endif
  }
};

}  // namespace ratelimit
