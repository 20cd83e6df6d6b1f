#pragma once

#include <hiredis/hiredis.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

#include "ratelimit/decision.hpp"
#include "ratelimit/detail/wide_math.hpp"
#include "ratelimit/quota.hpp"

namespace ratelimit::detail::redis {

/// What one EVALSHA reply says.
enum class outcome {
  decided,   ///< a well-formed decision
  noscript,  ///< the server lost the script (restart, failover, SCRIPT FLUSH): load, retry
  failed,    ///< anything else: an error reply (OOM, BUSY, ...) or a malformed reply
};

struct decoded {
  outcome result = outcome::failed;
  decision value{};
};

/// A duration the script gave in units of `unit_ns`; -1 (never) and anything too long for
/// int64 nanoseconds become nanoseconds::max().
inline std::chrono::nanoseconds from_units(long long units, std::int64_t unit_ns) noexcept {
  if (units < 0) return std::chrono::nanoseconds::max();
  return std::chrono::nanoseconds{saturate(i128{units} * unit_ns)};
}

/// Reads one decision from the five integers at `field`: `{allowed, remaining,
/// retry_after, reset_after, delay}`, durations in units of `unit_ns`. Anything else — nil,
/// another type, a value out of range — is a failure.
inline decoded decode_fields(const redisReply* const* field, const quota& q,
                             std::int64_t unit_ns) noexcept {
  long long value[5];
  for (std::size_t i = 0; i < 5; ++i) {
    const redisReply* element = field[i];
    if (element == nullptr || element->type != REDIS_REPLY_INTEGER) return {};
    value[i] = element->integer;
  }
  const auto [allowed, remaining, retry_after, reset_after, delay] = value;
  if ((allowed != 0 && allowed != 1) || remaining < 0 || remaining > quota::max_units ||
      retry_after < -1 || reset_after < -1 || delay < 0 || (allowed == 1 && retry_after != 0)) {
    return {};
  }
  decision d{.allowed = allowed == 1, .limit = q.limit, .remaining = remaining};
  if (!d.allowed) d.retry_after = from_units(retry_after, unit_ns);
  d.reset_after = from_units(reset_after, unit_ns);
  d.delay = from_units(delay, unit_ns);
  return {outcome::decided, d};
}

/// What an error reply says: a lost script, or a failure.
inline outcome error_outcome(const redisReply* reply) noexcept {
  const std::string_view error{reply->str, reply->len};
  return error.starts_with("NOSCRIPT") ? outcome::noscript : outcome::failed;
}

/// Reads the reply of an algorithm's script: `{allowed, remaining, retry_after,
/// reset_after, delay}`, integers, durations in units of `unit_ns`. Anything else — an
/// error, nil, another type, a value out of range — is a failure: a reply that cannot be
/// trusted never admits a request.
inline decoded decode(const redisReply* reply, const quota& q, std::int64_t unit_ns) noexcept {
  if (reply == nullptr) return {};
  if (reply->type == REDIS_REPLY_ERROR) return {error_outcome(reply), {}};
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 5) return {};
  return decode_fields(reply->element, q, unit_ns);
}

/// Reads the reply of a multi-rule script into `out`, one decision per rule: five integers
/// each, as decode() reads them. All or nothing: unless every rule's decision is sane, the
/// outcome is not `decided`.
template <std::size_t N>
outcome decode_all(const redisReply* reply, const std::array<quota, N>& quotas,
                   std::int64_t unit_ns, std::array<decision, N>& out) noexcept {
  if (reply == nullptr) return outcome::failed;
  if (reply->type == REDIS_REPLY_ERROR) return error_outcome(reply);
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 5 * N) return outcome::failed;
  for (std::size_t i = 0; i < N; ++i) {
    const decoded d = decode_fields(reply->element + 5 * i, quotas[i], unit_ns);
    if (d.result != outcome::decided) return outcome::failed;
    out[i] = d.value;
  }
  return outcome::decided;
}

}  // namespace ratelimit::detail::redis
