#pragma once

#include <chrono>
#include <cstdint>

#include "ratelimit/detail/intended_wrap.hpp"
#include "ratelimit/detail/wide_math.hpp"

namespace ratelimit::detail {

/// A uniform draw from [0, bound] (ns), from a generator per thread: waiting threads
/// spread their wake-ups without sharing a lock or a cache line.
// splitmix64 steps and mixes its state modulo 2^64: the wraparound is the generator.
RATELIMIT_INTENDED_UNSIGNED_WRAP inline std::int64_t jitter_up_to(std::int64_t bound) noexcept {
  if (bound <= 0) return 0;
  // Seeded by the thread's own address and the time it first waits: distinct per thread.
  thread_local std::uint64_t state =
      reinterpret_cast<std::uintptr_t>(&state) ^
      static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  // splitmix64: statistically sound, a few instructions.
  std::uint64_t z = (state += 0x9e3779b97f4a7c15);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  z ^= z >> 31;
  return static_cast<std::int64_t>(wide_mul(z, static_cast<std::uint64_t>(bound) + 1) >> 64);
}

}  // namespace ratelimit::detail
