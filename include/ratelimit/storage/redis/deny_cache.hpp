#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <vector>

#include "ratelimit/detail/seeded_hash.hpp"
#include "ratelimit/detail/spin_lock.hpp"
#include "ratelimit/detail/wide_math.hpp"

namespace ratelimit::detail::redis {

/// Keys the backend rejected, and until when, so that while the backend is unreachable a
/// client that was over its limit stays rejected instead of being waved through by
/// fail_open. Fixed size and direct-mapped: a newer rejection overwrites an older one in
/// the same slot, so under a flood of rejected keys it forgets some, never grows. Keyed by
/// a 64-bit seeded hash of the algorithm's name and the key. Thread-safe.
class deny_cache {
 public:
  explicit deny_cache(std::size_t slots) : slots_(std::bit_ceil(std::max<std::size_t>(slots, 1))) {}

  void remember(std::string_view algorithm, std::string_view key, std::int64_t until) {
    const std::uint64_t h = hash(algorithm, key);
    std::lock_guard lock{mutex_};
    slots_[h & (slots_.size() - 1)] = {h, until};
  }

  /// `key` was admitted: whatever was remembered of it no longer holds.
  void forget(std::string_view algorithm, std::string_view key) {
    const std::uint64_t h = hash(algorithm, key);
    std::lock_guard lock{mutex_};
    slot& s = slots_[h & (slots_.size() - 1)];
    if (s.key == h) s = {};
  }

  /// Until when `key` is known to be rejected, or a time <= now if it isn't.
  std::int64_t rejected_until(std::string_view algorithm, std::string_view key) {
    const std::uint64_t h = hash(algorithm, key);
    std::lock_guard lock{mutex_};
    const slot& s = slots_[h & (slots_.size() - 1)];
    return s.key == h ? s.until : int64_min;
  }

 private:
  struct slot {
    std::uint64_t key = 0;
    std::int64_t until = int64_min;
  };

  std::uint64_t hash(std::string_view algorithm, std::string_view key) const noexcept {
    return seeded_hash(key, seed_ ^ seeded_hash(algorithm, seed_));
  }

  const std::uint64_t seed_ = random_seed();
  spin_lock mutex_;
  std::vector<slot> slots_;
};

}  // namespace ratelimit::detail::redis
