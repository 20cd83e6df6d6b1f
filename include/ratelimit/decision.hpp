#pragma once

#include <chrono>
#include <cstdint>

namespace ratelimit {

/// The answer to one request. A rejection is a decision, never an exception.
struct decision {
  bool allowed{};
  /// The quota's limit, for headers.
  std::int64_t limit{};
  /// Units still available right after this call.
  std::int64_t remaining{};
  /// 0 if allowed; else the wait until this same request would be allowed;
  /// nanoseconds::max() if it never can: its cost is above the capacity, or the wait
  /// would end past the end of the clock or last nanoseconds::max() or longer.
  std::chrono::nanoseconds retry_after{};
  /// The wait until the key is back to a full quota.
  std::chrono::nanoseconds reset_after{};
  /// Shaping only (leaky_bucket, and reservations): hold the admitted request this long
  /// before serving it. Always below nanoseconds::max(), which reads as "never".
  std::chrono::nanoseconds delay{};
  /// Decided by the failure policy, without the backend.
  bool degraded{};

  explicit operator bool() const noexcept { return allowed; }
};

}  // namespace ratelimit
