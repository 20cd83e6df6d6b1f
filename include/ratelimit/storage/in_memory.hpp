#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "ratelimit/algorithm.hpp"
#include "ratelimit/decision.hpp"
#include "ratelimit/detail/key_table.hpp"
#include "ratelimit/detail/seeded_hash.hpp"
#include "ratelimit/detail/spin_lock.hpp"
#include "ratelimit/detail/stored_key.hpp"
#include "ratelimit/detail/wide_math.hpp"
#include "ratelimit/quota.hpp"

namespace ratelimit {

struct in_memory_options {
  /// Most keys held for each algorithm, enforced per shard (each holds its share,
  /// max_keys / shards). A shard that is full makes room for a new key by dropping, out
  /// of a sample of 8, the key that expires first: a key already back to a fresh state
  /// when there is one; else the one nearest to it, which restarts from a full quota
  /// (an over-admission bounded by what that key had used). Memory stays bounded.
  std::size_t max_keys = std::size_t{1} << 20;
  /// Independent locks; a power of two.
  std::size_t shards = 64;
};

/// The lock of in_memory_storage_st's shards: none, for storages used by one thread.
struct no_lock {
  void lock() noexcept {}
  void unlock() noexcept {}
};

namespace algorithms {
struct fixed_window;
}

namespace detail {

/// The tables of one algorithm, found by a tag unique to its type.
struct algorithm_table {
  virtual ~algorithm_table() = default;
  virtual std::size_t size() = 0;
  virtual std::size_t sweep() = 0;
  const void* algorithm_tag = nullptr;
  algorithm_table* next = nullptr;
};

template <class A>
inline constexpr char algorithm_tag = 0;

/// Whether a key of A that was dropped as fresh starts again no earlier than the instant
/// it was dropped at (see sharded_table::fresh_at).
template <class A>
inline constexpr bool fresh_no_earlier_than_dropped = std::is_same_v<A, algorithms::fixed_window>;

template <algorithm A, class Mutex>
class sharded_table final : public algorithm_table {
 public:
  sharded_table(const in_memory_options& options, std::uint64_t seed)
      : shards_(new shard[options.shards]), shard_mask_(options.shards - 1), seed_(seed) {
    algorithm_tag = &detail::algorithm_tag<A>;
    for (std::size_t i = 0; i < options.shards; ++i) {
      // Spread the bound evenly: the shards hold max_keys in total, never more.
      const std::size_t share =
          options.max_keys / options.shards + (i < options.max_keys % options.shards);
      shards_[i].table.configure(share, seed);
    }
  }

  decision decide(std::string_view key, const quota& q, std::int64_t now,
                  std::int64_t cost) noexcept {
    return apply(key, q, now,
                 [&](typename A::state& state) noexcept { return A::step(state, q, now, cost); });
  }

  /// Runs `operation(state&) -> decision` on the key's state (a fresh one if it has none)
  /// under its shard's lock, then keeps the state until the decision's reset_after.
  template <class Operation>
  decision apply(std::string_view key, const quota& q, std::int64_t now,
                 Operation operation) noexcept {
    const key_probe probe{key, seeded_hash(key, seed_)};
    shard& s = shards_[(probe.hash >> 32) & shard_mask_];
    // The decision is built in place and returned without a copy: copying it field by
    // field through the stack stalled on store forwarding and cost a third of a decision.
    std::unique_lock lock{s.mutex};
    const bool swept = count_decision(s, now);
    decision d = apply_locked(s.table, probe, q, now, operation);
    lock.unlock();
    // A shard that no longer gets traffic is swept in turn by the busy ones, so that its
    // idle keys go too.
    if (swept) sweep_shard(next_idle_.fetch_add(1, std::memory_order_relaxed) & shard_mask_, now);
    return d;
  }

  // The pieces of a decision over several tables at once (see rule_step): where a key
  // lives, and what a decision does on its locked shard.
  struct place {
    std::size_t shard;
    key_probe probe;
  };

  place locate(std::string_view key) const noexcept {
    const key_probe probe{key, seeded_hash(key, seed_)};
    return {(probe.hash >> 32) & shard_mask_, probe};
  }

  Mutex& mutex(const place& p) noexcept { return shards_[p.shard].mutex; }

  /// A decision's bookkeeping on a locked shard, before it looks at any entry.
  void count_decision(const place& p, std::int64_t now) noexcept {
    count_decision(shards_[p.shard], now);
  }

  typename key_table<typename A::state>::entry* find(const place& p) noexcept {
    return shards_[p.shard].table.find(p.probe);
  }

  /// Adds the key with a fresh state; nullptr if it can't be stored.
  typename key_table<typename A::state>::entry* insert_fresh(const place& p, const quota& q,
                                                             std::int64_t now) noexcept {
    table_type& table = shards_[p.shard].table;
    auto* added = table.insert(p.probe, now);
    if (added != nullptr) {
      added->state = A::fresh(q, fresh_at(table, now));
      added->expires_at = now;
    }
    return added;
  }

  void erase(const place& p) noexcept { shards_[p.shard].table.erase(p.probe); }

  /// Records `d`, just decided on the key's entry: its expiry, or its removal once fresh.
  void settle(const place& p, typename key_table<typename A::state>::entry& e, const decision& d,
              std::int64_t now) noexcept {
    if (d.reset_after == std::chrono::nanoseconds::zero()) {
      shards_[p.shard].table.erase_fresh(p.probe, now);
    } else {
      e.expires_at = saturating_add(now, d.reset_after.count());
    }
  }

  std::size_t size() override {
    std::size_t keys = 0;
    for (std::size_t i = 0; i <= shard_mask_; ++i) {
      std::lock_guard lock{shards_[i].mutex};
      keys += shards_[i].table.size();
    }
    return keys;
  }

  /// Sweeps each shard as of the time of the latest decision (see latest_), or of its own
  /// latest decision if later (see sweep_shard).
  std::size_t sweep() override {
    std::size_t dropped = 0;
    const std::int64_t latest = latest_.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i <= shard_mask_; ++i) dropped += sweep_shard(i, latest);
    return dropped;
  }

 private:
  using table_type = key_table<typename A::state>;

  struct alignas(64) shard {
    Mutex mutex;
    table_type table;
    /// The time of the shard's latest decision.
    std::int64_t last_seen = int64_min;
    /// Sweeps run every max(1024, keys) decisions of a shard: amortised O(1) a call.
    std::size_t operations_until_sweep = 1024;

    std::size_t sweep(std::int64_t now) noexcept {
      const std::size_t dropped = table.sweep(now);
      operations_until_sweep = std::max<std::size_t>(1024, table.size());
      return dropped;
    }
  };

  /// A decision's bookkeeping on its locked shard: the time it saw, and the shard's own
  /// sweep when one is due. True if it swept.
  bool count_decision(shard& s, std::int64_t now) noexcept {
    s.last_seen = now;
    // A relaxed load of a line that all shards share but that changes at most once a
    // millisecond, unless the clock steps back: a store on every decision would bounce it
    // between the cores.
    const std::int64_t latest = latest_.load(std::memory_order_relaxed);
    if (now < latest || latest <= saturating_add(now, -latest_resolution)) {
      latest_.store(now, std::memory_order_relaxed);
    }
    if (--s.operations_until_sweep != 0) return false;
    s.sweep(now);
    return true;
  }

  /// The instant a key the table doesn't hold starts fresh at: `now`, but for the fixed
  /// window no earlier than the latest instant the shard dropped a key as fresh at. A fixed
  /// window is fresh once a window begins in which it counted nothing, the one before maybe
  /// used up a moment ago: started in that one again after the clock stepped back, it would
  /// admit its limit twice within a period of real time; started as of the instant it was
  /// dropped at, it keeps counting in the later window, as the state kept would. Any other
  /// algorithm is fresh only once nothing it admitted counts any more (a sliding window
  /// counter's last two windows empty, a bucket full, a log empty), so that a key started
  /// at `now` admits what one on a clock that never stepped would, D later; a later start
  /// would only lock it out longer, and decide unlike Redis, which starts a key it doesn't
  /// hold at the time it reads.
  static std::int64_t fresh_at(const table_type& table, std::int64_t now) noexcept {
    if constexpr (fresh_no_earlier_than_dropped<A>) return std::max(now, table.dropped_fresh_at());
    return now;
  }

  template <class Operation>
  static decision apply_locked(table_type& table, const key_probe& probe, const quota& q,
                               std::int64_t now, Operation& operation) noexcept {
    if (auto* found = table.find(probe)) return apply_stored(table, *found, probe, now, operation);
    return apply_new(table, probe, q, now, operation);
  }

  template <class Operation>
  static decision apply_stored(table_type& table, typename table_type::entry& found,
                               const key_probe& probe, std::int64_t now,
                               Operation& operation) noexcept {
    decision d = operation(found.state);
    if (d.reset_after == std::chrono::nanoseconds::zero()) {
      table.erase_fresh(probe, now);
    } else {
      found.expires_at = saturating_add(now, d.reset_after.count());
    }
    return d;
  }

  template <class Operation>
  static decision apply_new(table_type& table, const key_probe& probe, const quota& q,
                            std::int64_t now, Operation& operation) noexcept {
    typename A::state state = A::fresh(q, fresh_at(table, now));
    decision d = operation(state);
    if (d.reset_after == std::chrono::nanoseconds::zero()) return d;  // as fresh as before
    auto* added = table.insert(probe, now);
    if (added == nullptr) {
      reject_for_want_of_memory(d);
      return d;
    }
    added->state = std::move(state);
    added->expires_at = saturating_add(now, d.reset_after.count());
    return d;
  }

  /// Sweeps shard `i` as of `as_of`, the time of the latest decision (the one sweeping, or
  /// latest_), or the time of the shard's own latest decision if later. After the clock
  /// stepped back, a key decided since is fresh at either only if it is fresh in real time
  /// too. The latest time any shard saw would not do: that is ahead of the clock, and would
  /// drop keys decided since up to the step before they are fresh, to restart from a full
  /// quota.
  std::size_t sweep_shard(std::size_t i, std::int64_t as_of) noexcept {
    std::lock_guard lock{shards_[i].mutex};
    return shards_[i].sweep(std::max(as_of, shards_[i].last_seen));
  }

  /// A key that cannot be stored is not admitted: admitting it unrecorded would let it
  /// pass again and again.
  static void reject_for_want_of_memory(decision& d) noexcept {
    if (!d.allowed) return;
    d.allowed = false;
    d.remaining = 0;
    d.retry_after = d.reset_after;
    d.delay = {};
  }

  std::unique_ptr<shard[]> shards_;
  std::size_t shard_mask_;
  std::uint64_t seed_;
  std::atomic<std::size_t> next_idle_{0};
  /// The time of the latest decision, which sweep() takes for the clock's reading (the
  /// latest time any decision saw would not do: after the clock stepped back, it is ahead).
  /// Kept to within `latest_resolution` below it, and taken back at once when a decision
  /// sees an earlier time. With relaxed atomics, a decision that read the clock before it
  /// stepped back by D and gets here after one that read it since can leave it up to D
  /// ahead, until the next decision; a sweep() just then may drop keys decided since up to
  /// D before they are fresh.
  std::atomic<std::int64_t> latest_{int64_min};
  static constexpr std::int64_t latest_resolution = 1'000'000;  // 1ms
};

/// One rule of an all-or-nothing decision: steps the key's state in place, and can take
/// the step back if another rule rejects the request.
template <algorithm A, class Mutex>
class rule_step {
 public:
  rule_step(sharded_table<A, Mutex>& table, std::string_view key, const quota& q)
      : table_(table), place_(table.locate(key)), quota_(q) {}

  Mutex& mutex() noexcept { return table_.mutex(place_); }
  void count_decision(std::int64_t now) noexcept { table_.count_decision(place_, now); }

  /// Makes sure the key has an entry, so that no later insertion moves the entries the
  /// other rules are stepping. False if it can't be stored.
  bool make_present(std::int64_t now) noexcept {
    if (table_.find(place_) != nullptr) return true;
    added_ = table_.insert_fresh(place_, quota_, now) != nullptr;
    return added_;
  }

  decision step(std::int64_t now, std::int64_t cost) noexcept {
    entry_ = table_.find(place_);
    // An insertion of another rule's key evicted this one: the table is full.
    if (entry_ == nullptr) return decision{.limit = quota_.limit, .retry_after = quota_.period};
    if constexpr (std::is_trivially_copyable_v<typename A::state>) saved_ = entry_->state;
    decision_ = A::step(entry_->state, quota_, now, cost);
    cost_ = cost;
    return decision_;
  }

  void take_back() noexcept {
    if (entry_ != nullptr && decision_.allowed) {
      if constexpr (std::is_trivially_copyable_v<typename A::state>) {
        entry_->state = saved_;
      } else {
        A::refund(entry_->state, cost_);
      }
    }
    if (added_) table_.erase(place_);
  }

  void settle(std::int64_t now) noexcept {
    if (entry_ != nullptr) table_.settle(place_, *entry_, decision_, now);
  }

 private:
  using state_type = typename A::state;
  struct nothing {};

  sharded_table<A, Mutex>& table_;
  typename sharded_table<A, Mutex>::place place_;
  const quota& quota_;
  typename key_table<state_type>::entry* entry_ = nullptr;
  bool added_ = false;
  [[no_unique_address]] std::conditional_t<std::is_trivially_copyable_v<state_type>, state_type,
                                           nothing>
      saved_{};
  decision decision_{};
  std::int64_t cost_ = 0;
};

}  // namespace detail

/// Per-key state in this process's memory, for millions of keys: keys are spread over
/// shards, each a lock and a compact hash table, so threads on different keys rarely
/// meet and a decision on an existing key allocates nothing (a sliding_log key's log
/// still grows when it outgrows its peak). Keys whose state is back to a fresh one are
/// dropped by sweeps: every max(1024, keys) decisions a shard sweeps itself and one other
/// shard in turn, and `sweep()` sweeps them all.
/// The hash is keyed with a random seed per storage, against crafted colliding keys.
///
/// A copyable handle: copies share the same keys. Limiters of different algorithms may
/// share one storage; each algorithm has its own keys.
///
/// `Mutex` locks each shard: in_memory_storage spins (detail::spin_lock: a decision holds
/// it for a few dozen nanoseconds) and is thread-safe; in_memory_storage_st, with
/// `no_lock`, is for one thread, such as an event loop; any BasicLockable type works,
/// `std::mutex` among them.
template <class Mutex>
class basic_in_memory_storage {
 public:
  explicit basic_in_memory_storage(in_memory_options options = {})
      : shared_(std::make_shared<shared>(validated(options))) {}

  /// Allocates the algorithm's tables on its first use, unless `prepare` did.
  template <algorithm A>
  decision decide(std::string_view key, const quota& q, std::int64_t now, std::int64_t cost) {
    return table<A>().decide(key, q, now, cost);
  }

  /// Reserves `cost` units of `key` for a request that may wait up to `max_wait` ns: see
  /// A::reserve. An admission fills `b`, which cancel() takes.
  template <reservable A>
  decision reserve(std::string_view key, const quota& q, std::int64_t now, std::int64_t cost,
                   std::int64_t max_wait, typename A::booking& b) {
    return table<A>().apply(key, q, now, [&](typename A::state& state) noexcept {
      return A::reserve(state, q, now, cost, max_wait, b);
    });
  }

  /// Gives back what the reservation booked as `b` took: see A::cancel.
  template <reservable A>
  decision cancel(std::string_view key, const quota& q, std::int64_t now,
                  const typename A::booking& b) {
    return table<A>().apply(key, q, now, [&](typename A::state& state) noexcept {
      return A::cancel(state, q, now, b);
    });
  }

  /// Decides one request of `cost` against several rules at once, all or nothing: rule i
  /// runs algorithm `As[i]` on `keys[i]` at `quotas[i]`, and unless every rule admits the
  /// request none consumes anything. The shards involved are locked together (in address
  /// order, so that two such decisions can't deadlock), so no other decision sees half of
  /// one. Rules of one algorithm need distinct keys. In a rejected set, a rule that would
  /// have admitted the request says so (`allowed`), with the `remaining` it would have left.
  template <algorithm... As>
  std::array<decision, sizeof...(As)> decide_all(
      const std::array<std::string_view, sizeof...(As)>& keys,
      const std::array<quota, sizeof...(As)>& quotas, std::int64_t now, std::int64_t cost) {
    return decide_all_of<As...>(keys, quotas, now, cost, std::index_sequence_for<As...>{});
  }

  /// Allocates the tables of `A` now rather than on the first decision.
  template <algorithm A>
  void prepare(const quota&) {
    table<A>();
  }

  /// Keys held, over all algorithms.
  std::size_t size() const {
    std::size_t keys = 0;
    for (auto* t = shared_->tables.load(std::memory_order_acquire); t != nullptr; t = t->next) {
      keys += t->size();
    }
    return keys;
  }

  /// Drops every key whose state is back to a fresh one, as of the time of the latest
  /// decision (to within a millisecond), or of its shard's latest if later; returns how
  /// many. After the clock stepped back, neither drops a key decided since before it is
  /// fresh (but for a decision racing the step: see sharded_table::latest_).
  std::size_t sweep() {
    std::size_t dropped = 0;
    for (auto* t = shared_->tables.load(std::memory_order_acquire); t != nullptr; t = t->next) {
      dropped += t->sweep();
    }
    return dropped;
  }

  const in_memory_options& options() const noexcept { return shared_->options; }

 private:
  struct shared {
    explicit shared(const in_memory_options& o) : options(o) {}
    shared(const shared&) = delete;
    shared& operator=(const shared&) = delete;
    ~shared() {
      for (auto* t = tables.load(); t != nullptr;) delete std::exchange(t, t->next);
    }

    in_memory_options options;
    std::uint64_t seed = detail::random_seed();
    std::mutex adding;
    std::atomic<detail::algorithm_table*> tables{nullptr};
  };

  template <algorithm A>
  detail::sharded_table<A, Mutex>& table() {
    auto* t = shared_->tables.load(std::memory_order_acquire);
    while (t != nullptr && t->algorithm_tag != &detail::algorithm_tag<A>) t = t->next;
    if (t == nullptr) t = add_table<A>();
    return static_cast<detail::sharded_table<A, Mutex>&>(*t);
  }

  template <algorithm A>
  detail::algorithm_table* add_table() {
    std::lock_guard lock{shared_->adding};
    auto* head = shared_->tables.load(std::memory_order_acquire);
    for (auto* t = head; t != nullptr; t = t->next) {
      if (t->algorithm_tag == &detail::algorithm_tag<A>) return t;
    }
    auto* added = new detail::sharded_table<A, Mutex>(shared_->options, shared_->seed);
    added->next = head;
    shared_->tables.store(added, std::memory_order_release);
    return added;
  }

  template <algorithm... As, std::size_t... I>
  std::array<decision, sizeof...(As)> decide_all_of(
      const std::array<std::string_view, sizeof...(As)>& keys,
      const std::array<quota, sizeof...(As)>& quotas, std::int64_t now, std::int64_t cost,
      std::index_sequence<I...>) {
    std::tuple<detail::rule_step<As, Mutex>...> steps{
        detail::rule_step<As, Mutex>(table<As>(), keys[I], quotas[I])...};

    // Each shard once, in address order.
    std::array<Mutex*, sizeof...(As)> locks{&std::get<I>(steps).mutex()...};
    std::sort(locks.begin(), locks.end(), std::less<Mutex*>{});
    const auto last = std::unique(locks.begin(), locks.end());
    for (auto it = locks.begin(); it != last; ++it) (*it)->lock();

    (std::get<I>(steps).count_decision(now), ...);
    std::array<decision, sizeof...(As)> out{};
    // Every key gets its entry first: an insertion may evict or move entries, which must
    // not happen to an entry already stepped.
    const bool stored = (std::get<I>(steps).make_present(now) && ...);
    if (stored) ((out[I] = std::get<I>(steps).step(now, cost)), ...);
    const bool admitted = stored && (out[I].allowed && ...);
    if (admitted) {
      (std::get<I>(steps).settle(now), ...);
    } else {
      (std::get<I>(steps).take_back(), ...);
    }

    for (auto it = locks.begin(); it != last; ++it) (*it)->unlock();
    // A key that can't be stored is not admitted, as in decide(); it may be, a period on.
    if (!stored)
      ((out[I] = decision{.limit = quotas[I].limit, .retry_after = quotas[I].period}), ...);
    return out;
  }

  static in_memory_options validated(const in_memory_options& o) {
    const auto fail = [](const std::string& what) {
      throw std::invalid_argument("ratelimit::in_memory_options: " + what);
    };
    if (o.shards == 0 || !std::has_single_bit(o.shards) || o.shards > (std::size_t{1} << 16)) {
      fail("shards must be a power of two in [1, 65536] (got " + std::to_string(o.shards) + ")");
    }
    if (o.max_keys < o.shards) {
      fail("max_keys must be >= shards, " + std::to_string(o.shards) + " (got " +
           std::to_string(o.max_keys) + ")");
    }
    constexpr std::size_t per_shard = detail::key_table<char>::max_keys_limit;
    if ((o.max_keys - 1) / o.shards + 1 > per_shard) {
      fail("max_keys must be <= shards * " + std::to_string(per_shard) + " (got " +
           std::to_string(o.max_keys) + " with " + std::to_string(o.shards) + " shards)");
    }
    return o;
  }

  std::shared_ptr<shared> shared_;
};

using in_memory_storage = basic_in_memory_storage<detail::spin_lock>;
using in_memory_storage_st = basic_in_memory_storage<no_lock>;

}  // namespace ratelimit
