#pragma once

// Counts the heap a benchmark program holds, for memory_bench and flood_check: replaces the
// global operator new and delete to keep the bytes live on the heap (as malloc_usable_size
// counts them: what malloc hands out, without its 8-byte chunk headers) and their peak, and
// reads the resident set size from /proc/self/statm. Linux and glibc only.
//
// It defines the replacement operators, which a program may define once: include it in the
// one translation unit of a benchmark program, and nowhere else.

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string_view>

namespace heap_counter {

/// Heap bytes live: allocated through operator new and not yet deleted.
inline std::atomic<std::int64_t> live_bytes{0};
/// The most live_bytes has been since it was last set (to live_bytes, before what is measured).
inline std::atomic<std::int64_t> peak_bytes{0};

/// The resident set size, in bytes; 0 if /proc/self/statm can't be read.
inline std::int64_t resident_bytes() {
  long pages = 0;
  long resident = 0;
  if (std::FILE* statm = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(statm, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(statm);
  }
  return static_cast<std::int64_t>(resident) * sysconf(_SC_PAGESIZE);
}

/// Distinct keys "<prefix>0", "<prefix>1", ... formatted in place, so that a flood of them
/// allocates nothing of its own and the heap counted is the storage's.
class numbered_keys {
 public:
  /// `prefix`: at most 4 bytes short of the buffer, room for 20 digits.
  explicit numbered_keys(std::string_view prefix) : prefix_(prefix.size()) {
    std::copy(prefix.begin(), prefix.end(), buffer_);
  }

  /// The i-th key; valid until the next call.
  std::string_view operator[](std::size_t i) noexcept {
    const char* end = std::to_chars(buffer_ + prefix_, buffer_ + sizeof buffer_, i).ptr;
    return {buffer_, static_cast<std::size_t>(end - buffer_)};
  }

 private:
  char buffer_[24] = {};
  std::size_t prefix_;
};

namespace detail {

inline void* counted(void* p) noexcept {
  if (p != nullptr) {
    const auto size = static_cast<std::int64_t>(malloc_usable_size(p));
    const std::int64_t live = live_bytes.fetch_add(size, std::memory_order_relaxed) + size;
    std::int64_t peak = peak_bytes.load(std::memory_order_relaxed);
    while (live > peak &&
           !peak_bytes.compare_exchange_weak(peak, live, std::memory_order_relaxed)) {
    }
  }
  return p;
}

inline void* allocate(std::size_t size) noexcept {
  return counted(std::malloc(size == 0 ? 1 : size));
}

inline void* allocate(std::size_t size, std::align_val_t alignment) noexcept {
  void* p = nullptr;
  const auto align = std::max(static_cast<std::size_t>(alignment), sizeof(void*));
  if (posix_memalign(&p, align, size == 0 ? 1 : size) != 0) return nullptr;
  return counted(p);
}

inline void release(void* p) noexcept {
  if (p == nullptr) return;
  live_bytes.fetch_sub(static_cast<std::int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  std::free(p);
}

inline void* allocate_or_throw(void* p) {
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace detail
}  // namespace heap_counter

// The replacements may not be inline ([replacement.functions]): hence one translation unit.
void* operator new(std::size_t size) {
  return heap_counter::detail::allocate_or_throw(heap_counter::detail::allocate(size));
}
void* operator new[](std::size_t size) {
  return heap_counter::detail::allocate_or_throw(heap_counter::detail::allocate(size));
}
void* operator new(std::size_t size, std::align_val_t a) {
  return heap_counter::detail::allocate_or_throw(heap_counter::detail::allocate(size, a));
}
void* operator new[](std::size_t size, std::align_val_t a) {
  return heap_counter::detail::allocate_or_throw(heap_counter::detail::allocate(size, a));
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return heap_counter::detail::allocate(size);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return heap_counter::detail::allocate(size);
}
void* operator new(std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return heap_counter::detail::allocate(size, a);
}
void* operator new[](std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return heap_counter::detail::allocate(size, a);
}
void operator delete(void* p) noexcept { heap_counter::detail::release(p); }
void operator delete[](void* p) noexcept { heap_counter::detail::release(p); }
void operator delete(void* p, std::size_t) noexcept { heap_counter::detail::release(p); }
void operator delete[](void* p, std::size_t) noexcept { heap_counter::detail::release(p); }
void operator delete(void* p, std::align_val_t) noexcept { heap_counter::detail::release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { heap_counter::detail::release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  heap_counter::detail::release(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  heap_counter::detail::release(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept { heap_counter::detail::release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  heap_counter::detail::release(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  heap_counter::detail::release(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  heap_counter::detail::release(p);
}
