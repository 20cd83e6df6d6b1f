#pragma once

#include <cstdint>

#include "ratelimit/detail/wide_math.hpp"

namespace ratelimit::detail {

/// Window `index` covers [index·period, (index+1)·period) of the clock's epoch; as 128-bit
/// values, the edges of the last windows of int64 time are still exact.
struct aligned_window {
  std::int64_t index;
  std::int64_t period;

  static constexpr aligned_window containing(std::int64_t now, std::int64_t period) noexcept {
    return {floor_div(now, period), period};
  }

  /// The same, without a division when `now` is still in window `last`, as it is for
  /// most requests.
  static constexpr aligned_window containing(std::int64_t now, std::int64_t period,
                                             std::int64_t last) noexcept {
    const i128 start = i128{last} * period;
    if (now >= start && now - start < period) return {last, period};
    return containing(now, period);
  }
  constexpr i128 start() const noexcept { return i128{index} * period; }
  constexpr i128 end() const noexcept { return start() + period; }
};

}  // namespace ratelimit::detail
