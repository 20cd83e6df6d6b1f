// A storage written outside the library: a std::map behind a mutex that logs every
// decision. Any type with `decide<Algorithm>(key, quota, now, cost)` is a storage; this
// one shows what the contract asks of it (see <ratelimit/storage.hpp>).
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <ratelimit/ratelimit.hpp>
#include <string>
#include <string_view>

template <ratelimit::algorithm Algorithm>
class logging_map_storage {
 public:
  // The storage is given the algorithm as a type; this one serves exactly one.
  template <std::same_as<Algorithm>>
  ratelimit::decision decide(std::string_view key, const ratelimit::quota& q, std::int64_t now,
                             std::int64_t cost) {
    // The whole read-modify-write under one lock: that is what makes a decision atomic.
    std::lock_guard lock{shared_->mutex};
    auto [it, added] = shared_->states.try_emplace(std::string{key}, Algorithm::fresh(q, now));
    const ratelimit::decision d = Algorithm::step(it->second, q, now, cost);
    std::printf("  [storage] %-6s cost %lld at %lld ns: %s, %lld left%s\n", it->first.c_str(),
                static_cast<long long>(cost), static_cast<long long>(now),
                d.allowed ? "allowed" : "rejected", static_cast<long long>(d.remaining),
                added ? " (new key)" : "");
    return d;
  }

  std::size_t size() const {
    std::lock_guard lock{shared_->mutex};
    return shared_->states.size();
  }

 private:
  // Copies of the storage share one map, as the library's storages do.
  struct shared {
    std::mutex mutex;
    std::map<std::string, typename Algorithm::state, std::less<>> states;
  };
  std::shared_ptr<shared> shared_ = std::make_shared<shared>();
};

int main() {
  using namespace std::chrono_literals;
  using algorithm = ratelimit::algorithms::sliding_window_counter;
  static_assert(ratelimit::storage_for<logging_map_storage<algorithm>, algorithm>);

  ratelimit::manual_clock clock;
  logging_map_storage<algorithm> storage;
  ratelimit::sliding_window_counter limiter{ratelimit::quota::per_minute(3), clock, storage};

  for (int i = 0; i < 4; ++i) (void)limiter.try_acquire("alice");
  clock.advance(90s);
  // Half-way through the next minute, half of the last one still counts: 1.5 + 0 + 1 <= 3.
  (void)limiter.try_acquire("alice");
  (void)limiter.try_acquire("bob");
  std::printf("keys stored: %zu\n", storage.size());
  return storage.size() == 2 ? 0 : 1;
}
