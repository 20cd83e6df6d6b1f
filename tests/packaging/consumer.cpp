// What a user's first program does; exits non-zero if the library misbehaves.
#include <ratelimit/ratelimit.hpp>

int main() {
  ratelimit::manual_clock clock;
  ratelimit::token_bucket limiter{ratelimit::quota::per_second(2), clock};
  const bool first = limiter.try_acquire("user").allowed;
  const bool second = limiter.try_acquire("user").allowed;
  const bool third = limiter.try_acquire("user").allowed;
  return first && second && !third ? 0 : 1;
}
