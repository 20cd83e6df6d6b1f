#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>

namespace ratelimit_test {

/// The seed random tests start from: fixed, so that a run is repeatable, unless the
/// environment's RATELIMIT_TEST_SEED asks for another. Tests print the seed they used.
inline std::uint64_t base_seed() {
  const char* text = std::getenv("RATELIMIT_TEST_SEED");
  return text != nullptr ? std::strtoull(text, nullptr, 10) : 20240611;
}

/// How a test names the seed of one trace (derived from base_seed()) in its failures:
/// "seed 20240614 (RATELIMIT_TEST_SEED=20240611)".
inline std::string seed_text(std::uint64_t seed) {
  return "seed " + std::to_string(seed) + " (RATELIMIT_TEST_SEED=" + std::to_string(base_seed()) +
         ")";
}

}  // namespace ratelimit_test
