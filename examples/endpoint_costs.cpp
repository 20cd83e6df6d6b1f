// Requests are not equal: a report costs the backend a hundred reads. Each endpoint has a
// cost, and every user a budget of 500 units a minute, whatever they spend it on: once
// it runs low, reads still pass while reports wait.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ratelimit/ratelimit.hpp>
#include <string_view>

namespace {

struct endpoint {
  std::string_view route;
  std::int64_t cost;
};

constexpr endpoint endpoints[] = {
    {"GET /items", 1},
    {"POST /items", 5},
    {"GET /reports/yearly", 100},
};

std::int64_t cost_of(std::string_view route) {
  for (const endpoint& e : endpoints) {
    if (e.route == route) return e.cost;
  }
  return 1;  // an endpoint nobody priced costs what a read does
}

}  // namespace

int main() {
  ratelimit::sliding_window_counter budget{ratelimit::quota::per_minute(500)};

  const std::string_view session[] = {"GET /reports/yearly", "GET /items", "POST /items",
                                      "GET /reports/yearly"};
  for (int round = 0; round < 3; ++round) {
    for (const std::string_view route : session) {
      const ratelimit::decision d = budget.try_acquire("user:42", cost_of(route));
      if (d) {
        std::printf("%-20s cost %3lld: allowed, %lld units left\n", route.data(),
                    static_cast<long long>(cost_of(route)), static_cast<long long>(d.remaining));
      } else {
        const auto wait = std::chrono::ceil<std::chrono::seconds>(d.retry_after);
        std::printf("%-20s cost %3lld: rejected, %lld units left, retry in %lld s\n", route.data(),
                    static_cast<long long>(cost_of(route)), static_cast<long long>(d.remaining),
                    static_cast<long long>(wait.count()));
      }
    }
  }
}
