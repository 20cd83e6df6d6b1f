// A user's first Redis program, with no server to talk to: it must decide anyway, by
// its failure policy, without throwing.
#include <ratelimit/redis.hpp>

int main() {
  ratelimit::redis_storage storage{{.port = 1,
                                    .timeout = std::chrono::milliseconds{20},
                                    .on_failure = ratelimit::failure_policy::fail_closed}};
  ratelimit::token_bucket<std::chrono::steady_clock, ratelimit::redis_storage> limiter{
      ratelimit::quota::per_second(2), {}, storage};
  const ratelimit::decision d = limiter.try_acquire("user");
  return !d.allowed && d.degraded ? 0 : 1;
}
