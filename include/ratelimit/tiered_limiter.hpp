#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <string_view>
#include <type_traits>
#include <utility>

#include "ratelimit/decision.hpp"
#include "ratelimit/quota.hpp"

namespace ratelimit {

/// Finds the quota of a key: a user's plan, from a table, a cache or a token's claims.
///
/// | expression  | result                       | requirements                          |
/// |-------------|------------------------------|---------------------------------------|
/// | `r(key)`    | convertible to `const quota&` | thread-safe if the limiter is shared; |
/// |             |                              | cheap: it runs on every decision      |
template <class R>
concept quota_resolver = std::invocable<R&, std::string_view> &&
                         std::convertible_to < std::invoke_result_t<R&, std::string_view>,
const quota& > ;

/// One limiter for users of every tier (free, basic, premium, ...): each decision is
/// made under the quota the resolver gives its key, in the one storage they share. A key
/// whose tier changes keeps what it used (see basic_limiter::try_acquire with a quota).
/// As thread-safe as its limiter and resolver.
///
///     ratelimit::tiered_limiter limiter{ratelimit::token_bucket{free},
///                                       [&](std::string_view key) { return plan_of(key); }};
///     limiter.try_acquire(api_key);
template <class Limiter, quota_resolver Resolver>
class tiered_limiter {
 public:
  tiered_limiter(Limiter limiter, Resolver resolve)
      : limiter_(std::move(limiter)), resolve_(std::move(resolve)) {}

  /// Decides under the key's quota. Throws std::invalid_argument for `cost <= 0`, or for
  /// an invalid quota from the resolver (naming its bad field).
  [[nodiscard]] decision try_acquire(std::string_view key, std::int64_t cost = 1) {
    return limiter_.try_acquire(key, cost, std::invoke(resolve_, key));
  }

  Limiter& limiter() noexcept { return limiter_; }
  Resolver& resolver() noexcept { return resolve_; }

 private:
  Limiter limiter_;
  Resolver resolve_;
};

}  // namespace ratelimit
