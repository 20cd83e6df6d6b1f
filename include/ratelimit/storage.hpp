#pragma once

#include <concepts>
#include <cstdint>
#include <string_view>
#include <utility>

#include "ratelimit/algorithm.hpp"
#include "ratelimit/decision.hpp"
#include "ratelimit/quota.hpp"

namespace ratelimit {

/// One request of a batch: `try_acquire_many`.
struct request {
  std::string_view key;
  std::int64_t cost = 1;
};

/// Where per-key state lives, and what makes one decision atomic. A storage receives the
/// algorithm as a type, not a closure, because a remote store runs the algorithm's own
/// server-side version rather than C++.
///
/// | expression                             | result     | requirements                  |
/// |----------------------------------------|------------|-------------------------------|
/// | `s.template decide<A>(key, q, now, c)` | `decision` | runs `A::step` on `key`'s     |
/// |                                        |            | state (`A::fresh` if none) as |
/// |                                        |            | one atomic read-modify-write  |
/// | `s.template prepare<A>(q)` (optional)  |            | called once by a limiter's    |
/// |                                        |            | constructor: allocate up      |
/// |                                        |            | front, or throw               |
/// |                                        |            | std::invalid_argument for a   |
/// |                                        |            | quota the storage can't serve |
/// | `s.template decide_many<A>(requests,`  |            | optional: decides a batch at  |
/// | `  q, now, out)`                       |            | once (one round trip)         |
///
/// `now` is int64 nanoseconds since the clock's epoch. Thread safety is the storage's to
/// state; a limiter is as thread-safe as its storage (and its clock).
/// `examples/custom_storage.cpp` is a complete model.
template <class S, class A>
concept storage_for = algorithm<A> && std::move_constructible<S> &&
    requires(S& s, std::string_view key, const quota& q, std::int64_t now, std::int64_t cost) {
  { s.template decide<A>(key, q, now, cost) } -> std::same_as<decision>;
};

/// A storage that can also book units for later and give them back (reserve / cancel).
template <class S, class A>
concept reserving_storage_for = storage_for<S, A> && reservable<A> &&
    requires(S& s, std::string_view key, const quota& q, std::int64_t now, std::int64_t cost,
             typename A::booking& b) {
  { s.template reserve<A>(key, q, now, cost, now, b) } -> std::same_as<decision>;
  { s.template cancel<A>(key, q, now, std::as_const(b)) } -> std::same_as<decision>;
};

}  // namespace ratelimit
