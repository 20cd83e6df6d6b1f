#pragma once

#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string_view>

#include "ratelimit/detail/wide_math.hpp"

namespace ratelimit::detail {

/// The high and low halves of a 64×64-bit product, xored: cheap, and every input bit
/// reaches every output bit.
constexpr std::uint64_t fold_multiply(std::uint64_t a, std::uint64_t b) noexcept {
  const u128 product = wide_mul(a, b);
  return static_cast<std::uint64_t>(product) ^ static_cast<std::uint64_t>(product >> 64);
}

inline std::uint64_t load64(const char* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline std::uint64_t load32(const char* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

/// A keyed hash of a byte string. Without the seed an attacker cannot choose keys that
/// land in one place of a table, so the seed is random per table (see `random_seed`).
/// Keys up to 16 bytes, the usual API keys and addresses, take two multiplications.
inline std::uint64_t seeded_hash(std::string_view key, std::uint64_t seed) noexcept {
  constexpr std::uint64_t k0 = 0x9e3779b97f4a7c15;
  constexpr std::uint64_t k1 = 0xbf58476d1ce4e5b9;
  constexpr std::uint64_t k2 = 0x94d049bb133111eb;
  // Each multiplication's second word is masked by the seed turned, not the seed itself:
  // with one mask on both words, a key whose words are swapped (give or take constants)
  // would multiply the same product under every seed, a twin found without knowing it.
  // An odd turn differs from the seed for every seed but 0 and ~0.
  const std::uint64_t turned = std::rotl(seed, 23);
  const char* p = key.data();
  std::size_t n = key.size();
  std::uint64_t state = seed ^ k0;
  for (; n > 16; n -= 16, p += 16) {
    state = fold_multiply(load64(p) ^ state, load64(p + 8) ^ turned ^ k1);
  }
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  if (n >= 8) {
    a = load64(p);
    b = load64(p + n - 8);
  } else if (n >= 4) {
    a = load32(p);
    b = load32(p + n - 4);
  } else if (n > 0) {
    const auto byte = [p](std::size_t i) {
      return std::uint64_t{static_cast<unsigned char>(p[i])};
    };
    a = byte(0) << 16 | byte(n / 2) << 8 | byte(n - 1);
  }
  const std::uint64_t mixed = fold_multiply(
      a ^ state ^ k1, b ^ turned ^ static_cast<std::uint64_t>(wide_mul(key.size(), k2)));
  return fold_multiply(mixed ^ k2, seed | 1);
}

/// A fresh random seed; falls back to the time and an address where the system offers
/// no random device.
inline std::uint64_t random_seed() noexcept {
  std::uint64_t seed = 0;
  try {
    std::random_device device;
    seed = std::uint64_t{device()} << 32 | device();
  } catch (...) {
  }
  static int anchor;
  const auto time = static_cast<std::uint64_t>(
      std::chrono::high_resolution_clock::now().time_since_epoch().count());
  return seed ^ fold_multiply(time ^ reinterpret_cast<std::uintptr_t>(&anchor), 0x9e3779b97f4a7c15);
}

}  // namespace ratelimit::detail
