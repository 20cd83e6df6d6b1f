// Counts every allocation of this executable by replacing the global operator new and
// delete, to check what the in-memory storage allocates and gives back.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <ratelimit/detail/key_table.hpp>
#include <ratelimit/ratelimit.hpp>
#include <string>

namespace {

std::atomic<std::int64_t> allocations{0};
std::atomic<std::int64_t> bytes_in_use{0};
std::atomic<bool> out_of_memory{false};

// Each block starts with a header holding the requested size and the header's length.
void* allocate(std::size_t size, std::size_t alignment) noexcept {
  if (out_of_memory.load(std::memory_order_relaxed)) return nullptr;
  const std::size_t header = std::max(alignment, alignof(std::max_align_t));
  const std::size_t total = (header + size + header - 1) / header * header;
  auto* block = static_cast<char*>(std::aligned_alloc(header, total));
  if (block == nullptr) return nullptr;
  char* user = block + header;
  std::memcpy(user - 2 * sizeof(std::size_t), &size, sizeof size);
  std::memcpy(user - sizeof(std::size_t), &header, sizeof header);
  allocations.fetch_add(1, std::memory_order_relaxed);
  bytes_in_use.fetch_add(static_cast<std::int64_t>(size), std::memory_order_relaxed);
  return user;
}

void deallocate(void* p) noexcept {
  if (p == nullptr) return;
  char* user = static_cast<char*>(p);
  std::size_t size;
  std::size_t header;
  std::memcpy(&size, user - 2 * sizeof(std::size_t), sizeof size);
  std::memcpy(&header, user - sizeof(std::size_t), sizeof header);
  bytes_in_use.fetch_sub(static_cast<std::int64_t>(size), std::memory_order_relaxed);
  std::free(user - header);
}

void* allocate_or_throw(std::size_t size, std::size_t alignment) {
  void* p = allocate(size, alignment);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace

void* operator new(std::size_t size) { return allocate_or_throw(size, 1); }
void* operator new[](std::size_t size) { return allocate_or_throw(size, 1); }
void* operator new(std::size_t size, std::align_val_t a) {
  return allocate_or_throw(size, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t size, std::align_val_t a) {
  return allocate_or_throw(size, static_cast<std::size_t>(a));
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return allocate(size, 1); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return allocate(size, 1); }
void* operator new(std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(size, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(size, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { deallocate(p); }
void operator delete[](void* p) noexcept { deallocate(p); }
void operator delete(void* p, std::size_t) noexcept { deallocate(p); }
void operator delete[](void* p, std::size_t) noexcept { deallocate(p); }
void operator delete(void* p, std::align_val_t) noexcept { deallocate(p); }
void operator delete[](void* p, std::align_val_t) noexcept { deallocate(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { deallocate(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { deallocate(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { deallocate(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { deallocate(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { deallocate(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { deallocate(p); }

namespace {

using namespace std::chrono_literals;
using ratelimit::in_memory_options;
using ratelimit::in_memory_storage;
using ratelimit::manual_clock;
using ratelimit::quota;

// A key of a fixed length, so that every heap-held key costs the same.
std::string numbered(const char* prefix, int i) {
  char key[64];
  std::snprintf(key, sizeof key, "%s-%012d", prefix, i);
  return key;
}

// Runs decisions on two keys already stored, one inline and one on the heap, with the
// clock moving 1ms a call: admissions, rejections, window edges and periodic sweeps.
// Times stay off window edges, where a key is fresh and may be swept and stored anew.
template <class Limiter>
std::int64_t allocations_on_existing_keys(int warm_up_calls, int measured_calls) {
  manual_clock clock;
  clock.advance(500us);
  Limiter limiter{quota::per_second(100), clock};
  const std::string short_key = "client-42";
  const std::string long_key(200, 'L');
  int admitted = 0;
  const auto call = [&] {
    admitted += limiter.try_acquire(short_key).allowed;
    admitted += limiter.try_acquire(long_key, 2).allowed;
    clock.advance(1ms);
  };
  for (int i = 0; i < warm_up_calls; ++i) call();
  const std::int64_t before = allocations.load();
  for (int i = 0; i < measured_calls; ++i) call();
  const std::int64_t allocated = allocations.load() - before;
  EXPECT_GT(admitted, 0);
  EXPECT_EQ(limiter.storage().size(), 2u);
  return allocated;
}

TEST(InMemoryAllocation, CounterSeesAllocations) {
  const std::int64_t before = allocations.load();
  const std::int64_t bytes_before = bytes_in_use.load();
  auto* p = new std::string(100, 'x');
  EXPECT_GE(allocations.load() - before, 2);
  EXPECT_GE(bytes_in_use.load() - bytes_before, 100);
  delete p;
  EXPECT_EQ(bytes_in_use.load(), bytes_before);
}

TEST(InMemoryAllocation, DecisionsOnExistingKeysAllocateNothing) {
  using ratelimit::fixed_window, ratelimit::leaky_bucket, ratelimit::sliding_window_counter,
      ratelimit::token_bucket;
  EXPECT_EQ(allocations_on_existing_keys<token_bucket<manual_clock>>(1, 5000), 0);
  EXPECT_EQ(allocations_on_existing_keys<leaky_bucket<manual_clock>>(1, 5000), 0);
  EXPECT_EQ(allocations_on_existing_keys<fixed_window<manual_clock>>(1, 5000), 0);
  EXPECT_EQ(allocations_on_existing_keys<sliding_window_counter<manual_clock>>(1, 5000), 0);
}

TEST(InMemoryAllocation, SlidingLogAllocatesNothingOnceItsLogPeaked) {
  // Two periods at a steady 1ms a call make the log as long as it will ever be.
  EXPECT_EQ(allocations_on_existing_keys<ratelimit::sliding_log<manual_clock>>(2000, 5000), 0);
}

template <class Limiter>
void expect_memory_bounded_under_flood() {
  manual_clock clock;
  constexpr std::size_t bound = 1000;
  std::int64_t settled = 0;
  std::int64_t peak = 0;
  {
    Limiter limiter{quota::per_hour(10), clock,
                    in_memory_storage{{.max_keys = bound, .shards = 4}}};
    const std::int64_t empty = bytes_in_use.load();
    for (int i = 0; i < 20'000; ++i) {
      // Three requests give a sliding log key a log of its own to hold.
      for (int request = 0; request < 3; ++request) {
        ASSERT_TRUE(limiter.try_acquire(numbered("flood", i)));
        clock.advance(1ns);
      }
      if (i == 3'000) settled = bytes_in_use.load() - empty;
      if (i > 3'000) peak = std::max(peak, bytes_in_use.load() - empty);
    }
    EXPECT_EQ(limiter.storage().size(), bound);
  }
  EXPECT_GT(settled, 0);
  // Past the first keys, the flood only recycles what the bound already holds.
  EXPECT_LE(peak, settled + settled / 10);
  EXPECT_LE(peak, static_cast<std::int64_t>(bound) * 512);
}

TEST(InMemoryAllocation, MemoryStaysBoundedUnderAFloodOfUniqueKeys) {
  expect_memory_bounded_under_flood<ratelimit::token_bucket<manual_clock>>();
  expect_memory_bounded_under_flood<ratelimit::sliding_log<manual_clock>>();
}

template <class Limiter>
void expect_memory_back_after_expiry() {
  manual_clock clock;
  Limiter limiter{quota::per_second(10), clock,
                  in_memory_storage{{.max_keys = 1 << 20, .shards = 4}}};
  const std::int64_t empty = bytes_in_use.load();
  for (int i = 0; i < 20'000; ++i) ASSERT_TRUE(limiter.try_acquire(numbered("key", i)));
  const std::int64_t full = bytes_in_use.load() - empty;
  EXPECT_EQ(limiter.storage().size(), 20'000u);
  // Every key is fresh again by then; a tenth are used once more and kept.
  clock.advance(1500ms);
  for (int i = 0; i < 20'000; i += 10) ASSERT_TRUE(limiter.try_acquire(numbered("key", i)));
  // Tell every shard the time (each decides on "probe" keys it does not store), then sweep.
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(limiter.try_acquire(numbered("probe", i), 11));
  limiter.storage().sweep();
  EXPECT_EQ(limiter.storage().size(), 2'000u);
  EXPECT_LE(bytes_in_use.load() - empty, full / 4) << "held " << full << " bytes for 20000 keys";

  clock.advance(1h);
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(limiter.try_acquire(numbered("probe", i), 11));
  limiter.storage().sweep();
  EXPECT_EQ(limiter.storage().size(), 0u);
  EXPECT_LE(bytes_in_use.load() - empty, full / 100);
}

TEST(InMemoryAllocation, MemoryComesBackAfterKeysExpire) {
  expect_memory_back_after_expiry<ratelimit::token_bucket<manual_clock>>();
  expect_memory_back_after_expiry<ratelimit::fixed_window<manual_clock>>();
  expect_memory_back_after_expiry<ratelimit::sliding_log<manual_clock>>();
}

TEST(InMemoryAllocation, KeyTableCompactsItsEntries) {
  using table = ratelimit::detail::key_table<std::int64_t>;
  const std::int64_t empty = bytes_in_use.load();
  table t;
  t.configure(1 << 20, 5);
  for (int i = 0; i < 50'000; ++i) {
    const std::string key = numbered("entry", i);
    table::entry* e = t.insert(ratelimit::detail::key_probe{key, t.hash(key)}, 0);
    ASSERT_NE(e, nullptr);
    e->expires_at = i % 10 == 0 ? 100 : 1;
  }
  const std::int64_t full = bytes_in_use.load() - empty;
  EXPECT_EQ(t.sweep(1), 45'000u);
  EXPECT_LE(bytes_in_use.load() - empty, full / 4);
  EXPECT_EQ(t.sweep(100), 5'000u);
  EXPECT_LE(bytes_in_use.load() - empty, full / 100);
}

TEST(InMemoryAllocation, AKeyThatCannotBeStoredIsRejected) {
  manual_clock clock;
  ratelimit::token_bucket<manual_clock> limiter{quota::per_second(5), clock};
  const std::string long_key(100, 'k');
  out_of_memory = true;
  const ratelimit::decision first = limiter.try_acquire("short");
  const ratelimit::decision second = limiter.try_acquire(long_key);
  out_of_memory = false;
  // Admitting a key that is not recorded would admit it again and again.
  EXPECT_FALSE(first.allowed);
  EXPECT_FALSE(second.allowed);
  EXPECT_GT(second.retry_after, 0ns);
  EXPECT_EQ(limiter.storage().size(), 0u);
  EXPECT_TRUE(limiter.try_acquire("short"));
  EXPECT_TRUE(limiter.try_acquire(long_key));
  EXPECT_EQ(limiter.storage().size(), 2u);
}

}  // namespace
