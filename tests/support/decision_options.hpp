#pragma once

// What tests of Redis's decisions (not its latency) run with, and the in-memory storage
// they compare it to: limiters on a manual_clock, so that time is the test's.

#include <chrono>
#include <ratelimit/clock.hpp>
#include <ratelimit/limiter.hpp>
#include <ratelimit/redis.hpp>
#include <ratelimit/storage/in_memory.hpp>
#include <string>
#include <utility>

namespace ratelimit_test {

template <class A>
using redis_limiter =
    ratelimit::basic_limiter<A, ratelimit::manual_clock, ratelimit::redis_storage>;
template <class A>
using memory_limiter =
    ratelimit::basic_limiter<A, ratelimit::manual_clock, ratelimit::in_memory_storage>;

/// Generous: a slow machine (2 shared cores, maybe a sanitizer) must not turn a decision
/// into a degraded one.
inline constexpr std::chrono::seconds decision_timeout{5};

/// Client time in `unit`s: at 1ns, decisions identical to the in-memory storage's.
inline ratelimit::redis_options client_time_options(
    int port, std::string prefix, std::chrono::nanoseconds unit = std::chrono::nanoseconds{1}) {
  return {.port = port,
          .timeout = decision_timeout,
          .key_prefix = std::move(prefix),
          .time = ratelimit::time_source::client,
          .client_time_unit = unit};
}

/// Server time (the default): the scripts read Redis's TIME, in microseconds.
inline ratelimit::redis_options server_time_options(int port, std::string prefix) {
  return {.port = port, .timeout = decision_timeout, .key_prefix = std::move(prefix)};
}

/// An in-memory storage quick to build for each trace; a trace's few keys never fill it.
/// A shard sweeps its keys back to fresh every 1024 decisions, which Redis (keeping them
/// until their TTL) does not: traces compared step by step stay below that.
inline ratelimit::in_memory_storage small_in_memory_storage() {
  return ratelimit::in_memory_storage{{.max_keys = 64, .shards = 1}};
}

}  // namespace ratelimit_test
