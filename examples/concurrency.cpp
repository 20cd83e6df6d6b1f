// At most two uploads in flight per user: a permit holds a slot until it leaves scope.
#include <cstdio>
#include <ratelimit/concurrency.hpp>
#include <utility>
#include <vector>

int main() {
  ratelimit::concurrency_limiter uploads{2};
  std::vector<ratelimit::concurrency_limiter::permit> running;

  for (int upload = 1; upload <= 3; ++upload) {
    if (auto permit = uploads.try_acquire("alice")) {
      std::printf("alice upload %d: started\n", upload);
      running.push_back(std::move(permit));  // the upload carries its permit
    } else {
      std::printf("alice upload %d: refused, %lld in flight\n", upload,
                  static_cast<long long>(uploads.in_flight("alice")));
    }
  }

  // Another user has slots of their own.
  const auto bob = uploads.try_acquire("bob");
  std::printf("bob upload: %s\n", bob ? "started" : "refused");

  running.front().release();  // alice's first upload is done
  {
    const auto retry = uploads.try_acquire("alice");
    std::printf("alice upload 3, again: %s\n", retry ? "started" : "refused");
  }  // and done: leaving scope released its slot
  std::printf("alice: %lld in flight\n", static_cast<long long>(uploads.in_flight("alice")));

  // With <ratelimit/redis.hpp>, ratelimit::redis_concurrency_limiter does the same for a
  // fleet; its permits are leases, which a crashed holder cannot keep past their end:
  //   ratelimit::redis_concurrency_limiter fleet{2, std::chrono::minutes{5}, {.host = "10.0.0.5"}};
}
