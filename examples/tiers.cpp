// Free, pro and enterprise users share one limiter: each API key's plan names its quota,
// read from configuration as text. An upgrade takes effect on the next request, and the
// key keeps what it already used.
#include <cstdio>
#include <map>
#include <ratelimit/ratelimit.hpp>
#include <string>
#include <string_view>

int main() {
  // As a configuration file would have them; a typo fails here, naming the text.
  const std::map<std::string, ratelimit::quota, std::less<>> plans{
      {"free", ratelimit::parse_quota("5/min")},
      {"pro", ratelimit::parse_quota("60/min burst 20")},
      {"enterprise", ratelimit::parse_quota("1000/min burst 200")},
  };
  std::map<std::string, std::string, std::less<>> plan_of_key{
      {"key-alice", "free"}, {"key-bob", "pro"}, {"key-carol", "enterprise"}};

  // Runs on every decision: a lookup in memory, not a database query.
  const auto quota_of = [&](std::string_view api_key) -> const ratelimit::quota& {
    const auto plan = plan_of_key.find(api_key);
    return plans.at(plan != plan_of_key.end() ? plan->second : "free");
  };
  ratelimit::tiered_limiter limiter{ratelimit::token_bucket{plans.at("free")}, quota_of};

  const auto burst = [&](std::string_view api_key, int requests) {
    int allowed = 0;
    ratelimit::decision last;
    for (int i = 0; i < requests; ++i) {
      last = limiter.try_acquire(api_key);
      allowed += last.allowed ? 1 : 0;
    }
    std::printf("%-10s %-10s %2d of %2d allowed, %3lld left of %lld\n", api_key.data(),
                plan_of_key[std::string(api_key)].c_str(), allowed, requests,
                static_cast<long long>(last.remaining), static_cast<long long>(last.limit));
  };
  burst("key-alice", 8);
  burst("key-bob", 25);
  burst("key-carol", 25);

  // Alice upgrades: her next requests are decided under pro, the 5 she used still used.
  plan_of_key["key-alice"] = "pro";
  burst("key-alice", 20);
}
