#pragma once

// One redis-server for a whole test binary, as a GoogleTest environment.

#include <gtest/gtest.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include "support/redis_server.hpp"

namespace ratelimit_test {

/// Fails the test (or environment) running for each key matching `pattern` that carries no
/// TTL, so that nothing a limiter writes outlives its use; returns how many keys matched.
inline std::size_t expect_every_key_expires(const redis_server& server, std::string_view pattern) {
  const auto ttls = server.key_ttls(pattern);
  for (const auto& [key, ttl] : ttls) {
    EXPECT_GT(ttl, 0) << "key " << testing::PrintToString(key) << " has PTTL " << ttl;
  }
  return ttls.size();
}

/// Starts the server before the first test, on the main thread (the server dies with the
/// thread that started it). Given a key pattern, it checks after the last test that every
/// key matching it carries a TTL.
class shared_redis_server : public testing::Environment {
 public:
  explicit shared_redis_server(std::string ttl_pattern = {})
      : ttl_pattern_(std::move(ttl_pattern)) {}

  void SetUp() override { server_.start(); }

  void TearDown() override {
    if (ttl_pattern_.empty()) return;
    const std::size_t keys_left = expect_every_key_expires(server_, ttl_pattern_);
    testing::Test::RecordProperty("keys_left", static_cast<int>(keys_left));
  }

  redis_server& server() { return server_; }

  /// Registers one with GoogleTest; the returned pointer lives as long as the binary.
  static shared_redis_server* install(std::string ttl_pattern = {}) {
    return static_cast<shared_redis_server*>(
        testing::AddGlobalTestEnvironment(new shared_redis_server(std::move(ttl_pattern))));
  }

 private:
  std::string ttl_pattern_;
  redis_server server_;
};

/// A key prefix no other test uses: `<root><suite>.<test>:<what>:`.
inline std::string test_prefix(std::string_view root, std::string_view what = "") {
  const auto* info = testing::UnitTest::GetInstance()->current_test_info();
  return std::string{root} + info->test_suite_name() + "." + info->name() + ":" +
         std::string{what} + ":";
}

}  // namespace ratelimit_test
