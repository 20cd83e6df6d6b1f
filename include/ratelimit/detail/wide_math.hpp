#pragma once

#include <chrono>
#include <cstdint>
#include <limits>

/// Integer helpers for the decision math: 128-bit intermediates, floor division for
/// negative times, and saturation towards the conservative side. No floating point.
namespace ratelimit::detail {

__extension__ typedef unsigned __int128 u128;
__extension__ typedef __int128 i128;

inline constexpr std::int64_t int64_max = std::numeric_limits<std::int64_t>::max();
inline constexpr std::int64_t int64_min = std::numeric_limits<std::int64_t>::min();

constexpr u128 wide_mul(std::uint64_t a, std::uint64_t b) noexcept { return u128{a} * b; }

/// A nonnegative wide value as int64, capped at INT64_MAX.
constexpr std::int64_t saturate(u128 v) noexcept {
  return v > static_cast<u128>(int64_max) ? int64_max : static_cast<std::int64_t>(v);
}

constexpr std::int64_t saturate(i128 v) noexcept {
  if (v > int64_max) return int64_max;
  if (v < int64_min) return int64_min;
  return static_cast<std::int64_t>(v);
}

struct division {
  u128 quotient;
  std::uint64_t remainder;
};

/// numerator / denominator and the remainder. One 64-bit division when the numerator fits
/// in 64 bits, as it does for all but extreme quotas; a 128-bit division costs several.
constexpr division divide(u128 numerator, std::uint64_t denominator) noexcept {
  if (numerator >> 64 == 0) {
    const auto narrow = static_cast<std::uint64_t>(numerator);
    return {narrow / denominator, narrow % denominator};
  }
  return {numerator / denominator, static_cast<std::uint64_t>(numerator % denominator)};
}

constexpr u128 ceil_div(u128 numerator, std::uint64_t denominator) noexcept {
  const division d = divide(numerator, denominator);
  return d.quotient + (d.remainder != 0 ? 1 : 0);
}

/// floor(a / b) for b > 0: windows before the clock's epoch still align to multiples of b.
template <class Integer>
constexpr Integer floor_div(Integer a, Integer b) noexcept {
  const Integer q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

constexpr std::int64_t saturating_add(std::int64_t a, std::int64_t b) noexcept {
  return saturate(i128{a} + b);
}

/// The wait from `now` until the instant `until`, or nanoseconds::max() when that does
/// not fit: the instant lies past the end of the clock, or further away than int64 holds.
constexpr std::chrono::nanoseconds wait_until(i128 until, std::int64_t now) noexcept {
  const i128 wait = until - now;
  if (until > int64_max || wait > int64_max) return std::chrono::nanoseconds::max();
  return std::chrono::nanoseconds{wait > 0 ? static_cast<std::int64_t>(wait) : 0};
}

}  // namespace ratelimit::detail
