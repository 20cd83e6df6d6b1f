#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <string_view>

#include "ratelimit/decision.hpp"

namespace ratelimit {

/// One decision, as an observer sees it.
struct decision_event {
  std::string_view key;
  const ratelimit::decision& decision;
  /// Which rule decided: 0 for a limiter, the rule's index for a multi_limiter.
  std::size_t rule;
  /// The rule's name; empty for a limiter, which has one rule.
  std::string_view rule_name;
  /// From just before the storage was asked to just after it answered (steady_clock).
  std::chrono::nanoseconds latency;
};

/// A failure of a remote storage, which the failure policy then answered for.
struct backend_error {
  std::string_view backend;  ///< "redis"
  std::string_view what;     ///< "timeout", "connection", "reply", "breaker_open", ...
};

/// What a limiter tells about its decisions: a template parameter, so that a limiter
/// without one (no_observer, the default) compiles to exactly the code it had without.
/// Every hook is optional; a limiter calls those its observer has.
///
/// | expression                  | requirements                                           |
/// |-----------------------------|--------------------------------------------------------|
/// | `o.on_decision(event)`      | noexcept; every decision, with its latency; called on  |
/// |                             | the deciding thread, so it must be thread-safe and fast |
/// | `o.on_backend_error(error)` | noexcept; each failure of a remote storage             |
template <class O>
concept decision_observer = requires(O& o, const decision_event& e) {
  { o.on_decision(e) }
  noexcept;
};

template <class O>
concept backend_error_observer = requires(O& o, const backend_error& e) {
  { o.on_backend_error(e) }
  noexcept;
};

/// The default observer: sees nothing, costs nothing.
struct no_observer {};

}  // namespace ratelimit
