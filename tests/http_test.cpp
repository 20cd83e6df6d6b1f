// <ratelimit/http/headers.hpp>: the status and header text a decision gives, with the numbers
// written out; the IETF fields as draft-ietf-httpapi-ratelimit-headers-11 writes them.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <ratelimit/http.hpp>
#include <ratelimit/ratelimit.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "support/invalid_argument.hpp"

namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;
using ratelimit::decision;
using ratelimit::quota;
using ratelimit::http::header_options;
using ratelimit::http::headers_for;
using ratelimit::http::policy;
using ratelimit::http::reset_format;
using ratelimit_test::invalid_argument_from;
using std::chrono::nanoseconds;
using wall = std::chrono::system_clock;

// 2023-11-14T22:13:20Z, on a whole second.
const wall::time_point noon{std::chrono::seconds{1'700'000'000}};

decision rejected(nanoseconds retry_after, nanoseconds reset_after = 60s) {
  return decision{.allowed = false,
                  .limit = 100,
                  .remaining = 0,
                  .retry_after = retry_after,
                  .reset_after = reset_after};
}

decision admitted(std::int64_t remaining, nanoseconds reset_after) {
  return decision{
      .allowed = true, .limit = 100, .remaining = remaining, .reset_after = reset_after};
}

// Every field, in order, as "Name: value".
template <class Headers>
std::vector<std::string> lines(const Headers& h) {
  std::vector<std::string> out;
  h.apply([&](std::string_view name, std::string_view value) {
    out.push_back(std::string{name} + ": " + std::string{value});
  });
  return out;
}

template <class Headers>
std::string field(const Headers& h, std::string_view name) {
  const std::optional<std::string_view> v = h.find(name);
  return v ? std::string{*v} : "(absent)";
}

std::string retry_after(const decision& d) { return field(headers_for(d, noon), "Retry-After"); }

TEST(HttpHeaders, RetryAfterRoundsUpToTheSecond) {
  EXPECT_EQ(retry_after(rejected(1ns)), "1");
  EXPECT_EQ(retry_after(rejected(999'999'999ns)), "1");
  EXPECT_EQ(retry_after(rejected(1s)), "1");
  EXPECT_EQ(retry_after(rejected(1s + 1ns)), "2");
  EXPECT_EQ(retry_after(rejected(29'500ms)), "30");
  EXPECT_EQ(retry_after(rejected(3600s)), "3600");
}

TEST(HttpHeaders, RetryAfterIsAtLeastOneSecondWhenRejected) {
  // A rejection with no wait (a fail_closed decision may carry one) still says 1, never 0:
  // a client retrying at once would be rejected again.
  EXPECT_EQ(retry_after(rejected(0ns)), "1");
  EXPECT_EQ(retry_after(rejected(-5ns)), "1");
}

TEST(HttpHeaders, RetryAfterIsAbsentWhenAllowed) {
  EXPECT_EQ(retry_after(admitted(5, 10s)), "(absent)");
}

TEST(HttpHeaders, StatusIs429OnlyWhenRejected) {
  EXPECT_EQ(ratelimit::http::too_many_requests, 429);
  EXPECT_EQ(headers_for(rejected(1s), noon).status(), 429);
  EXPECT_EQ(headers_for(rejected(1s), noon).status(204), 429);
  EXPECT_EQ(headers_for(admitted(1, 1s), noon).status(), 200);
  EXPECT_EQ(headers_for(admitted(1, 1s), noon).status(204), 204);
  EXPECT_TRUE(headers_for(rejected(1s), noon).rejected());
  EXPECT_FALSE(headers_for(admitted(1, 1s), noon).rejected());
}

TEST(HttpHeaders, ADecisionThatCanNeverPassHasNoRetryAfter) {
  // cost above capacity: no wait helps, so nothing invites a retry; still a 429.
  const decision never = rejected(nanoseconds::max(), 2500ms);
  const auto h = headers_for(never, policy{"burst", quota::per_second(10)}, noon);
  EXPECT_TRUE(h.never_passes());
  EXPECT_EQ(h.status(), 429);
  EXPECT_EQ(lines(h), (std::vector<std::string>{
                          "X-RateLimit-Limit: 100",
                          "X-RateLimit-Remaining: 0",
                          "X-RateLimit-Reset: 1700000003",
                          R"(RateLimit-Policy: "burst";q=100;w=1)",
                          R"(RateLimit: "burst";r=0;t=3)",
                      }));
  EXPECT_FALSE(headers_for(rejected(nanoseconds::max() - 1ns), noon).never_passes());
  EXPECT_EQ(retry_after(rejected(nanoseconds::max() - 1ns)), "9223372037");
}

TEST(HttpHeaders, ResetIsUnixSecondsRoundedUp) {
  const auto reset = [](wall::time_point now, nanoseconds after) {
    return field(headers_for(admitted(1, after), now), "X-RateLimit-Reset");
  };
  EXPECT_EQ(reset(noon, 0ns), "1700000000");
  EXPECT_EQ(reset(noon, 1ns), "1700000001");
  EXPECT_EQ(reset(noon, 1s), "1700000001");
  EXPECT_EQ(reset(noon, 1s + 1ns), "1700000002");
  // The fraction of `now` counts: 0.25s + 59.75s is exactly a minute.
  EXPECT_EQ(reset(noon + 250ms, 59'750ms), "1700000060");
  EXPECT_EQ(reset(noon + 250ms, 59'750ms + 1ns), "1700000061");
  EXPECT_EQ(reset(noon + 250ms, 0ns), "1700000001");
  // Far-future resets neither overflow nor wrap.
  EXPECT_EQ(reset(noon, nanoseconds::max()), "10923372037");
  EXPECT_EQ(reset(wall::time_point{}, 0ns), "0");
}

TEST(HttpHeaders, ResetCanBeDeltaSeconds) {
  const header_options delta{.reset = reset_format::delta_seconds};
  const auto reset = [&](nanoseconds after) {
    return field(headers_for(admitted(1, after), noon + 400ms, delta), "X-RateLimit-Reset");
  };
  EXPECT_EQ(reset(0ns), "0");
  EXPECT_EQ(reset(1ns), "1");
  EXPECT_EQ(reset(1s), "1");
  EXPECT_EQ(reset(1s + 1ns), "2");
  EXPECT_EQ(reset(59'999ms), "60");
}

TEST(HttpHeaders, LimitAndRemainingAreTheDecisions) {
  const auto h = headers_for(admitted(42, 3s), noon);
  EXPECT_EQ(lines(h), (std::vector<std::string>{
                          "X-RateLimit-Limit: 100",
                          "X-RateLimit-Remaining: 42",
                          "X-RateLimit-Reset: 1700000003",
                      }));
  // Never a negative count in a header.
  decision d = admitted(-3, 3s);
  EXPECT_EQ(field(headers_for(d, noon), "X-RateLimit-Remaining"), "0");
}

TEST(HttpHeaders, OnePolicyWritesTheDraftsStructuredFields) {
  const policy burst{"burst", quota::per_minute(100)};
  EXPECT_EQ(lines(headers_for(rejected(29'500ms, 45s), burst, noon)),
            (std::vector<std::string>{
                "Retry-After: 30",
                "X-RateLimit-Limit: 100",
                "X-RateLimit-Remaining: 0",
                "X-RateLimit-Reset: 1700000045",
                R"(RateLimit-Policy: "burst";q=100;w=60)",
                R"(RateLimit: "burst";r=0;t=30)",
            }));
  // Admitted: t is until the quota is full again.
  EXPECT_EQ(field(headers_for(admitted(57, 12'001ms), burst, noon), "RateLimit"),
            R"("burst";r=57;t=13)");
}

TEST(HttpHeaders, TheWindowIsWrittenOnlyInWholeSeconds) {
  const auto policy_field = [](nanoseconds window) {
    return field(headers_for(admitted(1, 1s), policy{"p", window}, noon), "RateLimit-Policy");
  };
  EXPECT_EQ(policy_field(1s), R"("p";q=100;w=1)");
  EXPECT_EQ(policy_field(24h), R"("p";q=100;w=86400)");
  EXPECT_EQ(policy_field(1500ms), R"("p";q=100)");
  EXPECT_EQ(policy_field(100ms), R"("p";q=100)");
  EXPECT_EQ(policy_field(1s + 1ns), R"("p";q=100)");
}

TEST(HttpHeaders, StructuredIntegersStopAtFifteenDigits) {
  decision d = admitted(quota::max_units, 1s);
  d.limit = quota::max_units;
  const auto h = headers_for(d, policy{"huge", 1s}, noon);
  EXPECT_EQ(field(h, "RateLimit-Policy"), R"("huge";q=999999999999999;w=1)");
  EXPECT_EQ(field(h, "RateLimit"), R"("huge";r=999999999999999;t=1)");
  // The X-RateLimit fields are plain numbers.
  EXPECT_EQ(field(h, "X-RateLimit-Limit"), "4611686018427387904");
  EXPECT_EQ(field(h, "X-RateLimit-Remaining"), "4611686018427387904");
}

TEST(HttpHeaders, FieldsCanBeLeftOut) {
  const policy p{"p", 1s};
  EXPECT_EQ(lines(headers_for(rejected(2s), p, noon, {.x_ratelimit = false})),
            (std::vector<std::string>{"Retry-After: 2", R"(RateLimit-Policy: "p";q=100;w=1)",
                                      R"(RateLimit: "p";r=0;t=2)"}));
  EXPECT_EQ(lines(headers_for(rejected(2s), p, noon, {.x_ratelimit = false, .ietf = false})),
            (std::vector<std::string>{"Retry-After: 2"}));
  EXPECT_EQ(headers_for(admitted(1, 1s), p, noon, {.x_ratelimit = false, .ietf = false}).size(),
            0u);
}

TEST(HttpHeaders, PolicyNamesAreQuotedAndEscapedAsSfStrings) {
  EXPECT_EQ(policy("burst", 1s).item(), R"("burst")");
  EXPECT_EQ(policy(R"(a"b\c)", 1s).item(), R"("a\"b\\c")");
  EXPECT_EQ(policy(R"(a"b\c)", 1s).name(), R"(a"b\c)");
  EXPECT_EQ(policy("per user, per day", 1s).item(), R"("per user, per day")");
  EXPECT_EQ(policy(" ~", 1s).item(), R"(" ~")");
  const std::string longest(64, '\\');
  EXPECT_EQ(policy(longest, 1s).item().size(), 130u);
  EXPECT_EQ(field(headers_for(admitted(1, 1s), policy{longest, 1s}, noon), "RateLimit"),
            "\"" + std::string(128, '\\') + "\";r=1;t=1");
}

TEST(HttpHeaders, PolicyNamesThatAreNotPrintableAsciiAreRefusedByName) {
  EXPECT_EQ(invalid_argument_from([] { policy("", 1s); }),
            R"(ratelimit::http::policy: name "": must not be empty)");
  EXPECT_EQ(
      invalid_argument_from([] { policy("a\nb", 1s); }),
      R"(ratelimit::http::policy: name "a\nb": byte 1 is not printable ASCII (0x20 to 0x7e))");
  EXPECT_EQ(
      invalid_argument_from([] { policy("a\tb", 1s); }),
      R"(ratelimit::http::policy: name "a\tb": byte 1 is not printable ASCII (0x20 to 0x7e))");
  EXPECT_EQ(
      invalid_argument_from([] { policy("x\x7f", 1s); }),
      R"(ratelimit::http::policy: name "x\x7f": byte 1 is not printable ASCII (0x20 to 0x7e))");
  EXPECT_EQ(invalid_argument_from([] { policy("d\xc3\xa9j\xc3\xa0", 1s); }),
            "ratelimit::http::policy: name \"d\xc3\xa9j\xc3\xa0\": byte 1 is not printable ASCII "
            "(0x20 to 0x7e)");
  EXPECT_EQ(
      invalid_argument_from([] {
        policy(std::string{"a\0b", 3}, 1s);
      }),
      R"(ratelimit::http::policy: name "a\x00b": byte 1 is not printable ASCII (0x20 to 0x7e))");
  EXPECT_EQ(invalid_argument_from([] { policy(std::string(65, 'x'), 1s); }),
            "ratelimit::http::policy: name \"" + std::string(65, 'x') +
                "\": must be at most 64 bytes (got 65)");
  EXPECT_EQ(invalid_argument_from([] { policy(std::string(64, 'x'), 1s); }), "(threw nothing)");
  EXPECT_EQ(invalid_argument_from([] { policy("p", 0s); }),
            R"(ratelimit::http::policy: "p": window must be > 0ns (got 0ns))");
  EXPECT_EQ(invalid_argument_from([] { policy("p", -1ns); }),
            R"(ratelimit::http::policy: "p": window must be > 0ns (got -1ns))");
}

// Every header value is visible ASCII, spaces only inside: a header can't be split or
// smuggled by a policy name or a number.
TEST(HttpHeaders, EveryValueIsVisibleAscii) {
  const std::vector<decision> decisions{
      rejected(1ns),
      rejected(nanoseconds::max()),
      rejected(nanoseconds::max() - 1ns, nanoseconds::max()),
      admitted(0, 0ns),
      admitted(std::numeric_limits<std::int64_t>::max(), nanoseconds::max()),
      admitted(std::numeric_limits<std::int64_t>::min(), nanoseconds::min()),
  };
  const policy odd{R"( "quoted" \ name )", 1500ms};
  for (const decision& d : decisions) {
    const auto h = headers_for(d, odd, noon);
    h.apply([](std::string_view name, std::string_view value) {
      ASSERT_FALSE(value.empty()) << name;
      EXPECT_NE(value.front(), ' ') << name;
      EXPECT_NE(value.back(), ' ') << name;
      for (const char c : value) {
        EXPECT_TRUE(c >= 0x20 && c <= 0x7e) << name << ": " << value;
      }
    });
  }
}

TEST(HttpHeaders, HeadersReferToNothingOnceMade) {
  std::optional<ratelimit::http::rate_limit_headers<1>> kept;
  {
    const policy p{"scoped", 60s};
    const decision d = rejected(5s);
    kept = headers_for(d, p, noon);
  }
  const auto copy = *kept;
  kept.reset();
  EXPECT_EQ(field(copy, "RateLimit"), R"("scoped";r=0;t=5)");
  EXPECT_EQ(field(copy, "retry-after"), "5");  // names match in any case
}

TEST(HttpHeaders, SetHeadersCallsTheSetterForEachFieldInOrder) {
  std::vector<std::pair<std::string, std::string>> response;
  const auto h = ratelimit::http::set_headers(
      [&](std::string_view name, std::string_view value) { response.emplace_back(name, value); },
      rejected(2s), policy{"p", 1s}, noon);
  EXPECT_EQ(h.status(200), 429);
  const std::vector<std::pair<std::string, std::string>> expected{
      {"Retry-After", "2"},
      {"X-RateLimit-Limit", "100"},
      {"X-RateLimit-Remaining", "0"},
      {"X-RateLimit-Reset", "1700000060"},
      {"RateLimit-Policy", R"("p";q=100;w=1)"},
      {"RateLimit", R"("p";r=0;t=2)"},
  };
  EXPECT_EQ(response, expected);
}

namespace algorithms = ratelimit::algorithms;
using ratelimit::manual_clock;
using ratelimit::rule;

template <class... As>
using limiter = ratelimit::basic_multi_limiter<manual_clock, ratelimit::in_memory_storage, As...>;

TEST(HttpHeaders, AMultiRuleDecisionWritesOneItemPerRule) {
  // 2 at once (refilling 10 a second), and 5 a minute.
  manual_clock clock;
  limiter<algorithms::token_bucket, algorithms::fixed_window> limits{
      clock, ratelimit::in_memory_storage{},
      rule<algorithms::token_bucket>{"burst", quota::per_second(10).with_burst(2)},
      rule<algorithms::fixed_window>{"minute", quota::per_minute(5)}};
  const auto policies = ratelimit::http::policies_for(limits.rules());
  EXPECT_EQ(policies[0].name(), "burst");
  EXPECT_EQ(policies[1].window(), 60s);
  const std::string policy_field = R"(RateLimit-Policy: "burst";q=10;w=1, "minute";q=5;w=60)";

  // Admitted: the X-RateLimit trio is the rule with the fewest left, "burst", whose one
  // used token is back in 100ms; "minute" is full again when its window ends.
  const auto first = headers_for(limits.try_acquire("alice"), policies, noon);
  EXPECT_EQ(lines(first), (std::vector<std::string>{
                              "X-RateLimit-Limit: 10",
                              "X-RateLimit-Remaining: 1",
                              "X-RateLimit-Reset: 1700000001",
                              policy_field,
                              R"(RateLimit: "burst";r=1;t=1, "minute";r=4;t=60)",
                          }));

  clock.advance(10s);
  EXPECT_TRUE(limits.try_acquire("alice"));
  EXPECT_TRUE(limits.try_acquire("alice"));
  // The bucket is empty: rejected by "burst" for 100ms. "minute" would have admitted it,
  // leaving 1, and its window ends in 50s.
  const auto fourth = headers_for(limits.try_acquire("alice"), policies, noon);
  EXPECT_EQ(fourth.status(), 429);
  EXPECT_EQ(lines(fourth), (std::vector<std::string>{
                               "Retry-After: 1",
                               "X-RateLimit-Limit: 10",
                               "X-RateLimit-Remaining: 0",
                               "X-RateLimit-Reset: 1700000001",
                               policy_field,
                               R"(RateLimit: "burst";r=0;t=1, "minute";r=1;t=50)",
                           }));

  // A second later the bucket is full again; two more empty both rules. Both reject the
  // next one, "minute" for longer: its 49s are the Retry-After and the trio's numbers.
  clock.advance(1s);
  EXPECT_TRUE(limits.try_acquire("alice"));
  EXPECT_TRUE(limits.try_acquire("alice"));
  const auto seventh = headers_for(limits.try_acquire("alice"), policies, noon);
  EXPECT_EQ(lines(seventh), (std::vector<std::string>{
                                "Retry-After: 49",
                                "X-RateLimit-Limit: 5",
                                "X-RateLimit-Remaining: 0",
                                "X-RateLimit-Reset: 1700000049",
                                policy_field,
                                R"(RateLimit: "burst";r=0;t=1, "minute";r=0;t=49)",
                            }));
}

TEST(HttpHeaders, AMultiRuleRequestThatCanNeverPassHasNoRetryAfter) {
  manual_clock clock;
  limiter<algorithms::token_bucket, algorithms::fixed_window> limits{
      clock, ratelimit::in_memory_storage{},
      rule<algorithms::token_bucket>{"burst", quota::per_second(10).with_burst(2)},
      rule<algorithms::fixed_window>{"minute", quota::per_minute(3)}};
  const auto h = headers_for(limits.try_acquire("bob", 5),
                             ratelimit::http::policies_for(limits.rules()), noon);
  EXPECT_TRUE(h.never_passes());
  EXPECT_EQ(h.status(), 429);
  EXPECT_EQ(h.find("Retry-After"), std::nullopt);
}

TEST(HttpHeaders, PoliciesForRefusesABadRuleName) {
  const std::tuple<rule<algorithms::token_bucket>, rule<algorithms::fixed_window>> rules{
      rule<algorithms::token_bucket>{"ok", quota::per_second(1)},
      rule<algorithms::fixed_window>{"bad\r\nX-Injected: 1", quota::per_minute(1)}};
  EXPECT_EQ(
      invalid_argument_from([&] { ratelimit::http::policies_for(rules); }),
      R"(ratelimit::http::policy: name "bad\r\nX-Injected: 1": byte 3 is not printable ASCII (0x20 to 0x7e))");
}

}  // namespace
