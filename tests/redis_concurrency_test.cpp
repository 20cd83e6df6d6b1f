// redis_concurrency_limiter against real redis-server processes: at most N leases per key
// across limiters and processes; a holder killed without releasing gives its slots back
// when its leases end, and not before; what each failure policy makes of a server that is
// down; every key with a TTL.

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <latch>
#include <mutex>
#include <optional>
#include <ratelimit/clock.hpp>
#include <ratelimit/redis.hpp>
#include <ratelimit/storage/redis/concurrency.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "support/child_process.hpp"
#include "support/redis_server.hpp"
#include "support/shared_redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using ratelimit::failure_policy;
using ratelimit::manual_clock;
using ratelimit::redis_options;
using ratelimit::time_source;
using ratelimit_test::child_process;
using ratelimit_test::redis_reply;
using ratelimit_test::redis_server;
using std::chrono::nanoseconds;
using steady = std::chrono::steady_clock;

using limiter = ratelimit::redis_concurrency_limiter<manual_clock>;
using permit = limiter::permit;

static_assert(!std::is_copy_constructible_v<permit> &&
              std::is_nothrow_move_constructible_v<permit>);
static_assert(std::is_same_v<decltype(ratelimit::redis_concurrency_limiter{1, 1s}),
                             ratelimit::redis_concurrency_limiter<std::chrono::system_clock>>);

auto* const environment = ratelimit_test::shared_redis_server::install();

redis_server& server() { return environment->server(); }

std::string test_prefix() {
  const auto* info = testing::UnitTest::GetInstance()->current_test_info();
  return std::string{"rl-cc:"} + info->test_suite_name() + "." + info->name() + ":";
}

/// Client time in microseconds; a generous timeout, and fail_closed: a call Redis did not
/// decide shows as a refused, degraded permit, which every test checks for.
redis_options client_time(std::string prefix, int port = server().port()) {
  return {.port = port,
          .timeout = 5s,
          .key_prefix = std::move(prefix),
          .on_failure = failure_policy::fail_closed,
          .time = time_source::client};
}

redis_options server_time(std::string prefix, int port = server().port()) {
  redis_options o = client_time(std::move(prefix), port);
  o.time = time_source::server;
  return o;
}

/// An instant of client time, in microseconds since 1970 like system_clock's: 2023-11-14.
constexpr manual_clock::time_point t0{1'700'000'000'000'000us};

std::string describe(const permit& p) {
  return std::string{p ? "granted" : "refused"} + (p.degraded() ? ", degraded" : "");
}

/// Values a child process sends its parent while it keeps running, which child_process's
/// result (sent as the child returns) can't do. Create it before forking.
class report_pipe {
 public:
  report_pipe() {
    if (::pipe2(fds_, O_CLOEXEC) != 0) throw std::system_error(errno, std::system_category());
  }
  report_pipe(const report_pipe&) = delete;
  report_pipe& operator=(const report_pipe&) = delete;
  ~report_pipe() {
    for (const int fd : fds_) {
      if (fd >= 0) ::close(fd);
    }
  }

  /// In the child.
  void send(std::int64_t value) {
    if (::write(fds_[1], &value, sizeof value) != sizeof value) {
      throw std::system_error(errno, std::system_category(), "report_pipe::send");
    }
  }

  /// In the parent: the next value, or nullopt if none came within `timeout`.
  std::optional<std::int64_t> receive(std::chrono::milliseconds timeout = 30s) {
    std::int64_t value = 0;
    pollfd p{fds_[0], POLLIN, 0};
    const int polled = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (polled <= 0 || ::read(fds_[0], &value, sizeof value) != sizeof value) return std::nullopt;
    return value;
  }

 private:
  int fds_[2] = {-1, -1};
};

/// Kills a child that is still running, and checks that it died of the kill: not of
/// anything it did, and not by returning (which would have released its permits).
void kill_and_reap(child_process& child) {
  ASSERT_EQ(::kill(child.pid(), SIGKILL), 0);
  try {
    child.result(5s);
    ADD_FAILURE() << "the child returned a result instead of dying";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string{e.what()}, "child_process: the child died of signal 9");
  }
}

/// The child's part of the kill tests: acquires `count` permits on "k", reports how many it
/// got (and, for server time, the steady_clock instants around the acquisitions), then
/// holds them until it is killed.
[[noreturn]] void acquire_and_hold(report_pipe& report, const redis_options& o, nanoseconds lease,
                                   std::int64_t count) {
  manual_clock clock;
  clock.set(t0);
  limiter holder{count, lease, o, clock};
  std::vector<permit> held;
  const auto before = steady::now();
  for (std::int64_t i = 0; i < count; ++i) {
    permit p = holder.try_acquire("k");
    if (p) held.push_back(std::move(p));
  }
  const auto after = steady::now();
  report.send(static_cast<std::int64_t>(held.size()));
  report.send(before.time_since_epoch().count());
  report.send(after.time_since_epoch().count());
  for (;;) ::pause();
}

// ---------------------------------------------------------------------------------------
// A holder that dies. First in the file: the children are forked before any test starts a
// thread.

TEST(RedisConcurrencyKilledHolder, ItsSlotsComeBackAtTheEndOfTheLeaseAndNotBefore) {
  constexpr std::int64_t maximum = 3;
  constexpr nanoseconds lease = 30s;
  const redis_options o = client_time(test_prefix());
  report_pipe report;
  child_process child{[&]() -> std::int64_t { acquire_and_hold(report, o, lease, maximum); }};
  ASSERT_EQ(report.receive(), maximum) << "the child did not get its permits";
  ASSERT_TRUE(report.receive() && report.receive());
  kill_and_reap(child);

  manual_clock clock;
  limiter parent{maximum, lease, o, clock};
  // The child's leases began at t0 (its clock) and end at t0 + lease.
  clock.set(t0);
  EXPECT_EQ(parent.in_flight("k"), maximum);
  permit early = parent.try_acquire("k");
  EXPECT_FALSE(early) << describe(early);
  clock.set(t0 + lease - 1us);
  permit last_microsecond = parent.try_acquire("k");
  EXPECT_FALSE(last_microsecond) << describe(last_microsecond);
  EXPECT_FALSE(last_microsecond.degraded());
  EXPECT_EQ(parent.in_flight("k"), maximum);

  clock.set(t0 + lease);
  EXPECT_EQ(parent.in_flight("k"), 0);
  std::vector<permit> back;
  for (std::int64_t i = 0; i < maximum; ++i) {
    back.push_back(parent.try_acquire("k"));
    EXPECT_TRUE(back.back() && !back.back().degraded()) << i << ": " << describe(back.back());
  }
  permit one_more = parent.try_acquire("k");
  EXPECT_FALSE(one_more) << describe(one_more);
  // The key carries a TTL: one lease plus the client-time slack (a minute by default).
  const auto ttls = server().key_ttls(o.key_prefix + "*");
  ASSERT_EQ(ttls.size(), 1u);
  EXPECT_GT(ttls.begin()->second, 0);
  EXPECT_LE(ttls.begin()->second, 30'000 + 60'000);
}

TEST(RedisConcurrencyKilledHolder, WithServerTimeItsSlotsComeBackWithinTheLeaseInRealTime) {
  constexpr std::int64_t maximum = 2;
  constexpr nanoseconds lease = 300ms;
  const redis_options o = server_time(test_prefix());
  report_pipe report;
  child_process child{[&]() -> std::int64_t { acquire_and_hold(report, o, lease, maximum); }};
  ASSERT_EQ(report.receive(), maximum) << "the child did not get its permits";
  const auto sent = report.receive();
  const auto received = report.receive();
  ASSERT_TRUE(sent && received);
  // steady_clock is CLOCK_MONOTONIC, one clock for every process of the machine.
  const steady::time_point first_sent{steady::duration{*sent}};
  const steady::time_point last_received{steady::duration{*received}};
  kill_and_reap(child);

  limiter parent{maximum, lease, o};
  std::optional<steady::time_point> granted_at;
  std::int64_t refusals = 0;
  while (!granted_at && steady::now() - first_sent < lease + 5s) {
    permit p = parent.try_acquire("k");
    ASSERT_FALSE(p.degraded());
    if (p) {
      granted_at = steady::now();
    } else {
      ++refusals;
      std::this_thread::sleep_for(1ms);
    }
  }
  ASSERT_TRUE(granted_at.has_value()) << "no slot came back within 5 s of the lease's end";
  // Not before: every lease began (on the server's clock) after the child sent its first
  // request. TIME and CLOCK_MONOTONIC advance alike (the kernel slews both); TIME counts
  // whole microseconds, so a lease may look 1us short.
  EXPECT_GE(*granted_at - first_sent, lease - 1us);
  // Within: once the first lease has ended, the next poll gets its slot.
  EXPECT_LE(*granted_at - last_received, lease + 100ms);
  EXPECT_GT(refusals, 0);
  std::printf("[  lease   ] slot back %.3f ms after the child's first request (lease %lld ms)\n",
              static_cast<double>((*granted_at - first_sent).count()) / 1e6,
              static_cast<long long>(lease / 1ms));
}

// ---------------------------------------------------------------------------------------
// Leases

TEST(RedisConcurrency, TwoLimitersGrantExactlyTheMaximumBetweenThem) {
  // Two app servers: a limiter, a connection pool and a clock each.
  constexpr std::int64_t maximum = 5;
  manual_clock clock_a;
  manual_clock clock_b;
  clock_a.set(t0);
  clock_b.set(t0);
  limiter a{maximum, 60s, client_time(test_prefix()), clock_a};
  limiter b{maximum, 60s, client_time(test_prefix()), clock_b};
  std::vector<permit> held;
  std::int64_t granted = 0;
  for (int i = 0; i < 20; ++i) {
    permit p = (i % 2 == 0 ? a : b).try_acquire("shared");
    EXPECT_FALSE(p.degraded()) << i;
    if (p) {
      ++granted;
      held.push_back(std::move(p));
    }
  }
  EXPECT_EQ(granted, maximum);
  EXPECT_EQ(a.in_flight("shared"), maximum);
  EXPECT_EQ(b.in_flight("shared"), maximum);

  // A slot released on one server is the other's to take, once.
  held.front().release();
  EXPECT_EQ(a.in_flight("shared"), maximum - 1);
  permit taken = b.try_acquire("shared");
  EXPECT_TRUE(taken) << describe(taken);
  EXPECT_FALSE(a.try_acquire("shared"));
}

TEST(RedisConcurrency, WithServerTimeGrantsTheMaximumAndReleaseFreesASlot) {
  limiter l{2, 60s, server_time(test_prefix())};
  permit a = l.try_acquire("k");
  permit b = l.try_acquire("k");
  EXPECT_TRUE(a && b) << describe(a) << ", " << describe(b);
  permit c = l.try_acquire("k");
  EXPECT_FALSE(c) << describe(c);
  EXPECT_FALSE(c.degraded());
  a.release();
  EXPECT_FALSE(a);
  EXPECT_EQ(l.in_flight("k"), 1);
  permit d = l.try_acquire("k");
  EXPECT_TRUE(d) << describe(d);
}

TEST(RedisConcurrency, APermitLeavingScopeReleasesItsLease) {
  manual_clock clock;
  clock.set(t0);
  limiter l{1, 60s, client_time(test_prefix()), clock};
  {
    const permit p = l.try_acquire("k");
    ASSERT_TRUE(p) << describe(p);
    EXPECT_EQ(l.in_flight("k"), 1);
  }
  EXPECT_EQ(l.in_flight("k"), 0);
  EXPECT_TRUE(l.try_acquire("k"));
}

TEST(RedisConcurrency, ReleasingTwiceOrAMovedFromPermitReleasesNothing) {
  manual_clock clock;
  clock.set(t0);
  limiter l{3, 60s, client_time(test_prefix()), clock};
  permit a = l.try_acquire("k");
  permit b = l.try_acquire("k");
  ASSERT_TRUE(a && b);
  a.release();
  a.release();
  EXPECT_EQ(l.in_flight("k"), 1);

  permit moved{std::move(b)};
  EXPECT_FALSE(b);  // NOLINT(bugprone-use-after-move): the contract under test
  b.release();      // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(l.in_flight("k"), 1);
  permit assigned;
  assigned = std::move(moved);
  EXPECT_EQ(l.in_flight("k"), 1);
  assigned = l.try_acquire("other");  // assigning over a held permit releases its lease
  EXPECT_EQ(l.in_flight("k"), 0);
  EXPECT_EQ(l.in_flight("other"), 1);
}

TEST(RedisConcurrency, AReleaseAfterTheLeaseEndedFreesNoOtherHoldersSlot) {
  manual_clock clock;
  clock.set(t0);
  limiter l{1, 10s, client_time(test_prefix()), clock};
  permit late = l.try_acquire("k");
  ASSERT_TRUE(late);
  clock.advance(10s);  // its lease is over: the slot goes to the next request
  permit next = l.try_acquire("k");
  ASSERT_TRUE(next) << describe(next);
  late.release();  // removes its own lease, long gone, not `next`'s
  EXPECT_EQ(l.in_flight("k"), 1);
  EXPECT_FALSE(l.try_acquire("k"));
}

TEST(RedisConcurrency, RenewExtendsTheLeaseFromNow) {
  manual_clock clock;
  clock.set(t0);
  limiter l{1, 10s, client_time(test_prefix()), clock};
  permit p = l.try_acquire("k");
  ASSERT_TRUE(p);
  clock.set(t0 + 9s);
  EXPECT_TRUE(p.renew());  // now ends at t0 + 19s
  clock.set(t0 + 19s - 1us);
  EXPECT_FALSE(l.try_acquire("k"));
  EXPECT_TRUE(p);
  clock.set(t0 + 19s);
  EXPECT_EQ(l.in_flight("k"), 0);
  EXPECT_FALSE(p.renew()) << "a lease that ended stays ended";
  permit next = l.try_acquire("k");
  EXPECT_TRUE(next) << describe(next);
  EXPECT_FALSE(p.renew()) << "its slot is someone else's";
  EXPECT_EQ(l.in_flight("k"), 1);
  permit empty;
  EXPECT_FALSE(empty.renew());
}

TEST(RedisConcurrency, InFlightCountsOnlyRunningLeases) {
  manual_clock clock;
  clock.set(t0);
  limiter l{4, 10s, client_time(test_prefix()), clock};
  EXPECT_EQ(l.in_flight("k"), 0);
  const permit a = l.try_acquire("k");
  clock.advance(5s);
  const permit b = l.try_acquire("k");
  EXPECT_EQ(l.in_flight("k"), 2);
  clock.advance(5s - 1us);
  EXPECT_EQ(l.in_flight("k"), 2);
  clock.advance(1us);
  EXPECT_EQ(l.in_flight("k"), 1);
  clock.advance(5s);
  EXPECT_EQ(l.in_flight("k"), 0);
}

TEST(RedisConcurrency, KeysAreIndependent) {
  manual_clock clock;
  clock.set(t0);
  limiter l{1, 60s, client_time(test_prefix()), clock};
  const permit a = l.try_acquire("alice");
  EXPECT_FALSE(l.try_acquire("alice"));
  const permit b = l.try_acquire("bob");
  EXPECT_TRUE(b) << describe(b);
}

TEST(RedisConcurrency, APermitOutlivesItsLimiter) {
  manual_clock clock;
  clock.set(t0);
  const redis_options o = client_time(test_prefix());
  permit p;
  {
    limiter gone{1, 60s, o, clock};
    p = gone.try_acquire("k");
    ASSERT_TRUE(p);
  }
  limiter l{1, 60s, o, clock};
  EXPECT_EQ(l.in_flight("k"), 1);
  p.release();  // through the pool the permit still shares
  EXPECT_EQ(l.in_flight("k"), 0);
}

TEST(RedisConcurrency, KeysAreNamedPrefixTagCcKeyWhateverTheirBytes) {
  manual_clock clock;
  clock.set(t0);
  const std::string prefix = test_prefix();
  limiter l{1, 60s, client_time(prefix), clock};
  const std::vector<std::string> keys = {"", "{x}", std::string{"a\0b\r\n", 5},
                                         std::string(1024, 'k')};
  std::vector<permit> held;
  for (const std::string& key : keys) {
    held.push_back(l.try_acquire(key));
    ASSERT_TRUE(held.back()) << "key of " << key.size() << " bytes";
    std::string name;
    ratelimit::detail::redis::key_name(name, prefix, "cc", 1, key);
    EXPECT_EQ(server().command("TYPE", name), redis_reply::of_status("zset"));
  }
  EXPECT_EQ(server().key_ttls(prefix + "*").size(), keys.size());
}

TEST(RedisConcurrency, EveryKeyHasATtlOfOneLeaseAndNoneOutlivesItsLeases) {
  const std::string prefix = test_prefix();
  limiter l{3, 20s, server_time(prefix)};
  std::vector<permit> held;
  for (const char* key : {"a", "b", "c"}) {
    for (int i = 0; i < 2; ++i) held.push_back(l.try_acquire(key));
  }
  const auto ttls = server().key_ttls(prefix + "*");
  EXPECT_EQ(ttls.size(), 3u);
  for (const auto& [key, ttl] : ttls) {
    EXPECT_GT(ttl, 19'000) << key;
    EXPECT_LE(ttl, 20'001) << key;  // the lease plus a millisecond of rounding
  }
  held.clear();
  EXPECT_TRUE(server().key_ttls(prefix + "*").empty()) << "a key with no lease is no key";
}

TEST(RedisConcurrency, ClientTimeKeysCarryTheClientTtlSlack) {
  const std::string prefix = test_prefix();
  manual_clock clock;
  clock.set(t0);
  redis_options o = client_time(prefix);
  o.client_ttl_slack = 2s;
  limiter l{1, 1500ms, o, clock};
  const permit p = l.try_acquire("k");
  const auto ttls = server().key_ttls(prefix + "*");
  ASSERT_EQ(ttls.size(), 1u);
  EXPECT_GT(ttls.begin()->second, 3'000);
  EXPECT_LE(ttls.begin()->second, 3'500);
}

TEST(RedisConcurrency, ALostScriptIsLoadedAgainAndTheCallDecidedByRedis) {
  manual_clock clock;
  clock.set(t0);
  redis_options o = client_time(test_prefix());
  o.breaker_threshold = 1;  // a lost script must not count as a failure
  limiter l{1, 60s, o, clock};
  permit p = l.try_acquire("k");
  ASSERT_TRUE(p);
  ASSERT_EQ(server().command("SCRIPT", "FLUSH"), redis_reply::of_status("OK"));
  permit refused = l.try_acquire("k");
  EXPECT_FALSE(refused);
  EXPECT_FALSE(refused.degraded());
  ASSERT_EQ(server().command("SCRIPT", "FLUSH"), redis_reply::of_status("OK"));
  p.release();
  EXPECT_EQ(l.in_flight("k"), 0);
  EXPECT_FALSE(l.degraded());
}

TEST(RedisConcurrency, ThreadsOnOneKeyNeverHoldMoreThanTheMaximum) {
  constexpr std::int64_t maximum = 3;
  constexpr int threads = 8;
  manual_clock clock;
  clock.set(t0);
  limiter l{maximum, 60s, client_time(test_prefix()), clock};
  std::atomic<std::int64_t> holding{0};
  std::atomic<std::int64_t> most{0};
  std::atomic<std::int64_t> most_counted{0};  ///< by Redis, while a permit was held
  std::atomic<std::int64_t> granted{0};
  std::atomic<std::int64_t> degraded{0};
  std::latch go{threads};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      go.arrive_and_wait();
      for (int i = 0; i < 100; ++i) {
        permit p = l.try_acquire("shared");
        degraded += p.degraded() ? 1 : 0;
        if (!p) continue;
        ++granted;
        // Counted only between the grant and the release: never more than the slots held.
        const std::int64_t now_holding = ++holding;
        std::int64_t seen = most.load();
        while (now_holding > seen && !most.compare_exchange_weak(seen, now_holding)) {
        }
        // Held for a round trip: every other thread tries meanwhile. Redis, asked, counts
        // no more leases than the maximum either.
        const std::int64_t counted = l.in_flight("shared").value_or(maximum + 100);
        std::int64_t counted_before = most_counted.load();
        while (counted > counted_before &&
               !most_counted.compare_exchange_weak(counted_before, counted)) {
        }
        --holding;  // before the slot is given back
        p.release();
      }
    });
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(degraded.load(), 0);
  EXPECT_LE(most.load(), maximum);
  EXPECT_LE(most_counted.load(), maximum);
  EXPECT_GT(granted.load(), 0);
  EXPECT_EQ(l.in_flight("shared"), 0);
  std::printf("[  threads ] %lld granted, at most %lld held at once\n",
              static_cast<long long>(granted.load()), static_cast<long long>(most.load()));
}

TEST(RedisConcurrency, BadArgumentsThrowNamingTheValue) {
  const auto message = [](auto&& make) -> std::string {
    try {
      make();
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "no exception";
  };
  const redis_options o = server_time("rl-cc-bad:");
  EXPECT_EQ(message([&] { limiter(0, 1s, o); }),
            "ratelimit::redis_concurrency_limiter: max_in_flight must be in [1, 2^53) (got 0)");
  EXPECT_EQ(message([&] { limiter(-3, 1s, o); }),
            "ratelimit::redis_concurrency_limiter: max_in_flight must be in [1, 2^53) (got -3)");
  EXPECT_EQ(message([&] { limiter(1, 0s, o); }),
            "ratelimit::redis_concurrency_limiter: lease must be > 0ns (got 0ns)");
  EXPECT_EQ(message([&] { limiter(1, 1500ns, o); }),
            "ratelimit::redis_concurrency_limiter: lease must be a whole number of 1000ns units "
            "(got 1500ns)");
  EXPECT_EQ(message([&] { limiter(1, nanoseconds{(std::int64_t{1} << 50) * 1000 + 1000}, o); }),
            "ratelimit::redis_concurrency_limiter: lease must be <= 2^50 units of 1000ns (got " +
                std::to_string((std::int64_t{1} << 50) * 1000 + 1000) + "ns)");
  redis_options braces = o;
  braces.key_prefix = "a{b}";
  EXPECT_EQ(message([&] { limiter(1, 1s, braces); }),
            "ratelimit::redis_options: key_prefix must not contain '{' or '}' (got \"a{b}\")");
}

// ---------------------------------------------------------------------------------------
// A server that is down

/// Bounds every call while Redis is away.
constexpr std::chrono::milliseconds timeout{50};
/// The thread that timed out has to be scheduled again, on 2 shared cores, maybe sanitized,
/// maybe beside other tests (ctest -j).
constexpr std::chrono::milliseconds slack{25};
/// Far below the timeout: a call that did not wait for the server.
constexpr std::chrono::milliseconds fast{10};

redis_options down_options(int port, failure_policy policy) {
  return {.port = port,
          .timeout = timeout,
          .key_prefix = "rl-cc-down:",
          .on_failure = policy,
          .time = time_source::client,
          .fallback_instances = 2,
          .probe_interval = 30ms};
}

/// A port where nothing listens: a server's, once stopped.
int dead_port() {
  redis_server gone;
  gone.start();
  gone.stop();
  return gone.port();
}

template <class Body>
nanoseconds timed(Body&& body) {
  const auto started = steady::now();
  body();
  return steady::now() - started;
}

TEST(RedisConcurrencyDown, FailOpenGrantsDegradedPermitsThatReleaseNothing) {
  manual_clock clock;
  limiter l{2, 10s, down_options(dead_port(), failure_policy::fail_open), clock};
  nanoseconds slowest{};
  for (int i = 0; i < 10; ++i) {
    permit p;
    slowest = std::max(slowest, timed([&] { p = l.try_acquire("k"); }));
    EXPECT_TRUE(p && p.degraded()) << describe(p);
    EXPECT_TRUE(p.renew()) << "a degraded permit holds no lease to lose";
    slowest = std::max(slowest, timed([&] { p.release(); }));
    EXPECT_FALSE(p);
  }
  EXPECT_LE(slowest, timeout + slack);
  EXPECT_TRUE(l.degraded());
  EXPECT_FALSE(l.in_flight("k").has_value());
}

TEST(RedisConcurrencyDown, FailClosedRefusesDegraded) {
  manual_clock clock;
  limiter l{2, 10s, down_options(dead_port(), failure_policy::fail_closed), clock};
  for (int i = 0; i < 10; ++i) {
    permit p;
    EXPECT_LE(timed([&] { p = l.try_acquire("k"); }), timeout + slack);
    EXPECT_TRUE(!p && p.degraded()) << describe(p);
  }
}

TEST(RedisConcurrencyDown, LocalFallbackGrantsItsShareInThisProcess) {
  manual_clock clock;
  // max 5 over fallback_instances 2: 2 per key in this process.
  limiter l{5, 10s, down_options(dead_port(), failure_policy::local_fallback), clock};
  permit a = l.try_acquire("k");
  permit b = l.try_acquire("k");
  permit c = l.try_acquire("k");
  EXPECT_TRUE(a && a.degraded() && b && b.degraded()) << describe(a) << ", " << describe(b);
  EXPECT_TRUE(!c && c.degraded()) << describe(c);
  const permit other = l.try_acquire("other");
  EXPECT_TRUE(other && other.degraded());
  a.release();
  permit d = l.try_acquire("k");
  EXPECT_TRUE(d && d.degraded()) << describe(d);
}

TEST(RedisConcurrencyDown, AStalledServerDegradesWithinTheTimeoutThenTheBreakerAnswersFast) {
  redis_server stalled;
  stalled.start();
  manual_clock clock;
  redis_options o = down_options(stalled.port(), failure_policy::fail_closed);
  o.probe_interval = 2s;  // no probe while the test looks at the breaker
  limiter l{2, 10s, o, clock};
  permit held = l.try_acquire("k");
  ASSERT_TRUE(held && !held.degraded()) << describe(held);
  stalled.signal(SIGSTOP);
  for (int i = 0; i < 3; ++i) {
    permit p;
    const nanoseconds took = timed([&] { p = l.try_acquire("k"); });
    EXPECT_TRUE(!p && p.degraded()) << describe(p);
    EXPECT_GE(took, timeout - 1ms) << "gave up before the timeout";
    EXPECT_LE(took, timeout + slack);
  }
  EXPECT_TRUE(l.degraded());
  // The breaker is open: no call waits for the server, releases included (the lease ends
  // on its own).
  EXPECT_LE(timed([&] { held.release(); }), fast);
  permit refused;
  EXPECT_LE(timed([&] { refused = l.try_acquire("k"); }), fast);
  EXPECT_TRUE(!refused && refused.degraded()) << describe(refused);
  stalled.signal(SIGCONT);
}

TEST(RedisConcurrencyDown, ServiceComesBackWhenTheServerDoes) {
  redis_server flaky;
  flaky.start();
  manual_clock clock;
  clock.set(t0);
  limiter l{1, 10s, down_options(flaky.port(), failure_policy::fail_closed), clock};
  flaky.signal(SIGKILL);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(l.try_acquire("k").degraded());
  flaky.restart();
  const auto started = steady::now();
  permit p;
  while (!(p = l.try_acquire("k")) && steady::now() - started < 5s) {
  }
  EXPECT_TRUE(p && !p.degraded()) << describe(p);
  EXPECT_LE(steady::now() - started, 30ms + timeout + slack);
  EXPECT_FALSE(l.try_acquire("k"));
}

}  // namespace
