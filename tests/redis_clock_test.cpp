// Time on Redis: the server's own clock stepped back, jumped forward to the end of what the
// scripts can count and beyond it; and the fastest rates, largest bursts and costs the
// scripts can decide, for server time (1us units) and client time at 1ns, each one step
// beyond refused naming the value.
//
// The server's clock is the test's. redis-server runs under Debian's libfaketime (package
// `faketime`), frozen at a whole second that it reads from a file before every clock read;
// the test rewrites the file and checks that Redis's TIME says so before going on. Nothing
// here waits for time to pass: a second of the server's is a rename.
//
// Why libc is preloaded too: Debian's redis-server links the shared libjemalloc, which
// calls clock_gettime() while it initializes; libfaketime intercepts that call, and in
// initializing itself calls malloc, which is jemalloc's, mid-initialization: the server
// hangs before it listens (wolfcw/libfaketime#130). With libc.so.6 preloaded after
// libfaketime, malloc, calloc, realloc, free and malloc_usable_size are glibc's for the
// whole server, and libfaketime's own allocations no longer re-enter jemalloc. Redis then
// still calls jemalloc for mallctl (statistics, MEMORY PURGE) and nallocx (whether an sds
// resize could stay in place, which only skips a realloc when the usable size already
// fits): neither touches a pointer glibc allocated.

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <ratelimit/redis.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "support/algorithm_probe.hpp"
#include "support/algorithm_types.hpp"
#include "support/decision_options.hpp"
#include "support/invalid_argument.hpp"
#include "support/redis_server.hpp"
#include "support/seed.hpp"
#include "support/shared_redis_server.hpp"

namespace {

using namespace std::chrono_literals;
namespace algorithms = ratelimit::algorithms;
using ratelimit::decision;
using ratelimit::failure_policy;
using ratelimit::manual_clock;
using ratelimit::quota;
using ratelimit::redis_options;
using ratelimit::redis_storage;
using ratelimit::time_source;
using ratelimit_test::describe;
using ratelimit_test::invalid_argument_from;
using ratelimit_test::mentions;
using ratelimit_test::redis_reply;
using ratelimit_test::redis_server;
using kind = redis_reply::kind;
using std::chrono::nanoseconds;
using std::chrono::seconds;

using ratelimit_test::memory_limiter;
using ratelimit_test::redis_limiter;

using ratelimit_test::algorithm_name;
using ratelimit_test::all_algorithms;

constexpr std::int64_t two_to_50 = std::int64_t{1} << 50;
constexpr std::int64_t two_to_52 = std::int64_t{1} << 52;
constexpr std::int64_t two_to_53 = std::int64_t{1} << 53;

/// The last whole second whose microseconds since 1970 the scripts take (they need times
/// below 2^52 units): 2112-09-17 23:53:47 UTC. One second later every script fails.
constexpr std::int64_t last_second = two_to_52 / 1'000'000;
static_assert(last_second == 4'503'599'627);

/// Every key the tests write starts with this.
constexpr std::string_view prefix_root = "rl-clock:";

/// libfaketime.so.1 where Debian (`apt-get install faketime`) or a source build puts it.
std::string libfaketime() {
  namespace fs = std::filesystem;
  std::error_code ignored;
  for (const char* root : {"/usr/lib", "/usr/local/lib", "/usr/lib64"}) {
    std::vector<fs::path> candidates = {fs::path{root} / "faketime" / "libfaketime.so.1"};
    for (const fs::directory_entry& entry : fs::directory_iterator{root, ignored}) {
      candidates.push_back(entry.path() / "faketime" / "libfaketime.so.1");
    }
    for (const fs::path& candidate : candidates) {
      if (fs::exists(candidate, ignored)) return candidate.string();
    }
  }
  throw std::runtime_error("libfaketime.so.1 not found: apt-get install faketime");
}

/// One redis-server for the whole binary, its clock frozen at whatever second set_time()
/// last wrote; after the last test, every key left must carry a TTL.
class faked_clock_server : public testing::Environment {
 public:
  /// The server's clock when it starts: 2030-01-01 00:00:00 UTC.
  static constexpr std::int64_t start_seconds = 1'893'456'000;

  void SetUp() override {
    remove_directories_of_dead_processes();
    std::string directory = (std::filesystem::temp_directory_path() /
                             (std::string{directory_stem} + std::to_string(::getpid()) + "-XXXXXX"))
                                .string();
    if (::mkdtemp(directory.data()) == nullptr) {
      throw std::system_error(errno, std::system_category(), "mkdtemp " + directory);
    }
    directory_ = directory;
    file_ = directory_ + "/now";
    write(start_seconds);
    // DEBUG SET-ACTIVE-EXPIRE: a test that jumps the clock past a key's TTL and back
    // pauses the expiry that would otherwise race it.
    server_.emplace(std::vector<std::string>{"--enable-debug-command", "local"}, environment());
    server_->start();
    set_time(start_seconds);
  }

  void TearDown() override {
    if (server_ && server_->running()) {
      ratelimit_test::expect_every_key_expires(*server_, std::string{prefix_root} + "*");
    }
    server_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(directory_, ignored);
  }

  redis_server& server() {
    if (!server_) throw std::logic_error("faked_clock_server: not started");
    return *server_;
  }

  /// Sets the server's clock to `seconds` since 1970, and returns once Redis's TIME says
  /// exactly that; throws if it does not (libfaketime not in effect).
  void set_time(std::int64_t seconds) {
    write(seconds);
    const redis_reply time = server().command("TIME");
    const redis_reply expected = redis_reply::of_array(
        {redis_reply::of_string(std::to_string(seconds)), redis_reply::of_string("0")});
    if (time != expected) {
      throw std::runtime_error("redis-server's TIME is " + testing::PrintToString(time) +
                               " after its clock was set to " + std::to_string(seconds) +
                               ": is libfaketime in effect?");
    }
  }

 private:
  /// libfaketime, frozen at the absolute time (seconds since 1970, FAKETIME_FMT=%s, read as
  /// UTC) in `file_`, read again at every clock read (FAKETIME_NO_CACHE); the monotonic
  /// clock, which Redis times its own events by, stays real. FAKETIME, which would take
  /// precedence over the file, is removed.
  std::vector<std::string> environment() const {
    return {"LD_PRELOAD=" + libfaketime() + ":libc.so.6",
            "FAKETIME",
            "FAKETIME_TIMESTAMP_FILE=" + file_,
            "FAKETIME_FMT=%s",
            "FAKETIME_NO_CACHE=1",
            "FAKETIME_DONT_FAKE_MONOTONIC=1",
            "TZ=UTC"};
  }

  /// Where the clock's file lives: `<stem><pid>-XXXXXX` in the temporary directory.
  static constexpr std::string_view directory_stem = "ratelimit-faketime-";

  /// The file must outlive the server, so a test process that was killed leaves its
  /// directory behind; the next one removes those whose process is gone.
  static void remove_directories_of_dead_processes() {
    namespace fs = std::filesystem;
    std::error_code ignored;
    for (const fs::directory_entry& entry :
         fs::directory_iterator{fs::temp_directory_path(), ignored}) {
      const std::string name = entry.path().filename().string();
      if (!name.starts_with(directory_stem)) continue;
      const std::string rest = name.substr(directory_stem.size());
      const std::size_t dash = rest.find('-');
      if (dash == 0 || dash == std::string::npos || rest.find_first_not_of("0123456789") != dash) {
        continue;
      }
      const pid_t owner = static_cast<pid_t>(std::stol(rest.substr(0, dash)));
      if (::kill(owner, 0) != 0 && errno == ESRCH) fs::remove_all(entry.path(), ignored);
    }
  }

  /// Replaced whole by a rename: libfaketime reads either the old time or the new one.
  void write(std::int64_t seconds) const {
    const std::string next = file_ + ".next";
    {
      std::ofstream out{next, std::ios::trunc};
      out << seconds << '\n';
      if (!out.flush()) throw std::runtime_error("cannot write " + next);
    }
    std::filesystem::rename(next, file_);
  }

  std::string directory_;
  std::string file_;
  std::optional<redis_server> server_;
};

auto* const environment =
    static_cast<faked_clock_server*>(testing::AddGlobalTestEnvironment(new faked_clock_server));

redis_server& server() { return environment->server(); }

/// A prefix no other test uses: `rl-clock:<suite>.<test>:<what>:`.
std::string test_prefix(std::string_view what = "") {
  return ratelimit_test::test_prefix(prefix_root, what);
}

/// Server time (the default): the scripts read Redis's TIME.
redis_options server_time_options(std::string prefix) {
  return ratelimit_test::server_time_options(server().port(), std::move(prefix));
}

redis_options nanosecond_client_options(std::string prefix) {
  return ratelimit_test::client_time_options(server().port(), std::move(prefix));
}

manual_clock::time_point at_second(std::int64_t s) { return manual_clock::time_point{seconds{s}}; }

/// Sets the server's clock and `clocks` (the limiters' own) to second `s`.
template <class... Clocks>
void set_time(std::int64_t s, Clocks&... clocks) {
  environment->set_time(s);
  (clocks.set(at_second(s)), ...);
}

using ratelimit_test::small_in_memory_storage;

nanoseconds up_to_microseconds(nanoseconds d) {
  if (d == nanoseconds::max()) return d;
  return std::chrono::ceil<std::chrono::microseconds>(d);
}

/// Server time counts whole microseconds: at the same whole-microsecond instant, Redis
/// decides as the in-memory storage does, with every wait rounded up to a microsecond
/// (against the caller, never early).
testing::AssertionResult decides_as(decision memory, const decision& redis) {
  memory.retry_after = up_to_microseconds(memory.retry_after);
  memory.reset_after = up_to_microseconds(memory.reset_after);
  memory.delay = up_to_microseconds(memory.delay);
  if (ratelimit_test::same(memory, redis)) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "\n  in memory, waits up to 1us: " << describe(memory)
                                     << "\n  redis:                      " << describe(redis);
}

/// Requests of cost 1 at one instant until one is rejected: a client that takes all it
/// can. The last decision is the rejection. With `all` false, one request.
template <class Limiter>
std::vector<decision> take_all(Limiter& limiter, std::string_view key, std::int64_t capacity,
                               bool all = true) {
  std::vector<decision> out;
  do {
    out.push_back(limiter.try_acquire(key));
  } while (all && out.back().allowed && static_cast<std::int64_t>(out.size()) <= capacity);
  return out;
}

std::int64_t admitted(const std::vector<decision>& decisions) {
  return std::count_if(decisions.begin(), decisions.end(),
                       [](const decision& d) { return d.allowed; });
}

/// What `decisions` (Redis's) would have been from `memory`, the same algorithm in memory
/// with its clock where the server's is: one request each, in order.
template <class A>
testing::AssertionResult same_as_in_memory(const std::vector<decision>& decisions,
                                           memory_limiter<A>& memory, std::string_view key) {
  for (std::size_t i = 0; i < decisions.size(); ++i) {
    if (auto result = decides_as(memory.try_acquire(key), decisions[i]); !result) {
      return result << "\n  (request " << i << " of the instant)";
    }
  }
  return testing::AssertionSuccess();
}

/// 6 a minute (one every 10 s), bursts of 4: with times in whole seconds, every wait is
/// exact in microseconds.
const quota minute_quota = quota::per_minute(6).with_burst(4);

template <class A>
class RedisServerClock : public testing::Test {};
TYPED_TEST_SUITE(RedisServerClock, all_algorithms, algorithm_name);

// ---------------------------------------------------------------------------------------
// The faked clock itself

TEST(RedisFakedClock, TheServersTimeInAScriptAndItsExpiriesFollowTheClockTheTestSets) {
  set_time(faked_clock_server::start_seconds + 3600);
  EXPECT_EQ(
      server().command("EVAL", "local t = redis.call('TIME') return t[1] * 1000000 + t[2]", "0"),
      redis_reply::of_integer((faked_clock_server::start_seconds + 3600) * 1'000'000));
  const std::string key = test_prefix() + "k";
  ASSERT_EQ(server().command("SET", key, "v", "PX", "1500"), redis_reply::of_status("OK"));
  // Frozen: no real time passes for the server.
  EXPECT_EQ(server().command("PTTL", key), redis_reply::of_integer(1500));
  set_time(faked_clock_server::start_seconds + 3601);
  EXPECT_EQ(server().command("PTTL", key), redis_reply::of_integer(500));
  // Back: a TTL lengthens by the step.
  set_time(faked_clock_server::start_seconds + 3500);
  EXPECT_EQ(server().command("PTTL", key), redis_reply::of_integer(101'500));
  set_time(faked_clock_server::start_seconds + 3602);
  EXPECT_EQ(server().command("GET", key), redis_reply{});
}

// ---------------------------------------------------------------------------------------
// A step back

// Three limiters see one client that sends one request every 5 s of real time, and from
// the step on takes all it can every 5 s: the key still holds units when the server's clock
// steps back, so that what the stepped-back instants admit is tested too. The server's
// clock runs with real time, then steps back by D and runs on from there; the in-memory
// `unstepped` limiter's never steps. At every instant Redis has admitted no more than the
// unstepped limiter (no over-admission), and at least what that one had admitted D earlier
// (at most D of extra lockout); the first rejection after the step says to wait at most D
// longer than the unstepped limiter's. Each decision is also the in-memory one with its
// clock stepped as the server's is.
TYPED_TEST(RedisServerClock, AStepBackOfDAdmitsNoMoreAndLocksOutAtMostDLonger) {
  using A = TypeParam;
  const quota q = minute_quota;
  const std::int64_t capacity = ratelimit_test::capacity<A>(q);
  constexpr std::int64_t grid = 5;
  constexpr std::array<std::int64_t, 4> steps = {5, 25, 65, 600};
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const std::int64_t step = steps[i];
    SCOPED_TRACE("a step back of " + std::to_string(step) + " s");
    // A day of its own for each step, off the minute so that windows start mid-run.
    const std::int64_t start =
        faked_clock_server::start_seconds + 86'400 * static_cast<std::int64_t>(i) + 37;
    const std::int64_t stepped_at = start + 20;
    manual_clock real_time, server_time, redis_clock;
    memory_limiter<A> unstepped{q, real_time, small_in_memory_storage()};
    memory_limiter<A> stepped{q, server_time, small_in_memory_storage()};
    redis_limiter<A> redis{q, redis_clock,
                           redis_storage{server_time_options(test_prefix(std::to_string(step)))}};
    std::map<std::int64_t, std::int64_t> unstepped_total;  // by real second, up to it
    std::int64_t total = 0;
    std::int64_t redis_total = 0;
    bool held_back = false;
    for (std::int64_t at = start; at <= stepped_at + step + 180; at += grid) {
      SCOPED_TRACE("real second " + std::to_string(at - start));
      const std::int64_t server_at = at < stepped_at ? at : at - step;
      real_time.set(at_second(at));
      set_time(server_at, server_time, redis_clock);

      const bool all = at >= stepped_at;
      const std::vector<decision> expected = take_all(unstepped, "k", capacity, all);
      total += admitted(expected);
      unstepped_total[at] = total;
      const std::vector<decision> got = take_all(redis, "k", capacity, all);
      EXPECT_TRUE(same_as_in_memory(got, stepped, "k"));
      redis_total += admitted(got);

      EXPECT_LE(redis_total, total) << "over-admission";
      const auto before = unstepped_total.upper_bound(at - step);
      const std::int64_t behind = before == unstepped_total.begin() ? 0 : std::prev(before)->second;
      EXPECT_GE(redis_total, behind) << "locked out for longer than the step";
      held_back = held_back || redis_total < total;
      if (at == stepped_at) {
        EXPECT_LE(got.back().retry_after, expected.back().retry_after + seconds{step})
            << "redis " << describe(got.back()) << ", unstepped " << describe(expected.back());
      }
    }
    // Else the server's clock did not step, and nothing above was tested.
    EXPECT_TRUE(held_back);
  }
}

// ---------------------------------------------------------------------------------------
// Forward to the end of the scripts' time, and back

// From 2030 to three and a half minutes before the last second the scripts take: the key's
// TTL ran out with the jump, and it gets one fresh quota, no more. Then, after a minute at
// the normal rate, back 82 years to 2030: nothing more is admitted, the wait is at most
// the step longer than without it, and the key is admitted again when it ends.
TYPED_TEST(RedisServerClock, AJumpToTheLastSecondTheScriptsTakeGivesAtMostOneFreshQuota) {
  using A = TypeParam;
  const quota q = minute_quota;
  const std::int64_t capacity = ratelimit_test::capacity<A>(q);
  const std::int64_t start = faked_clock_server::start_seconds + 86'400 * 10 + 37;
  manual_clock server_time, redis_clock;
  memory_limiter<A> memory{q, server_time, small_in_memory_storage()};
  const std::string prefix = test_prefix();
  redis_limiter<A> redis{q, redis_clock, redis_storage{server_time_options(prefix)}};
  const auto take_all_at = [&](std::int64_t s) {
    set_time(s, server_time, redis_clock);
    const std::vector<decision> got = take_all(redis, "k", capacity);
    EXPECT_TRUE(same_as_in_memory(got, memory, "k")) << "at second " << s;
    for (const decision& d : got) EXPECT_FALSE(d.degraded) << "at second " << s;
    return got;
  };

  EXPECT_EQ(admitted(take_all_at(start)), capacity);
  EXPECT_EQ(admitted(take_all_at(start + 5)), 0);

  const std::int64_t jump = last_second - 210;
  EXPECT_EQ(admitted(take_all_at(jump)), capacity) << "one fresh quota";
  std::vector<decision> last;
  std::int64_t after_jump = 0;
  for (std::int64_t s = jump + 5; s <= jump + 60; s += 5) {
    last = take_all_at(s);
    after_jump += admitted(last);
  }
  // A minute at 6 a minute: 6 more, whatever the algorithm.
  EXPECT_LE(after_jump, 6);
  const std::int64_t left = jump + 60;
  const nanoseconds wait = last.back().retry_after;
  ASSERT_GT(wait, 0ns);
  ASSERT_LE(wait, 120s) << "the wait must end before the last second";

  const std::int64_t back = start + 30;
  const std::vector<decision> stepped_back = take_all_at(back);
  EXPECT_EQ(admitted(stepped_back), 0);
  const nanoseconds step = seconds{left - back};
  EXPECT_LE(stepped_back.back().retry_after, wait + step) << describe(stepped_back.back());
  EXPECT_GT(stepped_back.back().retry_after, step) << describe(stepped_back.back());
  // The key Redis holds outlives the step: its expiry is in 2112.
  const auto ttls = server().key_ttls(prefix + "*");
  ASSERT_EQ(ttls.size(), 1u);
  EXPECT_GT(ttls.begin()->second,
            std::chrono::duration_cast<std::chrono::milliseconds>(step).count());

  const auto until = std::chrono::duration_cast<seconds>(stepped_back.back().retry_after);
  ASSERT_EQ(until, stepped_back.back().retry_after) << "a wait of whole seconds";
  EXPECT_EQ(admitted(take_all_at(back + until.count() - 1)), 0);
  EXPECT_GE(admitted(take_all_at(back + until.count())), 1);
}

// ---------------------------------------------------------------------------------------
// Beyond the end of the scripts' time

/// Counts what the storage tells its error listeners.
struct error_counts {
  std::atomic<int> unavailable{0};
  std::atomic<int> other{0};
};

// A hundred years from now is past September 2112, the end of the scripts' microseconds:
// each script answers with an error and writes nothing, and the storage takes that as a
// failure. Every decision is then the failure policy's, marked degraded: fail_closed
// admits nothing, local_fallback one fresh local quota, fail_open everything (the policy's
// answer, not Redis's). Back in range, Redis decides again from the state it had.
TYPED_TEST(RedisServerClock, PastSeptember2112EveryDecisionIsTheFailurePolicys) {
  using A = TypeParam;
  const quota q = minute_quota;
  const std::int64_t capacity = ratelimit_test::capacity<A>(q);
  const std::int64_t hundred_years =
      std::chrono::duration_cast<seconds>(
          (std::chrono::system_clock::now() + std::chrono::years{100}).time_since_epoch())
          .count();
  ASSERT_GT(hundred_years, last_second);
  const std::int64_t start = faked_clock_server::start_seconds + 86'400 * 20 + 37;

  // The script's own answer, run by hand.
  set_time(last_second + 1);
  const redis_reply raw =
      server().command("EVAL", std::string{ratelimit::detail::redis::script<A>::source}, "1",
                       test_prefix("raw") + "k", "", "6", "60000000", "4", "1", "1000", "1");
  EXPECT_EQ(raw.type, kind::error) << raw;
  EXPECT_NE(raw.text.find("now must be below 2^52"), std::string::npos) << raw;

  const std::array<failure_policy, 3> policies = {
      failure_policy::fail_closed, failure_policy::local_fallback, failure_policy::fail_open};
  for (std::size_t i = 0; i < policies.size(); ++i) {
    SCOPED_TRACE("policy " + std::to_string(i));
    const std::int64_t from = start + 600 * static_cast<std::int64_t>(i);
    manual_clock server_time, redis_clock;
    memory_limiter<A> memory{q, server_time, small_in_memory_storage()};
    redis_options o = server_time_options(test_prefix(std::to_string(i)));
    o.on_failure = policies[i];
    o.breaker_threshold = INT_MAX;  // every call reaches the script
    redis_storage storage{o};
    auto errors = std::make_shared<error_counts>();
    storage.add_error_listener([errors](const ratelimit::backend_error& e) {
      (e.what == "unavailable" ? errors->unavailable : errors->other) += 1;
    });
    redis_limiter<A> redis{q, redis_clock, storage};

    set_time(from, server_time, redis_clock);
    std::vector<decision> got = take_all(redis, "k", capacity);
    EXPECT_TRUE(same_as_in_memory(got, memory, "k"));
    EXPECT_EQ(admitted(got), capacity);

    // The key's TTL runs out with the jump; Redis's background expiry must not delete it
    // before the clock comes back, as it would now and then.
    EXPECT_EQ(server().command("DEBUG", "SET-ACTIVE-EXPIRE", "0").text, "OK");
    set_time(hundred_years, redis_clock);
    std::int64_t beyond = 0;
    for (std::int64_t n = 0; n < 3 * capacity; ++n) {
      const decision d = redis.try_acquire("k");
      EXPECT_TRUE(d.degraded) << describe(d);
      beyond += d.allowed ? 1 : 0;
      if (policies[i] == failure_policy::fail_closed) {
        EXPECT_EQ(d.retry_after, o.probe_interval) << describe(d);
      }
    }
    switch (policies[i]) {
      case failure_policy::fail_closed:
        EXPECT_EQ(beyond, 0);
        break;
      case failure_policy::local_fallback:
        EXPECT_EQ(beyond, capacity);
        break;
      case failure_policy::fail_open:
        EXPECT_EQ(beyond, 3 * capacity);
        break;
    }
    EXPECT_EQ(errors->unavailable.load(), 3 * capacity);
    EXPECT_EQ(errors->other.load(), 0);

    // Back in range: Redis decides from the state the failed calls left untouched.
    set_time(from + 5, server_time, redis_clock);
    EXPECT_EQ(server().command("DEBUG", "SET-ACTIVE-EXPIRE", "1").text, "OK");
    got = take_all(redis, "k", capacity);
    EXPECT_TRUE(same_as_in_memory(got, memory, "k"));
    for (const decision& d : got) EXPECT_FALSE(d.degraded) << describe(d);
  }

  // With the default breaker, three such calls open it: the storage then treats Redis as
  // away, until a probe finds the clock back in range.
  manual_clock redis_clock;
  redis_limiter<A> redis{q, redis_clock,
                         redis_storage{server_time_options(test_prefix("breaker"))}};
  set_time(hundred_years, redis_clock);
  for (int n = 0; n < 3; ++n) EXPECT_TRUE(redis.try_acquire("k").degraded);
  EXPECT_TRUE(redis.storage().degraded());
  set_time(start + 3600, redis_clock);
}

// ---------------------------------------------------------------------------------------
// The fastest rates, and other edges of what the scripts can decide

/// A quota at an edge of what a script decides exactly in units of `unit`, and the quota
/// one step beyond it, which must be refused with a message naming `field` and `value`.
struct edge {
  std::string what;
  quota at;
  quota beyond;
  std::string field;
  std::string value;
};

/// Every script's period is at least one unit: a period 1ns shorter is refused (at 1ns,
/// by the quota itself: a period of 0).
edge shortest_period(nanoseconds unit) {
  return {"shortest period", quota::per(1, unit), quota{1, unit - 1ns, 1}, "period",
          std::to_string(unit.count() - 1) + "ns"};
}

/// The edges of algorithm A, for times in units of `unit`. The fastest rate is limit / 1
/// unit with the largest limit the script takes: limit/period is at most the limit over
/// one unit, and each bound on the limit only tightens as the period grows.
template <class A>
std::vector<edge> edges(nanoseconds unit) {
  const auto per_unit = [unit](std::int64_t limit) { return quota::per(limit, unit); };
  if constexpr (std::is_same_v<A, algorithms::token_bucket>) {
    return {
        {"fastest rate: limit < 2^53", per_unit(two_to_53 - 1), per_unit(two_to_53), "limit",
         "9007199254740992"},
        {"largest burst: burst x period < 2^53", per_unit(1 << 20).with_burst(two_to_53 - 1),
         per_unit(1 << 20).with_burst(two_to_53), "burst * period", "burst 9007199254740992"},
        {"longest fill: 2^50 units", per_unit(8).with_burst(two_to_53 - 1),
         per_unit(7).with_burst(two_to_53 - 1), "time to fill", "limit 7"},
        shortest_period(unit),
    };
  } else if constexpr (std::is_same_v<A, algorithms::leaky_bucket>) {
    return {
        {"fastest rate: burst x period + limit < 2^53", per_unit(two_to_53 - 2).with_burst(1),
         per_unit(two_to_53 - 1).with_burst(1), "burst * period + limit", "limit 9007199254740991"},
        {"fastest rate with burst = limit", per_unit(two_to_52 - 1), per_unit(two_to_52),
         "burst * period + limit", "burst 4503599627370496"},
        {"largest burst", per_unit(8).with_burst(two_to_53 - 9),
         per_unit(8).with_burst(two_to_53 - 8), "burst * period + limit", "burst 9007199254740984"},
        {"longest fill: 2^50 units", per_unit(1).with_burst(two_to_50),
         per_unit(1).with_burst(two_to_50 + 1), "time to fill", "burst 1125899906842625"},
        shortest_period(unit),
    };
  } else if constexpr (std::is_same_v<A, algorithms::fixed_window>) {
    return {
        {"fastest rate: limit < 2^53", per_unit(two_to_53 - 1), per_unit(two_to_53), "limit",
         "9007199254740992"},
        shortest_period(unit),
    };
  } else if constexpr (std::is_same_v<A, algorithms::sliding_log>) {
    return {
        {"fastest rate: limit < 2^52", per_unit(two_to_52 - 1), per_unit(two_to_52), "limit",
         "4503599627370496"},
        // Many instants live at once: the running totals pass 2^52 and wrap.
        {"largest limit over 1000 units", quota::per(two_to_52 - 1, 1000 * unit),
         quota::per(two_to_52, 1000 * unit), "limit", "4503599627370496"},
        shortest_period(unit),
    };
  } else {
    return {
        {"fastest rate: limit x period < 2^53", per_unit(two_to_53 - 1), per_unit(two_to_53),
         "limit * period", "limit 9007199254740992"},
        shortest_period(unit),
    };
  }
}

template <class A>
class RedisFastestRates : public testing::Test {};
TYPED_TEST_SUITE(RedisFastestRates, all_algorithms, algorithm_name);

TYPED_TEST(RedisFastestRates, EachEdgeIsTakenAndOneStepBeyondIsRefusedNamingTheValue) {
  using A = TypeParam;
  const std::string prefix = test_prefix();
  const std::array<redis_options, 2> options = {server_time_options(prefix),
                                                nanosecond_client_options(prefix)};
  for (const redis_options& o : options) {
    const nanoseconds unit = o.time == time_source::server ? 1us : o.client_time_unit;
    for (const edge& e : edges<A>(unit)) {
      SCOPED_TRACE(e.what + ", units of " + std::to_string(unit.count()) + "ns");
      manual_clock clock;
      EXPECT_EQ(invalid_argument_from([&] {
                  redis_limiter<A> limiter{e.at, clock, redis_storage{o}};
                }),
                "(threw nothing)");
      const std::string message = invalid_argument_from([&] {
        redis_limiter<A> limiter{e.beyond, clock, redis_storage{o}};
      });
      EXPECT_TRUE(mentions(message, e.field, e.value)) << message;
      // A quota given with the call is checked as well, before anything reaches Redis.
      redis_limiter<A> limiter{e.at, clock, redis_storage{o}};
      EXPECT_EQ(invalid_argument_from([&] { (void)limiter.try_acquire("k", 1, e.beyond); }),
                message);
    }
  }
  EXPECT_TRUE(server().key_ttls(prefix + "*").empty());
}

/// Costs at the edges of `capacity`: 1, 2, a third, all but one, all, one more (never),
/// and the largest a quota holds and an int64 holds (never).
std::int64_t edge_cost(std::mt19937_64& random, std::int64_t capacity) {
  const std::array<std::int64_t, 8> costs = {1,
                                             std::min<std::int64_t>(2, capacity),
                                             std::max<std::int64_t>(1, capacity / 3),
                                             std::max<std::int64_t>(1, capacity - 1),
                                             capacity,
                                             capacity + 1,
                                             quota::max_units,
                                             INT64_MAX};
  return costs[random() % costs.size()];
}

/// The next instant after `now`, aimed at the previous decision's edges: the same instant,
/// 1 or 2 units later, exactly at its retry_after or reset_after or 1 unit before, or a
/// random few units later; none later than `bound`.
std::int64_t edge_time(std::mt19937_64& random, std::int64_t now, const decision& last,
                       std::int64_t unit, std::int64_t bound) {
  const auto in_units = [unit](nanoseconds d) {
    return d == nanoseconds::max() ? INT64_MAX : (d.count() + unit - 1) / unit;
  };
  std::int64_t step = 0;
  switch (random() % 8) {
    case 0:
    case 1:
      step = 0;
      break;
    case 2:
      step = 1;
      break;
    case 3:
      step = 2;
      break;
    case 4:
      step = in_units(last.retry_after);
      break;
    case 5:
      step = in_units(last.retry_after) - 1;
      break;
    case 6:
      step = in_units(last.reset_after) - static_cast<std::int64_t>(random() % 2);
      break;
    default:
      step = static_cast<std::int64_t>(random() % 1000);
  }
  step = std::max<std::int64_t>(step, 0);
  if (step > bound - now) step = std::min<std::int64_t>(1, bound - now);
  return now + step;
}

// Client time at 1ns: at every edge Redis decides exactly as the in-memory storage does,
// request by request, on seeded traces aimed at the edges of each decision before.
TYPED_TEST(RedisFastestRates, AtEachEdgeNanosecondClientTimeDecidesAsInMemory) {
  using A = TypeParam;
  const std::vector<edge> all = edges<A>(1ns);
  int steps = 0;
  for (std::size_t i = 0; i < all.size(); ++i) {
    const quota& q = all[i].at;
    const std::uint64_t seed = ratelimit_test::base_seed() + 31 * i;
    SCOPED_TRACE(all[i].what + ", " + ratelimit_test::seed_text(seed));
    std::mt19937_64 random{seed};
    const std::int64_t capacity = ratelimit_test::capacity<A>(q);
    manual_clock clock;
    memory_limiter<A> memory{q, clock, small_in_memory_storage()};
    redis_limiter<A> redis{
        q, clock, redis_storage{nanosecond_client_options(test_prefix(std::to_string(i)))}};
    // The scripts take times below 2^52 units, and add at most 2^51 to them.
    constexpr std::int64_t bound = std::int64_t{1} << 51;
    std::int64_t now = 1'000;
    decision last{};
    int mismatches = 0;
    for (int n = 0; n < 300 && mismatches < 3; ++n, ++steps) {
      now = edge_time(random, now, last, 1, bound);
      clock.set(manual_clock::time_point{nanoseconds{now}});
      const std::int64_t cost = edge_cost(random, capacity);
      const decision expected = memory.try_acquire("k", cost);
      last = redis.try_acquire("k", cost);
      if (!ratelimit_test::same(expected, last)) {
        ++mismatches;
        ADD_FAILURE() << "request " << n << ": cost " << cost << " at " << now << "ns"
                      << "\n  in memory: " << describe(expected)
                      << "\n  redis:     " << describe(last);
      }
      if (cost > capacity) {
        EXPECT_EQ(last.retry_after, nanoseconds::max()) << "cost " << cost << ": never";
      }
    }
  }
  EXPECT_GE(steps, 600);
}

// Server time (1us units), on the faked clock at whole seconds: at every edge Redis decides
// as the in-memory storage does at the same instants, waits rounded up to a microsecond.
TYPED_TEST(RedisFastestRates, AtEachEdgeServerTimeDecidesAsInMemoryInMicroseconds) {
  using A = TypeParam;
  const std::vector<edge> all = edges<A>(1us);
  int steps = 0;
  for (std::size_t i = 0; i < all.size(); ++i) {
    const quota& q = all[i].at;
    const std::uint64_t seed = ratelimit_test::base_seed() + 57 * i;
    SCOPED_TRACE(all[i].what + ", " + ratelimit_test::seed_text(seed));
    std::mt19937_64 random{seed};
    const std::int64_t capacity = ratelimit_test::capacity<A>(q);
    manual_clock server_time, redis_clock;
    memory_limiter<A> memory{q, server_time, small_in_memory_storage()};
    redis_limiter<A> redis{q, redis_clock,
                           redis_storage{server_time_options(test_prefix(std::to_string(i)))}};
    std::int64_t now = faked_clock_server::start_seconds + 86'400 * 30;
    decision last{};
    int mismatches = 0;
    for (int n = 0; n < 60 && mismatches < 3; ++n, ++steps) {
      now = edge_time(random, now, last, 1'000'000'000, last_second);
      set_time(now, server_time, redis_clock);
      const std::int64_t cost = edge_cost(random, capacity);
      const decision expected = memory.try_acquire("k", cost);
      last = redis.try_acquire("k", cost);
      if (const auto result = decides_as(expected, last); !result) {
        ++mismatches;
        ADD_FAILURE() << "request " << n << ": cost " << cost << " at second " << now << result;
      }
      EXPECT_FALSE(last.degraded);
      if (cost > capacity) {
        EXPECT_EQ(last.retry_after, nanoseconds::max()) << "cost " << cost << ": never";
      }
    }
  }
  EXPECT_GE(steps, 120);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// A step back after the key went fresh: the one over-admission Redis has (issue 7)

namespace {

/// The most units admitted within any one period of real time: in (t − period, t], seconds.
std::int64_t busiest_period(const std::vector<std::pair<std::int64_t, std::int64_t>>& admitted,
                            std::int64_t period) {
  std::int64_t most = 0;
  for (const auto& last : admitted) {
    std::int64_t units = 0;
    for (const auto& [at, n] : admitted)
      units += at > last.first - period && at <= last.first ? n : 0;
    most = std::max(most, units);
  }
  return most;
}

// A script deletes a state that is fresh again, and a key expires once its state is: a key
// the server doesn't hold starts fresh at the time the server reads. After the server's clock
// stepped back, that can be before the instant the state went fresh at, where the in-memory
// storage starts it (in_memory.hpp, sharded_table::fresh_at). For the fixed window that
// counts a window again: the worst case, below, is a client that takes a whole window's
// limit in its last second, sends a request above the limit in the next window's first
// second (which rolls the state into that window with nothing counted, and deletes it), and
// meets a step back of 2s into the window it used up: that window's limit again, then the
// next window's, 3 x limit within 3s of real time, where a clock that never stepped allows 2
// x limit in any period. No step back, of any size, gets more than that out of one step: the
// limit once more. Every other algorithm's key is missing only once nothing
// it counted still counts (a sliding window counter's TTL runs to the end of the window
// after its current one): those keys decide as in memory when the step finds them held, and
// as on a clock that never stepped, D later, when it finds them gone.
TYPED_TEST(RedisServerClock, AStepBackPastAFreshKeyCountsAFixedWindowAgainAndNothingElse) {
  using A = TypeParam;
  constexpr bool fixed = std::is_same_v<A, algorithms::fixed_window>;
  const quota q = minute_quota;
  const std::int64_t capacity = ratelimit_test::capacity<A>(q);
  constexpr std::int64_t period = 60;
  static_assert(faked_clock_server::start_seconds % period == 0);
  // Windows are whole minutes of Unix time: this is where one begins.
  const std::int64_t boundary = faked_clock_server::start_seconds + 86'400 * 40 + 600;
  manual_clock real_time, server_time, redis_clock;
  memory_limiter<A> unstepped{q, real_time, small_in_memory_storage()};
  memory_limiter<A> stepped{q, server_time, small_in_memory_storage()};
  redis_limiter<A> redis{q, redis_clock, redis_storage{server_time_options(test_prefix())}};
  // (real second, units) of each limiter's admissions.
  std::vector<std::pair<std::int64_t, std::int64_t>> by_redis, by_stepped, by_unstepped;
  const auto at = [&](std::int64_t real, std::int64_t behind) {
    real_time.set(at_second(real));
    set_time(real - behind, server_time, redis_clock);
  };
  // Takes all it can from each limiter; Redis decides as `stepped` unless `differs`.
  const auto take_all_at = [&](std::int64_t real, bool differs) {
    const std::vector<decision> got = take_all(redis, "k", capacity);
    by_redis.emplace_back(real, admitted(got));
    if (differs) {
      by_stepped.emplace_back(real, admitted(take_all(stepped, "k", capacity)));
    } else {
      EXPECT_TRUE(same_as_in_memory(got, stepped, "k")) << "at real second " << real;
      by_stepped.emplace_back(real, admitted(got));
    }
    by_unstepped.emplace_back(real, admitted(take_all(unstepped, "k", capacity)));
  };
  const auto above_the_capacity = [&] {
    const decision d = redis.try_acquire("k", capacity + 1);
    EXPECT_EQ(d.retry_after, nanoseconds::max()) << describe(d);
    EXPECT_EQ(stepped.try_acquire("k", capacity + 1).retry_after, nanoseconds::max());
    EXPECT_EQ(unstepped.try_acquire("k", capacity + 1).retry_after, nanoseconds::max());
  };

  // The worst case.
  at(boundary - 1, 0);
  take_all_at(boundary - 1, false);
  at(boundary, 0);
  above_the_capacity();
  for (std::int64_t real = boundary + 1; real <= boundary + 1 + 2 * period; ++real) {
    at(real, 2);
    take_all_at(real, fixed);
  }
  const std::int64_t redis_most = busiest_period(by_redis, period);
  if (fixed) {
    EXPECT_EQ(busiest_period(by_unstepped, period), 2 * capacity);
    EXPECT_EQ(busiest_period(by_stepped, period), 2 * capacity);
    EXPECT_EQ(redis_most, 3 * capacity) << "the limit once more than without the step";
  } else {
    EXPECT_EQ(redis_most, busiest_period(by_stepped, period));
    EXPECT_LE(redis_most, busiest_period(by_unstepped, period));
  }

  // Idle until every key is fresh, and Redis has dropped it: a request above the capacity
  // reads it once the server's time is past its expiry. Then a step back into the windows
  // counted above, 720s behind real time in all, a whole number of periods: from there on
  // Redis decides as the limiter whose clock never stepped, whose key is fresh too.
  const std::int64_t resumed = boundary + 1 + 2 * period + 600;
  at(resumed, 2);
  above_the_capacity();
  ASSERT_TRUE(server().key_ttls(test_prefix() + "*").empty());
  std::int64_t after = 0;
  for (std::int64_t real = resumed + 1; real <= resumed + 1 + 3 * period; real += 5) {
    SCOPED_TRACE("real second " + std::to_string(real));
    at(real, 12 * period);
    const std::vector<decision> got = take_all(redis, "k", capacity);
    EXPECT_TRUE(same_as_in_memory(got, unstepped, "k"));
    after += admitted(got);
  }
  EXPECT_GE(after, 2 * capacity);
}

}  // namespace
