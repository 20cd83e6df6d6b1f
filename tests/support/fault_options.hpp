#pragma once

// What the fault tests run with: a short timeout, and the slack a call may take past it.

#include <chrono>
#include <ratelimit/redis.hpp>
#include <string>

#include "support/redis_server.hpp"

namespace ratelimit_test {

/// The bound on every decision while Redis misbehaves.
inline constexpr std::chrono::milliseconds fault_timeout{50};
/// "A few ms" past the timeout: the thread that timed out has to be scheduled again, on a
/// machine of 2 shared cores, maybe under a sanitizer.
inline constexpr std::chrono::milliseconds fault_slack{10};
inline constexpr std::chrono::milliseconds fault_probe_interval{30};

/// Client time (so that tests drive it), the fault timeouts, `policy`, and two processes
/// sharing a quota for local_fallback.
inline ratelimit::redis_options fault_options(
    const redis_server& server, ratelimit::failure_policy policy, std::string prefix,
    std::chrono::nanoseconds client_time_unit = std::chrono::microseconds{1}) {
  return {.port = server.port(),
          .timeout = fault_timeout,
          .key_prefix = std::move(prefix),
          .on_failure = policy,
          .time = ratelimit::time_source::client,
          .fallback_instances = 2,
          .probe_interval = fault_probe_interval,
          .client_time_unit = client_time_unit};
}

}  // namespace ratelimit_test
