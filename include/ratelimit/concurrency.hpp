#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "ratelimit/detail/key_table.hpp"
#include "ratelimit/detail/seeded_hash.hpp"
#include "ratelimit/detail/spin_lock.hpp"
#include "ratelimit/detail/stored_key.hpp"
#include "ratelimit/detail/wide_math.hpp"
#include "ratelimit/storage/in_memory.hpp"

namespace ratelimit {

/// At most `max_in_flight` requests in flight per key, in this process. `try_acquire` hands
/// out a `permit`, which holds one slot of its key until it is released or destroyed:
///
///     ratelimit::concurrency_limiter uploads{4};
///     if (auto p = uploads.try_acquire(user)) {
///       serve(request);  // at most 4 of `user`'s requests are here at once
///     } else {
///       reject_with_429();
///     }                  // p leaves scope: the slot is free again
///
/// Keys live in the library's sharded tables (detail::key_table, one spin lock per shard,
/// the hash seeded at random per limiter), holding the number of permits out; a key whose
/// last permit is released is dropped at once, so memory follows the keys in flight.
/// `max_keys` of in_memory_options bounds them: a key new to a full shard is refused (a key
/// with permits out is never evicted, which would let its holders' successors exceed the
/// limit).
///
/// A copyable handle: copies share the same slots. Thread-safe; a permit may be released
/// on any thread, and after the limiter is gone (it shares the slots' ownership).
class concurrency_limiter {
  struct shared;

 public:
  /// One slot of one key, held until `release()` or destruction. Move-only; a moved-from or
  /// refused permit holds nothing. One permit is not for two threads at once; distinct
  /// permits are.
  class permit {
   public:
    permit() noexcept = default;
    permit(permit&& other) noexcept
        : shared_(std::move(other.shared_)), key_(std::move(other.key_)), hash_(other.hash_) {}
    permit& operator=(permit&& other) noexcept {
      if (this != &other) {
        release();
        shared_ = std::move(other.shared_);
        key_ = std::move(other.key_);
        hash_ = other.hash_;
      }
      return *this;
    }
    permit(const permit&) = delete;
    permit& operator=(const permit&) = delete;
    ~permit() { release(); }

    /// Whether the permit holds a slot.
    explicit operator bool() const noexcept { return shared_ != nullptr; }

    /// Gives the slot back; does nothing the second time.
    void release() noexcept {
      if (const std::shared_ptr<shared> s = std::move(shared_)) s->release(key_, hash_);
    }

   private:
    friend class concurrency_limiter;
    permit(std::shared_ptr<shared> s, std::string key, std::uint64_t hash) noexcept
        : shared_(std::move(s)), key_(std::move(key)), hash_(hash) {}

    std::shared_ptr<shared> shared_;  ///< null: holds nothing
    std::string key_;
    std::uint64_t hash_ = 0;
  };

  /// Throws std::invalid_argument naming the value if `max_in_flight <= 0` or `options` is
  /// invalid (as in_memory_storage would).
  explicit concurrency_limiter(std::int64_t max_in_flight, in_memory_options options = {})
      : shared_(std::make_shared<shared>(checked(max_in_flight), validated(options))) {}

  /// A permit for `key` if fewer than `max_in_flight` are out, else an empty one (also when
  /// the key cannot be stored: its shard is full, or memory ran out). Never blocks on
  /// anything but a shard lock held for a few dozen nanoseconds.
  [[nodiscard]] permit try_acquire(std::string_view key) noexcept {
    std::string owned;
    try {
      owned.assign(key);  // before taking a slot: a permit that cannot hold its key takes none
    } catch (const std::bad_alloc&) {
      return {};
    }
    const std::uint64_t hash = detail::seeded_hash(key, shared_->seed);
    if (!shared_->acquire(key, hash)) return {};
    return {shared_, std::move(owned), hash};
  }

  /// Permits out for `key` now.
  std::int64_t in_flight(std::string_view key) const noexcept {
    const detail::key_probe probe{key, detail::seeded_hash(key, shared_->seed)};
    shard& s = shared_->shard_of(probe.hash);
    std::lock_guard lock{s.mutex};
    const auto* found = s.table.find(probe);
    return found == nullptr ? 0 : found->state;
  }

  /// Keys with at least one permit out.
  std::size_t size() const noexcept {
    std::size_t keys = 0;
    for (std::size_t i = 0; i <= shared_->shard_mask; ++i) {
      shard& s = shared_->shards[i];
      std::lock_guard lock{s.mutex};
      keys += s.table.size();
    }
    return keys;
  }

  std::int64_t max_in_flight() const noexcept { return shared_->max_in_flight; }

 private:
  struct alignas(64) shard {
    detail::spin_lock mutex;
    /// Each key's permits out, >= 1; a key at 0 is erased. Every entry's `expires_at` is
    /// int64_max, so that the table's sweep never drops one: it only gives memory back.
    detail::key_table<std::int64_t> table;
    std::size_t capacity = 0;
    /// The table gives memory back every max(1024, keys) keys erased: amortised O(1).
    std::size_t erases_until_compaction = 1024;
  };

  struct shared {
    shared(std::int64_t max, const in_memory_options& options)
        : max_in_flight(max), shards(new shard[options.shards]), shard_mask(options.shards - 1) {
      for (std::size_t i = 0; i < options.shards; ++i) {
        shards[i].capacity =
            options.max_keys / options.shards + (i < options.max_keys % options.shards);
        shards[i].table.configure(shards[i].capacity, seed);
      }
    }

    shard& shard_of(std::uint64_t hash) const noexcept { return shards[(hash >> 32) & shard_mask]; }

    bool acquire(std::string_view key, std::uint64_t hash) noexcept {
      const detail::key_probe probe{key, hash};
      shard& s = shard_of(hash);
      std::lock_guard lock{s.mutex};
      if (auto* found = s.table.find(probe)) {
        if (found->state >= max_in_flight) return false;
        ++found->state;
        return true;
      }
      // Checked here, so that the table never makes room by evicting a key in flight.
      if (s.table.size() >= s.capacity) return false;
      auto* added = s.table.insert(probe, detail::int64_max);
      if (added == nullptr) return false;
      added->expires_at = detail::int64_max;
      added->state = 1;
      return true;
    }

    void release(std::string_view key, std::uint64_t hash) noexcept {
      const detail::key_probe probe{key, hash};
      shard& s = shard_of(hash);
      std::lock_guard lock{s.mutex};
      auto* found = s.table.find(probe);
      assert(found != nullptr && found->state > 0);
      if (found == nullptr || --found->state > 0) return;
      s.table.erase(probe);
      if (--s.erases_until_compaction == 0) {
        s.table.sweep(detail::int64_min);  // drops nothing (see `shard::table`); compacts
        s.erases_until_compaction = std::max<std::size_t>(1024, s.table.size());
      }
    }

    const std::int64_t max_in_flight;
    const std::uint64_t seed = detail::random_seed();
    const std::unique_ptr<shard[]> shards;
    const std::size_t shard_mask;
  };

  static std::int64_t checked(std::int64_t max_in_flight) {
    if (max_in_flight <= 0) {
      throw std::invalid_argument(
          "ratelimit::concurrency_limiter: max_in_flight must be > 0 (got " +
          std::to_string(max_in_flight) + ")");
    }
    return max_in_flight;
  }

  static const in_memory_options& validated(const in_memory_options& options) {
    // The storage's own checks, with its messages: it throws for what it would refuse.
    static_cast<void>(in_memory_storage_st{options});
    return options;
  }

  std::shared_ptr<shared> shared_;
};

}  // namespace ratelimit
