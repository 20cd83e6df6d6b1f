// parse_quota and to_string of <ratelimit/quota_spec.hpp>: every accepted form with the
// quota it gives, every error with the text it names, and round trips.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <ratelimit/quota_spec.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace {

using namespace std::chrono_literals;
using namespace std::string_view_literals;
using ratelimit::parse_quota;
using ratelimit::quota;

constexpr std::int64_t max_units = std::int64_t{1} << 62;
constexpr std::int64_t int64_max = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t second = 1'000'000'000;
constexpr std::int64_t minute = 60 * second;
constexpr std::int64_t hour = 60 * minute;
constexpr std::int64_t day = 24 * hour;

// A quota's fields as GoogleTest prints them: limit, period in ns, burst.
std::tuple<std::int64_t, std::int64_t, std::int64_t> fields(const quota& q) {
  return {q.limit, q.period.count(), q.burst};
}

std::tuple<std::int64_t, std::int64_t, std::int64_t> parsed(std::string_view spec) {
  return fields(parse_quota(spec));
}

// Whether a spec shows as itself inside the message's quotes (no byte needs escaping).
bool plain(std::string_view spec) {
  for (const char c : spec) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f || c == '"' || c == '\\') return false;
  }
  return true;
}

// The message of the std::invalid_argument parse_quota(spec) throws; fails the test if it
// throws none.
std::string error_of(std::string_view spec) {
  try {
    const quota q = parse_quota(spec);
    ADD_FAILURE() << "\"" << spec << "\" parsed as " << ratelimit::to_string(q);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

// parse_quota(spec) throws, with a message that quotes the whole spec and contains `part`.
testing::AssertionResult error_contains(std::string_view spec, std::string_view part) {
  const std::string what = error_of(spec);
  const std::string prefix = "ratelimit::parse_quota: \"" + std::string{spec} + "\": ";
  if (plain(spec) && !what.starts_with(prefix)) {
    return testing::AssertionFailure() << "message: " << what << "\ndoes not start with " << prefix;
  }
  if (what.find(part) == std::string::npos) {
    return testing::AssertionFailure() << "message: " << what << "\ndoes not contain " << part;
  }
  return testing::AssertionSuccess();
}

// Accepted forms

TEST(ParseQuota, LimitSlashUnit) { EXPECT_EQ(parsed("100/s"), std::make_tuple(100, second, 100)); }

TEST(ParseQuota, LimitSlashUnitBurst) {
  EXPECT_EQ(parsed("1000/min burst 50"), std::make_tuple(1000, minute, 50));
}

TEST(ParseQuota, Hours) { EXPECT_EQ(parsed("5000/h"), std::make_tuple(5000, hour, 5000)); }

TEST(ParseQuota, LimitPerCountUnit) {
  EXPECT_EQ(parsed("10 per 2s"), std::make_tuple(10, 2 * second, 10));
}

TEST(ParseQuota, LimitPerUnit) { EXPECT_EQ(parsed("10 per s"), std::make_tuple(10, second, 10)); }

TEST(ParseQuota, LimitSlashCountUnit) {
  EXPECT_EQ(parsed("10/2s"), std::make_tuple(10, 2 * second, 10));
}

TEST(ParseQuota, PerFormTakesABurst) {
  EXPECT_EQ(parsed("10 per 2s burst 3"), std::make_tuple(10, 2 * second, 3));
}

TEST(ParseQuota, CountAndUnitMayBeSeparatedBySpaces) {
  EXPECT_EQ(parsed("10 per 2 s"), std::make_tuple(10, 2 * second, 10));
  EXPECT_EQ(parsed("10/2 s"), std::make_tuple(10, 2 * second, 10));
  EXPECT_EQ(parsed("10/2\t \tseconds"), std::make_tuple(10, 2 * second, 10));
}

TEST(ParseQuota, SpacesAroundTheSlashAreAllowed) {
  EXPECT_EQ(parsed("10 / s"), std::make_tuple(10, second, 10));
  EXPECT_EQ(parsed("10 /s"), std::make_tuple(10, second, 10));
  EXPECT_EQ(parsed("10/ s"), std::make_tuple(10, second, 10));
  EXPECT_EQ(parsed("10\t/\t2 s"), std::make_tuple(10, 2 * second, 10));
}

TEST(ParseQuota, SurroundingSpacesAndTabsAreIgnored) {
  EXPECT_EQ(parsed("  100/s  "), std::make_tuple(100, second, 100));
  EXPECT_EQ(parsed("\t100/s\t"), std::make_tuple(100, second, 100));
  EXPECT_EQ(parsed(" \t100/s burst 5 \t"), std::make_tuple(100, second, 5));
}

TEST(ParseQuota, SeparatorsMayBeSeveralSpacesAndTabs) {
  EXPECT_EQ(parsed("10  per\t\t2s \t burst\t 5"), std::make_tuple(10, 2 * second, 5));
}

TEST(ParseQuota, EveryUnitName) {
  const std::vector<std::pair<std::string, std::int64_t>> units = {
      {"ns", 1},       {"us", 1'000},      {"ms", 1'000'000},   {"s", second},
      {"sec", second}, {"second", second}, {"seconds", second}, {"m", minute},
      {"min", minute}, {"minute", minute}, {"minutes", minute}, {"h", hour},
      {"hr", hour},    {"hour", hour},     {"hours", hour},     {"d", day},
      {"day", day},    {"days", day},
  };
  for (const auto& [name, nanoseconds] : units) {
    SCOPED_TRACE(name);
    EXPECT_EQ(parsed("7/" + name), std::make_tuple(7, nanoseconds, 7));
    EXPECT_EQ(parsed("7 per " + name), std::make_tuple(7, nanoseconds, 7));
    EXPECT_EQ(parsed("7 per 3" + name), std::make_tuple(7, 3 * nanoseconds, 7));
    EXPECT_EQ(parsed("7/3 " + name + " burst 2"), std::make_tuple(7, 3 * nanoseconds, 2));
  }
}

TEST(ParseQuota, BurstMayEqualOrExceedTheLimit) {
  EXPECT_EQ(parsed("10/s burst 10"), std::make_tuple(10, second, 10));
  EXPECT_EQ(parsed("10/s burst 20"), std::make_tuple(10, second, 20));
}

TEST(ParseQuota, LargestLimitAndBurstAreAccepted) {
  EXPECT_EQ(parsed("4611686018427387904/ns burst 4611686018427387904"),
            std::make_tuple(max_units, 1, max_units));
}

TEST(ParseQuota, LongestPeriodIsAccepted) {
  EXPECT_EQ(parsed("1/9223372036854775807ns"), std::make_tuple(1, int64_max, 1));
  EXPECT_EQ(parsed("1 per 106751d"), std::make_tuple(1, 106751 * day, 1));
  EXPECT_EQ(parsed("1 per 2562047h"), std::make_tuple(1, 2562047 * hour, 1));
}

TEST(ParseQuota, TheResultIsTheNamedConstructorsQuota) {
  EXPECT_EQ(parse_quota("100/s"), quota::per_second(100));
  EXPECT_EQ(parse_quota("1000/min burst 50"), quota::per_minute(1000).with_burst(50));
  EXPECT_EQ(parse_quota("5000/h"), quota::per_hour(5000));
  EXPECT_EQ(parse_quota("10 per 2s"), quota::per(10, 2s));
}

TEST(ParseQuota, TakesAStringViewThatIsNotNulTerminated) {
  const std::string_view spec = "100/s burst 5"sv.substr(0, 5);
  EXPECT_EQ(parsed(spec), std::make_tuple(100, second, 100));
}

// Errors: each names the text at fault

TEST(ParseQuotaError, EmptySpec) {
  EXPECT_EQ(error_of(""), R"(ratelimit::parse_quota: "": empty spec (expected e.g. "100/s", )"
                          R"("1000/min burst 50" or "10 per 2s"))");
}

TEST(ParseQuotaError, WhitespaceOnly) {
  EXPECT_TRUE(error_contains(" \t ", R"(" \t ": empty spec)"));
}

TEST(ParseQuotaError, ZeroLimit) {
  EXPECT_TRUE(error_contains("0/s", R"(limit must be > 0 (got "0"))"));
  EXPECT_TRUE(error_contains("000/s", R"(limit must be > 0 (got "000"))"));
}

TEST(ParseQuotaError, NegativeLimit) {
  EXPECT_TRUE(error_contains("-1/s", R"(limit must be a positive integer (got "-1"))"));
}

TEST(ParseQuotaError, PlusSign) {
  EXPECT_TRUE(error_contains("+5/s", R"(limit must be a positive integer (got "+5"))"));
}

TEST(ParseQuotaError, DecimalPoint) {
  EXPECT_TRUE(error_contains("1.5/s", R"(limit must be a positive integer (got "1.5"))"));
}

TEST(ParseQuotaError, Exponent) {
  EXPECT_TRUE(error_contains("1e3/s", R"(limit must be a positive integer (got "1e3"))"));
}

TEST(ParseQuotaError, DigitSeparators) {
  EXPECT_TRUE(error_contains("1_000/s", R"((got "1_000"))"));
  EXPECT_TRUE(error_contains("1,000/s", R"((got "1,000"))"));
  EXPECT_TRUE(error_contains("1'000/s", R"((got "1'000"))"));
}

TEST(ParseQuotaError, LeadingZero) {
  EXPECT_TRUE(error_contains("010/s", R"(limit has a leading zero (got "010"))"));
  EXPECT_TRUE(error_contains("10/s burst 05", R"(burst has a leading zero (got "05"))"));
  EXPECT_TRUE(error_contains("10/02s", R"(period has a leading zero (got "02s"))"));
}

TEST(ParseQuotaError, MissingLimit) {
  EXPECT_TRUE(error_contains("/s", R"(limit must be a positive integer (got "/s"))"));
}

TEST(ParseQuotaError, LimitAlone) {
  EXPECT_TRUE(error_contains("10", "missing period after the limit"));
  EXPECT_TRUE(error_contains("10  ", "missing period after the limit"));
}

TEST(ParseQuotaError, SlashWithoutUnit) {
  EXPECT_TRUE(error_contains("10/", R"(missing period after "/")"));
  EXPECT_TRUE(error_contains("10/ ", R"(missing period after "/")"));
}

TEST(ParseQuotaError, PerWithoutUnit) {
  EXPECT_TRUE(error_contains("10 per", R"(missing period after "per")"));
  EXPECT_TRUE(error_contains("10 per  ", R"(missing period after "per")"));
}

TEST(ParseQuotaError, CountWithoutUnit) {
  EXPECT_TRUE(error_contains("10/2", R"(missing unit after "2")"));
  EXPECT_TRUE(error_contains("10 per 2 ", R"(missing unit after "2")"));
}

TEST(ParseQuotaError, ZeroPeriod) {
  EXPECT_TRUE(error_contains("10/0s", R"(period must be > 0 (got "0s"))"));
  EXPECT_TRUE(error_contains("10 per 0 min", R"(period must be > 0 (got "0 min"))"));
}

TEST(ParseQuotaError, FractionalPeriod) {
  EXPECT_TRUE(error_contains("10/1.5s", R"(expected a unit after "1", got ".5s")"));
}

TEST(ParseQuotaError, DoubleSlash) {
  EXPECT_TRUE(error_contains("10//s", R"(expected a unit after "/", got "/s")"));
}

TEST(ParseQuotaError, SecondPeriod) {
  EXPECT_TRUE(error_contains("10/s/s", R"(unexpected "/s" after the period)"));
}

TEST(ParseQuotaError, BurstWithoutValue) {
  EXPECT_TRUE(error_contains("10/s burst", R"(missing burst after "burst")"));
  EXPECT_TRUE(error_contains("10/s burst  ", R"(missing burst after "burst")"));
}

TEST(ParseQuotaError, ZeroBurst) {
  EXPECT_TRUE(error_contains("10/s burst 0", R"(burst must be > 0 (got "0"))"));
}

TEST(ParseQuotaError, NegativeBurst) {
  EXPECT_TRUE(error_contains("10/s burst -1", R"(burst must be a positive integer (got "-1"))"));
}

TEST(ParseQuotaError, NonNumericBurst) {
  EXPECT_TRUE(error_contains("10/s burst x", R"(burst must be a positive integer (got "x"))"));
}

TEST(ParseQuotaError, UnknownWordAfterThePeriod) {
  EXPECT_TRUE(error_contains(
      "10/s extra", R"(unexpected "extra" after the period (expected " burst <n>" or the end))"));
}

TEST(ParseQuotaError, TrailingGarbage) {
  EXPECT_TRUE(error_contains("10/s burst 5 x", R"(unexpected "x" after the burst)"));
  EXPECT_TRUE(error_contains("10/s burst 5/s", R"(unexpected "/s" after the burst)"));
  EXPECT_TRUE(error_contains("10/s5", R"(unexpected "5" after the period)"));
  EXPECT_TRUE(error_contains("10/s.", R"(unexpected "." after the period)"));
}

TEST(ParseQuotaError, UnknownUnit) {
  EXPECT_EQ(error_of("100/fortnight"),
            R"(ratelimit::parse_quota: "100/fortnight": unknown unit "fortnight" )"
            R"((expected ns, us, ms, s, min, h, d))");
  EXPECT_TRUE(error_contains("10 per 2 weeks", R"(unknown unit "weeks")"));
}

TEST(ParseQuotaError, UnitsAreLowerCase) {
  EXPECT_TRUE(error_contains("10/S", R"(unknown unit "S" (expected ns, us, ms, s, min, h, d; )"
                                     R"(units are lower-case))"));
  EXPECT_TRUE(error_contains("10/Min", R"(unknown unit "Min")"));
  EXPECT_TRUE(error_contains("10/MS", R"(unknown unit "MS")"));
  EXPECT_TRUE(error_contains("10/M", "units are lower-case"));
}

TEST(ParseQuotaError, KeywordsAreLowerCase) {
  EXPECT_TRUE(error_contains("10 PER s", R"(expected "/" or " per " after the limit, got "PER")"));
  EXPECT_TRUE(error_contains("10/s BURST 5", R"(unexpected "BURST" after the period)"));
}

TEST(ParseQuotaError, KeywordsAreWholeWords) {
  EXPECT_TRUE(error_contains("10per s", R"(limit must be a positive integer (got "10per"))"));
  EXPECT_TRUE(error_contains("10 per2s", R"(got "per2s")"));
  EXPECT_TRUE(error_contains("10 per/s", R"(got "per/s")"));
  EXPECT_TRUE(error_contains("10/s burst5", R"(unexpected "burst5" after the period)"));
  EXPECT_TRUE(error_contains("10/sburst 5", R"(unknown unit "sburst")"));
}

TEST(ParseQuotaError, MissingSeparator) {
  EXPECT_TRUE(error_contains("100s", R"(limit must be a positive integer (got "100s"))"));
  EXPECT_TRUE(error_contains("100 s", R"(expected "/" or " per " after the limit, got "s")"));
}

TEST(ParseQuotaError, LimitBeyondInt64) {
  EXPECT_TRUE(error_contains("99999999999999999999/s",
                             R"(limit must be <= 2^62 (got "99999999999999999999"))"));
}

TEST(ParseQuotaError, LimitJustAboveTheMaximum) {
  EXPECT_TRUE(error_contains("4611686018427387905/s",
                             R"(limit must be <= 2^62 (got "4611686018427387905"))"));
}

TEST(ParseQuotaError, BurstBeyondInt64) {
  EXPECT_TRUE(error_contains("10/s burst 18446744073709551616",
                             R"(burst must be <= 2^62 (got "18446744073709551616"))"));
}

TEST(ParseQuotaError, PeriodOverflow) {
  EXPECT_TRUE(error_contains("1 per 999999999999d",
                             R"(period "999999999999d" is too long (at most 106751d))"));
}

TEST(ParseQuotaError, PeriodOneUnitTooLong) {
  EXPECT_TRUE(error_contains("1 per 106752 days", R"(period "106752 days" is too long)"));
  EXPECT_TRUE(error_contains("1/9223372036854775808ns",
                             R"(period "9223372036854775808ns" is too long )"
                             R"((at most 9223372036854775807ns))"));
}

TEST(ParseQuotaError, PeriodCountBeyondUint64) {
  EXPECT_TRUE(error_contains("1/99999999999999999999999us",
                             R"(period "99999999999999999999999us" is too long)"));
}

TEST(ParseQuotaError, NulByteInside) {
  EXPECT_EQ(error_of("10/s\0 burst 5"sv),
            R"(ratelimit::parse_quota: "10/s\x00 burst 5": unexpected "\x00" after the period )"
            R"((expected " burst <n>" or the end))");
  EXPECT_EQ(error_of("1\0"
                     "0/s"sv),
            R"(ratelimit::parse_quota: "1\x000/s": limit must be a positive integer )"
            R"((got "1\x000"))");
}

TEST(ParseQuotaError, NewlineIsNotWhitespace) {
  EXPECT_EQ(error_of("10/s\n"),
            R"(ratelimit::parse_quota: "10/s\n": unexpected "\n" after the period )"
            R"((expected " burst <n>" or the end))");
}

TEST(ParseQuotaError, QuotesAndBackslashesAreEscaped) {
  EXPECT_EQ(error_of(R"(10/"s\)"),
            R"(ratelimit::parse_quota: "10/\"s\\": expected a unit after "/", got "\"s\\")");
}

TEST(ParseQuotaError, NonAsciiUnit) {
  EXPECT_TRUE(error_contains("10/\u00b5s", "got \"\u00b5s\""));
}

TEST(ParseQuotaError, TheFirstProblemIsReported) {
  EXPECT_TRUE(error_contains("0/fortnight burst 0", R"(limit must be > 0 (got "0"))"));
  EXPECT_TRUE(error_contains("1/0fortnight burst 0", R"(period must be > 0 (got "0fortnight"))"));
}

// to_string

TEST(QuotaToString, ExamplesFromTheIssue) {
  EXPECT_EQ(ratelimit::to_string(quota::per(10, 2s)), "10 per 2s");
  EXPECT_EQ(ratelimit::to_string(quota::per_minute(1000).with_burst(50)), "1000/min burst 50");
}

TEST(QuotaToString, ChoosesTheLargestUnitThatDividesThePeriod) {
  EXPECT_EQ(ratelimit::to_string(quota::per(3, 1ns)), "3/ns");
  EXPECT_EQ(ratelimit::to_string(quota::per(3, 1001ns)), "3 per 1001ns");
  EXPECT_EQ(ratelimit::to_string(quota::per(3, 1us)), "3/us");
  EXPECT_EQ(ratelimit::to_string(quota::per(3, 1000us)), "3/ms");
  EXPECT_EQ(ratelimit::to_string(quota::per(3, 1500ms)), "3 per 1500ms");
  EXPECT_EQ(ratelimit::to_string(quota::per_second(3)), "3/s");
  EXPECT_EQ(ratelimit::to_string(quota::per(3, 90s)), "3 per 90s");
  EXPECT_EQ(ratelimit::to_string(quota::per(3, 120s)), "3 per 2min");
  EXPECT_EQ(ratelimit::to_string(quota::per(3, 90min)), "3 per 90min");
  EXPECT_EQ(ratelimit::to_string(quota::per_hour(3)), "3/h");
  EXPECT_EQ(ratelimit::to_string(quota::per(3, 25h)), "3 per 25h");
  EXPECT_EQ(ratelimit::to_string(quota::per(3, 24h)), "3/d");
  EXPECT_EQ(ratelimit::to_string(quota::per(3, 168h)), "3 per 7d");
  EXPECT_EQ(ratelimit::to_string(quota::per(3, std::chrono::nanoseconds::max())),
            "3 per 9223372036854775807ns");
}

TEST(QuotaToString, OmitsABurstEqualToTheLimit) {
  EXPECT_EQ(ratelimit::to_string(quota::per_second(10).with_burst(10)), "10/s");
}

TEST(QuotaToString, WritesABurstBelowOrAboveTheLimit) {
  EXPECT_EQ(ratelimit::to_string(quota::per_second(10).with_burst(1)), "10/s burst 1");
  EXPECT_EQ(ratelimit::to_string(quota::per_second(10).with_burst(max_units)),
            "10/s burst 4611686018427387904");
}

TEST(QuotaToString, CanonicalisesAParsedSpec) {
  EXPECT_EQ(ratelimit::to_string(parse_quota("  10 per 2 seconds ")), "10 per 2s");
  EXPECT_EQ(ratelimit::to_string(parse_quota("1000/minute burst 1000")), "1000/min");
  EXPECT_EQ(ratelimit::to_string(parse_quota("60 per 60 sec")), "60/min");
  EXPECT_EQ(ratelimit::to_string(parse_quota("5/1 hr")), "5/h");
  EXPECT_EQ(ratelimit::to_string(parse_quota("5 per 1440m")), "5/d");
}

TEST(QuotaToString, AnInvalidQuotaThrowsAsValidatedDoes) {
  try {
    (void)ratelimit::to_string(quota{});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "ratelimit::quota: limit must be > 0 (got 0)");
  }
}

TEST(QuotaToString, RoundTripsThroughParseQuota) {
  const std::vector<std::int64_t> limits = {1, 7, 100, 1000, 999'999'937, max_units};
  const std::vector<std::chrono::nanoseconds> periods = {1ns,
                                                         999ns,
                                                         1us,
                                                         1001us,
                                                         1ms,
                                                         1500ms,
                                                         1s,
                                                         59s,
                                                         60s,
                                                         61s,
                                                         90min,
                                                         1h,
                                                         24h,
                                                         25h,
                                                         168h,
                                                         std::chrono::nanoseconds{106751 * day},
                                                         std::chrono::nanoseconds::max()};
  int checked = 0;
  for (const std::int64_t limit : limits) {
    for (const std::chrono::nanoseconds period : periods) {
      for (const std::int64_t burst : {std::int64_t{1}, limit, limit + 1, max_units}) {
        if (burst > max_units) continue;
        const quota q = quota::per(limit, period).with_burst(burst);
        const std::string spec = ratelimit::to_string(q);
        SCOPED_TRACE(spec);
        EXPECT_EQ(fields(parse_quota(spec)), fields(q));
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 6 * 17 * 4 - 17);
}

}  // namespace
