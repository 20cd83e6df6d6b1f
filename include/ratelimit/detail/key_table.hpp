#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <string_view>
#include <utility>
#include <vector>

#include "ratelimit/detail/seeded_hash.hpp"
#include "ratelimit/detail/stored_key.hpp"

namespace ratelimit::detail {

/// The keys of one shard and their states. Entries live in a dense array of fixed-size
/// chunks; an open-addressing index of 4-byte slots (linear probing, at most 7/8 full)
/// finds them. A key costs its entry plus 4.6 to 9.1 bytes of index, and lookups touch
/// two cache lines: far less than a node-based map. Not thread-safe: a shard lock
/// guards it.
template <class State>
class key_table {
 public:
  struct entry {
    stored_key key;
    std::int64_t expires_at = 0;  ///< from this instant on, `state` equals a fresh one
    State state{};
  };

  /// Most keys one table can hold: an index slot keeps an entry id in 24 bits.
  static constexpr std::size_t max_keys_limit = (std::size_t{1} << 24) - 2;

  key_table() = default;
  key_table(const key_table&) = delete;
  key_table& operator=(const key_table&) = delete;

  void configure(std::size_t max_keys, std::uint64_t seed) noexcept {
    max_keys_ = max_keys;
    seed_ = seed;
  }

  std::uint64_t hash(std::string_view key) const noexcept { return seeded_hash(key, seed_); }
  std::size_t size() const noexcept { return live_; }

  /// The latest instant from which a key dropped as fresh (by `erase_fresh` or a sweep)
  /// was fresh. A key the table doesn't hold has been fresh since then at the latest:
  /// after a clock stepped back, an instant ahead of the clock.
  std::int64_t dropped_fresh_at() const noexcept { return dropped_fresh_at_; }

  entry* find(const key_probe& key) noexcept {
    const std::size_t slot = slot_of(key);
    return slot == npos ? nullptr : &at(index_[slot] >> 8);
  }

  /// Adds `key`, known to be absent, with a default state; a full table first makes
  /// room (see `make_room`). nullptr if memory runs out; the table is then unchanged.
  entry* insert(const key_probe& key, std::int64_t now) noexcept {
    stored_key owned;
    if (!owned.assign(key)) return nullptr;
    if (live_ >= max_keys_) make_room(now);
    if (!reserve_index(live_ + 1)) return nullptr;
    const std::uint32_t id = allocate_id();
    if (id == no_id) return nullptr;
    entry& e = at(id);
    e.key = std::move(owned);
    place(key.hash, id);
    ++live_;
    ++inserted_since_sweep_;
    return &e;
  }

  void erase(const key_probe& key) noexcept {
    const std::size_t slot = slot_of(key);
    if (slot != npos) erase_slot(slot);
  }

  /// Erases `key`, whose state is fresh from `now` on.
  void erase_fresh(const key_probe& key, std::int64_t now) noexcept {
    erase(key);
    dropped_fresh_at_ = std::max(dropped_fresh_at_, now);
  }

  /// Drops every entry expired at `now` and gives memory back once at most half of the
  /// entries handed out are still in use. Returns how many it dropped.
  std::size_t sweep(std::int64_t now) noexcept {
    std::size_t dropped = 0;
    for (std::uint32_t id = 0; id < used_; ++id) {
      entry& e = at(id);
      if (e.key.vacant() || e.expires_at > now) continue;
      dropped_fresh_at_ = std::max(dropped_fresh_at_, e.expires_at);
      erase_slot(slot_of_id(hash(e.key.view()), id));
      ++dropped;
    }
    if (live_ * 2 <= used_) compact();
    inserted_since_sweep_ = 0;
    return dropped;
  }

 private:
  static constexpr std::uint32_t empty_slot = 0;
  static constexpr std::uint32_t tombstone = 1;
  static constexpr std::uint32_t no_id = ~std::uint32_t{0};
  static constexpr std::size_t npos = ~std::size_t{0};
  static constexpr std::uint32_t chunk_bits = 8;
  static constexpr std::uint32_t chunk_size = std::uint32_t{1} << chunk_bits;
  /// Entries looked at to choose one to evict.
  static constexpr int eviction_sample = 8;

  // An index slot is (entry id << 8 | tag): the tag, 8 more bits of the hash in
  // [2, 255], skips most entries that merely share a probe sequence.
  static std::uint32_t tag_of(std::uint64_t hash) noexcept {
    return std::max<std::uint32_t>(static_cast<std::uint32_t>(hash >> 56), 2);
  }

  entry& at(std::uint32_t id) noexcept { return chunks_[id >> chunk_bits][id & (chunk_size - 1)]; }

  std::size_t slot_of(const key_probe& key) noexcept {
    if (index_ == nullptr) return npos;
    const std::uint32_t tag = tag_of(key.hash);
    for (std::size_t i = key.hash & mask_;; i = (i + 1) & mask_) {
      const std::uint32_t slot = index_[i];
      if (slot == empty_slot) return npos;
      if ((slot & 0xFF) == tag && at(slot >> 8).key.equals(key)) return i;
    }
  }

  std::size_t slot_of_id(std::uint64_t key_hash, std::uint32_t id) const noexcept {
    std::size_t i = key_hash & mask_;
    while (index_[i] == tombstone || index_[i] >> 8 != id) i = (i + 1) & mask_;
    return i;
  }

  void erase_slot(std::size_t slot) noexcept {
    const std::uint32_t id = index_[slot] >> 8;
    // A slot followed by an empty one ends no probe sequence: it can become empty too.
    if (index_[(slot + 1) & mask_] == empty_slot) {
      index_[slot] = empty_slot;
    } else {
      index_[slot] = tombstone;
      ++tombstones_;
    }
    entry& e = at(id);
    e.key.release();
    e.state = State{};
    e.expires_at = free_;
    free_ = id;
    --live_;
  }

  /// Makes room for one key. A sweep drops every key already fresh; it costs a pass over
  /// the table, so it runs at most once per max_keys/4 insertions. When it frees nothing
  /// (or did not run), `evict_one` drops a key.
  void make_room(std::int64_t now) noexcept {
    if (inserted_since_sweep_ >= std::max<std::size_t>(max_keys_ / 4, 1)) sweep(now);
    if (live_ >= max_keys_) evict_one();
  }

  /// Among a few entries at a rotating hand, drops the one that expires first: a key
  /// already fresh if the sample holds one, else the key nearest to fresh, which then
  /// restarts from a full quota.
  void evict_one() noexcept {
    std::uint32_t victim = no_id;
    for (int seen = 0, visited = 0; seen < eviction_sample && visited < static_cast<int>(used_);
         ++visited) {
      hand_ = hand_ + 1 < used_ ? hand_ + 1 : 0;
      const entry& e = at(hand_);
      if (e.key.vacant()) continue;
      ++seen;
      if (victim == no_id || e.expires_at < at(victim).expires_at) victim = hand_;
    }
    erase_slot(slot_of_id(hash(at(victim).key.view()), victim));
  }

  std::uint32_t allocate_id() noexcept {
    if (free_ != no_id) {
      const std::uint32_t id = free_;
      free_ = static_cast<std::uint32_t>(at(id).expires_at);
      return id;
    }
    if ((used_ & (chunk_size - 1)) == 0) {
      std::unique_ptr<entry[]> chunk(new (std::nothrow) entry[chunk_size]);
      if (chunk == nullptr) return no_id;
      try {
        chunks_.push_back(std::move(chunk));
      } catch (const std::bad_alloc&) {
        return no_id;
      }
    }
    return used_++;
  }

  static std::size_t index_capacity_for(std::size_t keys) noexcept {
    std::size_t capacity = 16;
    while (keys * 2 > capacity) capacity *= 2;  // rebuilt at most half full
    return capacity;
  }

  /// Room in the index for `keys` live keys plus its tombstones, rebuilding when the
  /// index would pass 7/8 full. Out of memory, it carries on while a slot stays empty.
  bool reserve_index(std::size_t keys) noexcept {
    const std::size_t capacity = index_ == nullptr ? 0 : mask_ + 1;
    if ((keys + tombstones_) * 8 <= capacity * 7) return true;
    return rebuild_index(index_capacity_for(keys)) || (index_ != nullptr && keys <= mask_);
  }

  /// Places every live key again, into a new index of `capacity` slots, or, if that
  /// cannot be allocated, into the current one cleared (purging its tombstones).
  bool rebuild_index(std::size_t capacity) noexcept {
    std::unique_ptr<std::uint32_t[]> index(new (std::nothrow) std::uint32_t[capacity]());
    const bool resized = index != nullptr;
    if (resized) {
      index_ = std::move(index);
      mask_ = capacity - 1;
    } else if (index_ == nullptr) {
      return false;
    } else {
      std::fill_n(index_.get(), mask_ + 1, empty_slot);
    }
    tombstones_ = 0;
    for (std::uint32_t id = 0; id < used_; ++id) {
      if (!at(id).key.vacant()) place(hash(at(id).key.view()), id);
    }
    return resized;
  }

  void place(std::uint64_t key_hash, std::uint32_t id) noexcept {
    std::size_t i = key_hash & mask_;
    while (index_[i] > tombstone) i = (i + 1) & mask_;
    if (index_[i] == tombstone) --tombstones_;
    index_[i] = id << 8 | tag_of(key_hash);
  }

  /// Moves the live entries to the lowest ids, frees the chunks above them and rebuilds
  /// the index at the size the live keys need.
  void compact() noexcept {
    std::uint32_t low = 0;
    std::uint32_t high = used_;
    for (;;) {
      while (low < high && !at(low).key.vacant()) ++low;
      while (low < high && at(high - 1).key.vacant()) --high;
      if (low >= high) break;
      entry& from = at(high - 1);
      entry& to = at(low);
      to.key = std::move(from.key);
      to.expires_at = from.expires_at;
      to.state = std::exchange(from.state, State{});
    }
    used_ = low;
    free_ = no_id;
    hand_ = 0;
    chunks_.resize((used_ + chunk_size - 1) >> chunk_bits);
    if (live_ == 0) {
      index_.reset();
      mask_ = 0;
      tombstones_ = 0;
    } else {
      rebuild_index(index_capacity_for(live_));
    }
  }

  std::vector<std::unique_ptr<entry[]>> chunks_;
  std::unique_ptr<std::uint32_t[]> index_;
  std::size_t mask_ = 0;
  std::size_t tombstones_ = 0;
  std::size_t max_keys_ = max_keys_limit;
  std::uint64_t seed_ = 0;
  std::uint32_t used_ = 0;  ///< ids [0, used_) have been handed out
  std::uint32_t live_ = 0;
  std::uint32_t free_ = no_id;  ///< vacant ids below used_, linked through expires_at
  std::uint32_t hand_ = 0;
  std::size_t inserted_since_sweep_ = 0;
  std::int64_t dropped_fresh_at_ = std::numeric_limits<std::int64_t>::min();
};

}  // namespace ratelimit::detail
