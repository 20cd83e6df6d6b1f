#pragma once

// The five algorithms as a typed-test list, named in test output by their CamelCase names:
// `RedisStorage/TokenBucket.ClientTimeDecisionsMatchInMemoryStepByStep`.

#include <gtest/gtest.h>

#include <ratelimit/ratelimit.hpp>
#include <string>
#include <type_traits>

namespace ratelimit_test {

using all_algorithms =
    testing::Types<ratelimit::algorithms::token_bucket, ratelimit::algorithms::leaky_bucket,
                   ratelimit::algorithms::fixed_window, ratelimit::algorithms::sliding_log,
                   ratelimit::algorithms::sliding_window_counter>;

/// The name of algorithm `A` in test output.
template <class A>
std::string algorithm_name_of() {
  namespace algorithms = ratelimit::algorithms;
  if (std::is_same_v<A, algorithms::token_bucket>) return "TokenBucket";
  if (std::is_same_v<A, algorithms::leaky_bucket>) return "LeakyBucket";
  if (std::is_same_v<A, algorithms::fixed_window>) return "FixedWindow";
  if (std::is_same_v<A, algorithms::sliding_log>) return "SlidingLog";
  return "SlidingWindowCounter";
}

/// TYPED_TEST_SUITE's name generator, for lists of algorithms or of limiters:
/// `TYPED_TEST_SUITE(Suite, all_algorithms, algorithm_name)`.
struct algorithm_name {
  template <class T>
  static std::string GetName(int) {
    if constexpr (requires { typename T::algorithm_type; }) {
      return algorithm_name_of<typename T::algorithm_type>();
    } else {
      return algorithm_name_of<T>();
    }
  }
};

}  // namespace ratelimit_test
