#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

#include "ratelimit/algorithm.hpp"
#include "ratelimit/clock.hpp"
#include "ratelimit/decision.hpp"
#include "ratelimit/observer.hpp"
#include "ratelimit/quota.hpp"
#include "ratelimit/storage/in_memory.hpp"

namespace ratelimit {

/// Whose requests one rule counts together.
enum class rule_scope {
  per_key,  ///< each caller's key has its own quota
  global,   ///< one quota for every key: the whole service
};

/// One rule of a multi_limiter: algorithm `A` holding `limit`, for each key or for all.
template <algorithm A>
struct rule {
  using algorithm_type = A;
  std::string name;  ///< for headers and metrics: which rule decided
  quota limit;
  rule_scope scope = rule_scope::per_key;
};

/// What a multi_limiter decided, rule by rule.
template <std::size_t N>
struct multi_decision {
  /// Whether every rule admitted the request; if not, no rule consumed anything.
  bool allowed = false;
  /// Each rule's decision, in the order the rules were given. In a rejected set, a rule
  /// that would have admitted the request says so, with the `remaining` it would have left.
  std::array<decision, N> rules{};
  /// The rule whose numbers belong in headers: if rejected, the rejecting rule that frees
  /// up last; if admitted, the rule with the fewest units remaining.
  std::size_t most_restrictive = 0;
  /// The first rule that rejected the request; N if none did.
  std::size_t rejected_by = N;

  explicit operator bool() const noexcept { return allowed; }

  /// One decision for the whole set: the most restrictive rule's, with the set's
  /// `allowed`; when rejected, `retry_after` is when every rule admits the request again
  /// (the latest of the rejecting rules', as the others only gain with time); when
  /// admitted, `delay` is the longest any rule asks for.
  decision combined() const noexcept {
    decision d = rules[most_restrictive];
    d.allowed = allowed;
    for (const decision& r : rules) {
      if (allowed) {
        d.delay = std::max(d.delay, r.delay);
      } else if (!r.allowed) {
        d.retry_after = std::max(d.retry_after, r.retry_after);
      }
      d.degraded = d.degraded || r.degraded;
    }
    return d;
  }
};

/// Several rules checked as one, all or nothing: "10 per second AND 1000 per hour per
/// user AND 100'000 per minute for the whole service", each with its own algorithm. A
/// request rejected by any rule consumes from none of them, and the rules' states change
/// together under their shards' locks, so no other decision sees half of one.
///
/// The storage must decide sets of rules atomically (`decide_all`): in_memory_storage
/// does, and redis_storage, in one script and one round trip. Each rule keeps its own keys: the
/// rule's index and 0x1F, then the caller's key (per_key) or nothing (global). Keys up to 126 bytes
/// are composed without allocating.
///
/// `Observer` (see decision_observer) hears of each rule's decision, with the rule's index
/// and name, and the latency of the whole set.
template <class Observer, clock_source Clock, class Storage, algorithm... As>
class basic_observed_multi_limiter {
  static_assert(sizeof...(As) > 0, "ratelimit::multi_limiter: give it at least one rule");
  static_assert(sizeof...(As) < 32, "ratelimit::multi_limiter: at most 31 rules");
  static_assert(
      requires(Storage & s, const std::array<std::string_view, sizeof...(As)>& keys,
               const std::array<quota, sizeof...(As)>& quotas) {
        s.template decide_all<As...>(keys, quotas, std::int64_t{}, std::int64_t{});
      },
      "ratelimit::multi_limiter: the storage must decide several rules at once (decide_all), "
      "as in_memory_storage and redis_storage do");

 public:
  static constexpr std::size_t rule_count = sizeof...(As);

  /// Throws std::invalid_argument naming the rule and field of an invalid quota, or of
  /// one the storage can't decide (on Redis, values must stay exact in doubles).
  basic_observed_multi_limiter(Clock clock, Storage storage, Observer observer, rule<As>... rules)
      : clock_(std::move(clock)),
        storage_(std::move(storage)),
        observer_(std::move(observer)),
        rules_(validated(std::move(rules), storage_)...) {}

  /// Decides whether a request of `cost` units for `key` passes every rule now, and
  /// consumes from all of them if it does. Throws std::invalid_argument only for `cost <= 0`.
  [[nodiscard]] multi_decision<rule_count> try_acquire(std::string_view key,
                                                       std::int64_t cost = 1) {
    if (cost <= 0) {
      throw std::invalid_argument("ratelimit: cost must be > 0 (got " + std::to_string(cost) + ")");
    }
    return decide(key, cost, std::index_sequence_for<As...>{});
  }

  const std::tuple<rule<As>...>& rules() const noexcept { return rules_; }
  Clock& clock() noexcept { return clock_; }
  Storage& storage() noexcept { return storage_; }
  Observer& observer() noexcept { return observer_; }

 private:
  template <algorithm A>
  static rule<A> validated(rule<A> r, Storage& storage) {
    try {
      r.limit = r.limit.validated();
      if constexpr (requires { storage.template prepare<A>(r.limit); }) {
        storage.template prepare<A>(r.limit);
      }
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("ratelimit::multi_limiter: rule \"" + r.name + "\": " + e.what());
    }
    return r;
  }

  /// Where rule `tag`'s key is composed: "<tag>\x1f<key>" for a per-key rule,
  /// "<tag>\x1f" for a global one. On the stack unless the key is long.
  class key_buffer {
   public:
    std::string_view compose(char tag, std::string_view key) {
      if (key.size() + 2 <= bytes_.size()) {
        bytes_[0] = tag;
        bytes_[1] = '\x1f';
        std::copy(key.begin(), key.end(), bytes_.begin() + 2);
        return {bytes_.data(), key.size() + 2};
      }
      spilled_ = {tag, '\x1f'};
      spilled_.append(key);
      return spilled_;
    }

   private:
    std::array<char, 128> bytes_;
    std::string spilled_;
  };

  template <std::size_t... I>
  multi_decision<rule_count> decide(std::string_view key, std::int64_t cost,
                                    std::index_sequence<I...>) {
    std::array<key_buffer, rule_count> buffers;
    const std::array<std::string_view, rule_count> keys{buffers[I].compose(
        static_cast<char>(I),
        std::get<I>(rules_).scope == rule_scope::per_key ? key : std::string_view{})...};
    const std::array<quota, rule_count> quotas{std::get<I>(rules_).limit...};
    if constexpr (decision_observer<Observer>) {
      const auto started = std::chrono::steady_clock::now();
      const std::array<decision, rule_count> decided =
          storage_.template decide_all<As...>(keys, quotas, detail::now_nanoseconds(clock_), cost);
      const std::chrono::nanoseconds latency = std::chrono::steady_clock::now() - started;
      (observer_.on_decision({.key = key,
                              .decision = decided[I],
                              .rule = I,
                              .rule_name = std::get<I>(rules_).name,
                              .latency = latency}),
       ...);
      return finish(decided);
    } else {
      return finish(
          storage_.template decide_all<As...>(keys, quotas, detail::now_nanoseconds(clock_), cost));
    }
  }

  static multi_decision<rule_count> finish(const std::array<decision, rule_count>& rules) {
    multi_decision<rule_count> m;
    m.rules = rules;
    m.allowed = true;
    for (std::size_t i = 0; i < rule_count; ++i) {
      if (!rules[i].allowed && m.allowed) {
        m.allowed = false;
        m.rejected_by = i;
      }
    }
    for (std::size_t i = 1; i < rule_count; ++i) {
      const decision& best = rules[m.most_restrictive];
      const bool more = m.allowed ? rules[i].remaining < best.remaining
                                  : !rules[i].allowed &&
                                        (best.allowed || rules[i].retry_after > best.retry_after);
      if (more) m.most_restrictive = i;
    }
    return m;
  }

  Clock clock_;
  Storage storage_;
  [[no_unique_address]] Observer observer_;
  std::tuple<rule<As>...> rules_;
};

/// Several rules checked as one, without an observer: see basic_observed_multi_limiter.
template <clock_source Clock, class Storage, algorithm... As>
class basic_multi_limiter
    : public basic_observed_multi_limiter<no_observer, Clock, Storage, As...> {
 public:
  basic_multi_limiter(Clock clock, Storage storage, rule<As>... rules)
      : basic_observed_multi_limiter<no_observer, Clock, Storage, As...>(
            std::move(clock), std::move(storage), no_observer{}, std::move(rules)...) {}
};

/// A basic_multi_limiter on steady_clock and in_memory_storage:
/// `ratelimit::multi_limiter limits{rule<algorithms::token_bucket>{"burst", quota::per_second(10)},
/// ...};`
template <algorithm... As>
class multi_limiter
    : public basic_multi_limiter<std::chrono::steady_clock, in_memory_storage, As...> {
 public:
  explicit multi_limiter(rule<As>... rules)
      : basic_multi_limiter<std::chrono::steady_clock, in_memory_storage, As...>(
            {}, in_memory_storage{}, std::move(rules)...) {}
};

}  // namespace ratelimit
