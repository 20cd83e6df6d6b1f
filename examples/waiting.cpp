// A crawler must not fetch from one host more than 20 times a second. Rather than being
// rejected and retrying, each fetch waits for its turn: acquire blocks until the request
// may go, up to a longest wait, and gives up at once when the wait would be longer. An
// event loop, which must not block, reserves instead and schedules the request.
#include <chrono>
#include <cstdio>
#include <ratelimit/ratelimit.hpp>

int main() {
  using namespace std::chrono_literals;
  using clock = std::chrono::steady_clock;
  ratelimit::token_bucket per_host{ratelimit::quota::per_second(20).with_burst(1)};

  const auto start = clock::now();
  const auto elapsed_ms = [&] {
    return std::chrono::duration<double, std::milli>(clock::now() - start).count();
  };
  for (int page = 1; page <= 6; ++page) {
    // Up to 1 s of wait, and up to 5 ms of jitter so that crawler threads released
    // together do not all hit the host in the same instant.
    if (const auto d = per_host.acquire("example.org", 1, 1s, 5ms)) {
      std::printf("page %d fetched at %6.1f ms\n", page, elapsed_ms());
    }
  }

  // A caller that gives a fetch at most 10 ms learns at once that this one would take
  // longer, without waiting: the next token is ~50 ms away.
  const auto hurried = per_host.acquire("example.org", 1, 10ms);
  std::printf("within 10 ms: %s; the same call succeeds in %lld ms\n",
              hurried ? "fetched" : "rejected at once",
              static_cast<long long>(
                  std::chrono::ceil<std::chrono::milliseconds>(hurried.retry_after).count()));

  // An event loop books the request now and runs it on a timer; if the user goes away
  // first, cancel gives the token back for the next one.
  auto booked = per_host.reserve("example.org", 1, 1s);
  std::printf("reserved: run it in %.1f ms\n",
              std::chrono::duration<double, std::milli>(booked.delay()).count());
  per_host.cancel("example.org", booked);
  const auto next = per_host.reserve("example.org", 1, 1s);
  std::printf("after cancel, the next one runs in %.1f ms\n",
              std::chrono::duration<double, std::milli>(next.delay()).count());
}
