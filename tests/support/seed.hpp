#pragma once

#include <cstdint>
#include <cstdlib>

namespace ratelimit_test {

/// The seed random tests start from: fixed, so that a run is repeatable, unless the
/// environment's RATELIMIT_TEST_SEED asks for another. Tests print the seed they used.
inline std::uint64_t base_seed() {
  const char* text = std::getenv("RATELIMIT_TEST_SEED");
  return text != nullptr ? std::strtoull(text, nullptr, 10) : 20240611;
}

}  // namespace ratelimit_test
