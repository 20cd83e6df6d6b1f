// The test support that runs a real redis-server: starting, faults caused for real, and the
// processes that share one server.
#include "support/redis_server.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/child_process.hpp"

namespace {

using namespace std::chrono_literals;
using ratelimit_test::child_process;
using ratelimit_test::redis_client;
using ratelimit_test::redis_reply;
using ratelimit_test::redis_server;
using ratelimit_test::start_gate;
using kind = redis_reply::kind;

bool process_exists(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

TEST(RedisServer, AnswersPing) {
  redis_server server;
  server.start();
  EXPECT_GT(server.port(), 0);
  EXPECT_TRUE(process_exists(server.pid()));
  EXPECT_EQ(server.command("PING"), redis_reply::of_status("PONG"));
}

TEST(RedisServer, TwoServersGetDifferentPorts) {
  redis_server a;
  redis_server b;
  a.start();
  b.start();
  EXPECT_NE(a.port(), b.port());
  EXPECT_EQ(a.command("SET", "k", "a"), redis_reply::of_status("OK"));
  EXPECT_EQ(b.command("GET", "k"), redis_reply{});
}

TEST(RedisServer, RestartAfterSigkillServesOnTheSamePortWithAnEmptyDataset) {
  redis_server server;
  server.start();
  const int port = server.port();
  const pid_t first = server.pid();
  ASSERT_EQ(server.command("SET", "k", "v"), redis_reply::of_status("OK"));
  // A connection open across the kill, as a connection pool would hold one.
  redis_client held{port, 1000ms};
  ASSERT_EQ(held.command("PING"), redis_reply::of_status("PONG"));

  server.signal(SIGKILL);
  EXPECT_FALSE(process_exists(first));
  EXPECT_EQ(server.command("PING").type, kind::failure);

  server.restart();
  EXPECT_EQ(server.port(), port);
  EXPECT_NE(server.pid(), first);
  EXPECT_EQ(server.command("PING"), redis_reply::of_status("PONG"));
  EXPECT_EQ(server.command("DBSIZE"), redis_reply::of_integer(0));
}

TEST(RedisServer, StoppedServerTimesOutUntilContinued) {
  redis_server server;
  server.start();
  server.signal(SIGSTOP);
  const auto before = std::chrono::steady_clock::now();
  const redis_reply stopped = server.command_with_timeout(100ms, "PING");
  const auto elapsed = std::chrono::steady_clock::now() - before;
  EXPECT_EQ(stopped.type, kind::failure) << stopped;
  EXPECT_LT(elapsed, 2s);

  server.signal(SIGCONT);
  EXPECT_TRUE(server.running());
  EXPECT_EQ(server.command_with_timeout(100ms, "PING"), redis_reply::of_status("PONG"));
}

TEST(RedisServer, StopLeavesNoProcess) {
  redis_server server;
  server.start();
  const pid_t pid = server.pid();
  server.stop();
  EXPECT_FALSE(process_exists(pid));
  EXPECT_EQ(server.command("PING").type, kind::failure);
}

TEST(RedisServer, DestructorEndsAStoppedServer) {
  pid_t pid = -1;
  {
    redis_server server;
    server.start();
    pid = server.pid();
    server.signal(SIGSTOP);
  }
  EXPECT_FALSE(process_exists(pid));
}

TEST(RedisServer, ExtraArgumentsReachTheServer) {
  redis_server server{{"--maxmemory", "1mb", "--maxmemory-policy", "noeviction"}};
  server.start();
  EXPECT_EQ(server.command("CONFIG", "GET", "maxmemory"),
            redis_reply::of_array(
                {redis_reply::of_string("maxmemory"), redis_reply::of_string("1048576")}));
  EXPECT_EQ(server.command("CONFIG", "GET", "maxmemory-policy"),
            redis_reply::of_array({redis_reply::of_string("maxmemory-policy"),
                                   redis_reply::of_string("noeviction")}));
}

TEST(RedisServer, StartFailureSaysWhatTheServerPrinted) {
  redis_server server{{"--no-such-directive", "1"}};
  try {
    server.start();
    FAIL() << "started with a bad directive";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string{e.what()}.find("exited before it was ready"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string{e.what()}.find("no-such-directive"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(server.running());
}

TEST(RedisServer, RestartFailsClearlyWhenThePortWasTaken) {
  redis_server server;
  server.start();
  server.signal(SIGKILL);

  const int squatter = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(squatter, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<std::uint16_t>(server.port()));
  ASSERT_EQ(::bind(squatter, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(squatter, 1), 0);

  EXPECT_THROW(server.restart(), std::runtime_error);
  EXPECT_FALSE(server.running());
  ::close(squatter);
  server.restart();
  EXPECT_EQ(server.command("PING"), redis_reply::of_status("PONG"));
}

TEST(RedisServer, KeyTtlsListsEveryMatchingKeyWithItsPttl) {
  redis_server server;
  server.start();
  const std::string odd_key{"rl:{a\r\n\0}", 9};
  ASSERT_EQ(server.command("SET", odd_key, "1", "PX", 60'000), redis_reply::of_status("OK"));
  ASSERT_EQ(server.command("SET", "rl:forever", "1"), redis_reply::of_status("OK"));
  ASSERT_EQ(server.command("SET", "other", "1"), redis_reply::of_status("OK"));
  for (int i = 0; i < 2500; ++i) {  // several SCAN pages
    ASSERT_EQ(server.command("SET", "rl:many:" + std::to_string(i), "1", "PX", 60'000).type,
              kind::status);
  }

  const auto ttls = server.key_ttls("rl:*");
  EXPECT_EQ(ttls.size(), 2502u);
  ASSERT_EQ(ttls.count(odd_key), 1u);
  EXPECT_GT(ttls.at(odd_key), 0);
  EXPECT_LE(ttls.at(odd_key), 60'000);
  EXPECT_EQ(ttls.at("rl:forever"), -1);
  EXPECT_EQ(ttls.count("other"), 0u);
}

TEST(ChildProcess, ResultComesBackThroughThePipe) {
  child_process child{[] { return std::int64_t{-1} << 40; }};
  EXPECT_EQ(child.result(), std::int64_t{-1} << 40);
}

TEST(ChildProcess, ChildThatThrowsFailsTheResult) {
  child_process child{[]() -> std::int64_t { throw std::runtime_error("on purpose"); }};
  EXPECT_THROW(child.result(), std::runtime_error);
}

TEST(ChildProcess, TwoProcessesShareOneServer) {
  redis_server server;
  server.start();
  start_gate gate;
  const auto count_to_500 = [&] {
    gate.wait();
    redis_client client{server.port(), 5000ms};
    std::int64_t done = 0;
    for (int i = 0; i < 500; ++i) done += client.command("INCR", "shared").type == kind::integer;
    return done;
  };
  std::vector<child_process> children;
  children.emplace_back(count_to_500);
  children.emplace_back(count_to_500);
  gate.open();
  EXPECT_EQ(children[0].result(), 500);
  EXPECT_EQ(children[1].result(), 500);
  EXPECT_EQ(server.command("GET", "shared"), redis_reply::of_string("1000"));
}

}  // namespace
