#pragma once

#include <atomic>
#include <thread>

namespace ratelimit::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/// A lock for critical sections of a few dozen nanoseconds, such as one decision of a
/// shard: one atomic exchange to take it and a store to give it back, where
/// std::mutex makes two library calls. Waiters spin reading, not writing, so the lock's
/// cache line is not bounced between them, and yield the CPU after a while so that a
/// preempted holder can run.
class spin_lock {
 public:
  void lock() noexcept {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      for (int spins = 0; locked_.load(std::memory_order_relaxed); ++spins) {
        if (spins < 128) {
          cpu_relax();
        } else {
          std::this_thread::yield();
        }
      }
    }
  }

  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }

  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

}  // namespace ratelimit::detail
