#pragma once

#include <concepts>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "ratelimit/decision.hpp"
#include "ratelimit/quota.hpp"

namespace ratelimit {

/// The math of one rate limiting algorithm, with no locks, I/O or clock reads: a
/// per-key `state` and a pure step function. Times are int64 nanoseconds since the
/// clock's epoch; the quota is already validated and `cost` is in [1, INT64_MAX].
///
/// | expression                  | result           | requirements                        |
/// |-----------------------------|------------------|-------------------------------------|
/// | `A::state`                  | movable type     | the per-key state                   |
/// | `A::fresh(q, now)`          | `A::state`       | noexcept; a key never seen before   |
/// | `A::step(s, q, now, cost)`  | `decision`       | noexcept; decides and updates `s`;  |
/// |                             |                  | a rejection leaves the quota as is  |
///
/// `step` reports `reset_after`: from `now + reset_after` on, the state equals a fresh
/// one, which is what lets a storage forget the key.
template <class A>
concept algorithm = std::movable<typename A::state> &&
    requires(typename A::state& s, const quota& q, std::int64_t now, std::int64_t cost) {
  { A::fresh(q, now) }
  noexcept->std::same_as<typename A::state>;
  { A::step(s, q, now, cost) }
  noexcept->std::same_as<decision>;
};

/// An algorithm that can admit a request now for later, and give it back: the buckets,
/// whose state is a schedule. (A window can't lend from a window that has not begun.)
///
/// | expression                             | result       | requirements                   |
/// |----------------------------------------|--------------|--------------------------------|
/// | `A::booking`                           | trivially    | what a reservation took        |
/// |                                        | copyable     |                                |
/// | `A::reserve(s, q, now, cost, wait, b)` | `decision`   | noexcept; as `step`, admitting |
/// |                                        |              | with `delay` <= `wait` (ns);   |
/// |                                        |              | an admission fills `b`         |
/// | `A::cancel(s, q, now, b)`              | `decision`   | noexcept; gives back what `b`  |
/// |                                        |              | took, unless a booking still   |
/// |                                        |              | standing came after it; the    |
/// |                                        |              | key's state after              |
template <class A>
concept reservable = algorithm<A> && std::is_trivially_copyable_v<typename A::booking> &&
    requires(typename A::state& s, const quota& q, std::int64_t now, std::int64_t cost,
             typename A::booking& b) {
  { A::reserve(s, q, now, cost, now, b) }
  noexcept->std::same_as<decision>;
  { A::cancel(s, q, now, std::as_const(b)) }
  noexcept->std::same_as<decision>;
};

}  // namespace ratelimit
