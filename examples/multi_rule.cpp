// One API, three limits at once: 10 a second per user (bursts of 30), 100 an hour per user,
// and 1000 a minute for the whole service. A request must pass all three, and one that
// fails any of them consumes from none, so a rejected burst never eats a user's hourly
// quota. The endpoint's cost comes with the call: a report costs 20, a read 1.
#include <chrono>
#include <cstdio>
#include <ratelimit/ratelimit.hpp>
#include <string_view>

int main() {
  using ratelimit::quota;
  using ratelimit::rule;
  namespace algorithms = ratelimit::algorithms;

  ratelimit::multi_limiter limits{
      rule<algorithms::token_bucket>{"per-second", quota::per_second(10).with_burst(30)},
      rule<algorithms::sliding_window_counter>{"per-hour", quota::per_hour(100)},
      rule<algorithms::fixed_window>{"service", quota::per_minute(1000),
                                     ratelimit::rule_scope::global}};
  const char* names[] = {"per-second", "per-hour", "service"};

  struct call {
    std::string_view endpoint;
    std::int64_t cost;
  };
  for (const call c : {call{"GET /items", 1}, call{"GET /report", 20}, call{"GET /items", 1},
                       call{"GET /report", 20}, call{"GET /items", 1}}) {
    const auto d = limits.try_acquire("user:42", c.cost);
    const ratelimit::decision headers = d.combined();
    if (d) {
      std::printf("%-12s cost %2lld: allowed, %lld left under \"%s\"\n", c.endpoint.data(),
                  static_cast<long long>(c.cost), static_cast<long long>(headers.remaining),
                  names[d.most_restrictive]);
    } else {
      const auto wait = std::chrono::ceil<std::chrono::milliseconds>(headers.retry_after);
      std::printf("%-12s cost %2lld: rejected by \"%s\", retry in %lld ms\n", c.endpoint.data(),
                  static_cast<long long>(c.cost), names[d.rejected_by],
                  static_cast<long long>(wait.count()));
    }
  }
}
