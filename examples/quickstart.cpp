// Ten requests a second per client, bursts of up to five.
#include <chrono>
#include <cstdio>
#include <ratelimit/ratelimit.hpp>

int main() {
  using namespace std::chrono_literals;
  ratelimit::token_bucket limiter{ratelimit::quota::per_second(10).with_burst(5)};

  for (int request = 1; request <= 7; ++request) {
    const ratelimit::decision d = limiter.try_acquire("client-42");
    if (d) {
      std::printf("request %d: allowed, %lld left\n", request, static_cast<long long>(d.remaining));
    } else {
      const auto wait = std::chrono::ceil<std::chrono::milliseconds>(d.retry_after);
      std::printf("request %d: rejected, retry in %lld ms\n", request,
                  static_cast<long long>(wait.count()));
    }
  }

  // A request of cost 3, for another client: costs count against its own bucket.
  const auto report = limiter.try_acquire("client-7", 3);
  std::printf("client-7 report (cost 3): %s, %lld left\n", report ? "allowed" : "rejected",
              static_cast<long long>(report.remaining));
}
