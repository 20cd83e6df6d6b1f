#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace ratelimit {

/// `limit` units per `period`, with `burst` the bucket capacity (token bucket) or queue
/// size (leaky bucket); the window algorithms use `limit` alone. A value type: build it
/// with the named constructors, which validate; a quota written as an aggregate is
/// validated when a limiter receives it.
struct quota {
  /// Largest limit, burst and cost the math accepts: products with any period fit in
  /// 128 bits, so no decision can overflow.
  static constexpr std::int64_t max_units = std::int64_t{1} << 62;

  std::int64_t limit{};
  std::chrono::nanoseconds period{};
  std::int64_t burst{};

  static quota per_second(std::int64_t n) { return per(n, std::chrono::seconds{1}); }
  static quota per_minute(std::int64_t n) { return per(n, std::chrono::minutes{1}); }
  static quota per_hour(std::int64_t n) { return per(n, std::chrono::hours{1}); }
  static quota per(std::int64_t n, std::chrono::nanoseconds period) {
    return quota{n, period, n}.validated();
  }

  quota with_burst(std::int64_t b) const {
    quota q = *this;
    q.burst = b;
    return q.validated();
  }

  /// This quota, or std::invalid_argument naming the first bad field and its value.
  quota validated() const {
    check_units("limit", limit);
    if (period.count() <= 0) {
      fail("period must be > 0ns (got " + std::to_string(period.count()) + "ns)");
    }
    check_units("burst", burst);
    return *this;
  }

  friend bool operator==(const quota&, const quota&) = default;

 private:
  [[noreturn]] static void fail(const std::string& what) {
    throw std::invalid_argument("ratelimit::quota: " + what);
  }
  static void check_units(const char* field, std::int64_t value) {
    if (value <= 0) fail(std::string(field) + " must be > 0 (got " + std::to_string(value) + ")");
    if (value > max_units) {
      fail(std::string(field) + " must be <= 2^62 (got " + std::to_string(value) + ")");
    }
  }
};

}  // namespace ratelimit
