// parse_quota and to_string, fuzzed. The input is a quota spec as a configuration file would
// hold it. Checked, for every input:
//  * parse_quota accepts it iff an independent reading of the grammar documented on
//    parse_quota does, and then returns the same quota;
//  * to_string of what it returns is canonical and reads back as the same quota;
//  * a refusal is std::invalid_argument whose message quotes the whole spec (any other
//    exception escapes and is reported as a crash);
// and, for the valid quota the same bytes make when read as numbers (any_quota), to_string
// reads back as that quota.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <ratelimit/quota.hpp>
#include <ratelimit/quota_spec.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "byte_reader.hpp"
#include "quoted.hpp"

namespace {

using ratelimit::quota;
using ratelimit_fuzz::int64_max;

[[noreturn]] void fail(const std::string& what, std::string_view spec) {
  std::fprintf(stderr, "quota_spec_fuzz: %s\n  spec (%zu bytes): ", what.c_str(), spec.size());
  for (const char c : spec) std::fprintf(stderr, "%02x", static_cast<unsigned char>(c));
  std::fprintf(stderr, "\n");
  std::abort();
}

std::string describe(const quota& q) {
  return "{" + std::to_string(q.limit) + ", " + std::to_string(q.period.count()) + "ns, " +
         std::to_string(q.burst) + "}";
}

// ---------------------------------------------------------------------------------------------
// The grammar, read independently: the spec is cut into runs of digits, letters, blanks
// (spaces and tabs) and single slashes, then matched against
//   spec   = [ws] limit period [ws "burst" ws burst] [ws]
//   period = [ws] "/" [ws] span | ws "per" ws span
//   span   = [count [ws]] unit
// Any other byte refuses the spec.
// ---------------------------------------------------------------------------------------------

enum class kind { digits, letters, blank, slash };

struct token {
  kind k;
  std::string_view text;
};

std::optional<std::vector<token>> tokens(std::string_view spec) {
  std::vector<token> out;
  const auto class_of = [](char c) -> std::optional<kind> {
    if (c >= '0' && c <= '9') return kind::digits;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return kind::letters;
    if (c == ' ' || c == '\t') return kind::blank;
    if (c == '/') return kind::slash;
    return std::nullopt;
  };
  std::size_t i = 0;
  while (i < spec.size()) {
    const std::optional<kind> k = class_of(spec[i]);
    if (!k) return std::nullopt;
    std::size_t j = i + 1;
    if (*k != kind::slash) {
      while (j < spec.size() && class_of(spec[j]) == k) ++j;
    }
    out.push_back({*k, spec.substr(i, j - i)});
    i = j;
  }
  return out;
}

// A whole number without a leading zero, at least 1 and at most `most`.
std::optional<std::int64_t> number(std::string_view digits, std::int64_t most) {
  if (digits.empty() || digits[0] == '0') return std::nullopt;
  __extension__ unsigned __int128 v = 0;
  for (const char c : digits) {
    v = v * 10 + static_cast<unsigned>(c - '0');
    if (v > static_cast<unsigned __int128>(most)) return std::nullopt;
  }
  return static_cast<std::int64_t>(v);
}

std::optional<std::int64_t> unit_nanoseconds(std::string_view name) {
  constexpr std::int64_t s = 1'000'000'000;
  struct named {
    std::string_view name;
    std::int64_t ns;
  };
  static constexpr named units[] = {
      {"ns", 1},          {"us", 1'000},       {"ms", 1'000'000},   {"s", s},
      {"sec", s},         {"second", s},       {"seconds", s},      {"m", 60 * s},
      {"min", 60 * s},    {"minute", 60 * s},  {"minutes", 60 * s}, {"h", 3600 * s},
      {"hr", 3600 * s},   {"hour", 3600 * s},  {"hours", 3600 * s}, {"d", 86400 * s},
      {"day", 86400 * s}, {"days", 86400 * s},
  };
  for (const named& u : units) {
    if (u.name == name) return u.ns;
  }
  return std::nullopt;
}

std::optional<quota> expected(std::string_view spec) {
  const std::optional<std::vector<token>> all = tokens(spec);
  if (!all) return std::nullopt;
  const std::vector<token>& t = *all;
  std::size_t i = 0;
  const auto at = [&](kind k) { return i < t.size() && t[i].k == k; };
  // Blanks, then the word `w`.
  const auto blank_then = [&](std::string_view w) {
    return at(kind::blank) && i + 1 < t.size() && t[i + 1].k == kind::letters && t[i + 1].text == w;
  };

  if (at(kind::blank)) ++i;
  if (!at(kind::digits)) return std::nullopt;
  const std::optional<std::int64_t> limit = number(t[i++].text, quota::max_units);
  if (!limit) return std::nullopt;

  // period
  if (blank_then("per")) {
    i += 2;
    if (!at(kind::blank)) return std::nullopt;
    ++i;
  } else {
    if (at(kind::blank)) ++i;
    if (!at(kind::slash)) return std::nullopt;
    ++i;
    if (at(kind::blank)) ++i;
  }
  // span
  std::int64_t count = 1;
  if (at(kind::digits)) {
    const std::optional<std::int64_t> c = number(t[i++].text, int64_max);
    if (!c) return std::nullopt;
    count = *c;
    if (at(kind::blank)) ++i;
  }
  if (!at(kind::letters)) return std::nullopt;
  const std::optional<std::int64_t> unit = unit_nanoseconds(t[i++].text);
  if (!unit || count > int64_max / *unit) return std::nullopt;

  std::int64_t burst = *limit;
  if (blank_then("burst")) {
    i += 2;
    if (!at(kind::blank)) return std::nullopt;
    ++i;
    if (!at(kind::digits)) return std::nullopt;
    const std::optional<std::int64_t> b = number(t[i++].text, quota::max_units);
    if (!b) return std::nullopt;
    burst = *b;
  }
  if (at(kind::blank)) ++i;
  if (i != t.size()) return std::nullopt;
  return quota{*limit, std::chrono::nanoseconds{count * *unit}, burst};
}

// to_string(q) reads back as q, and is canonical: writing what it reads gives it again.
void check_round_trip(const quota& q, std::string_view context) {
  const std::string written = ratelimit::to_string(q);
  quota back;
  try {
    back = ratelimit::parse_quota(written);
  } catch (const std::invalid_argument& e) {
    fail("to_string(" + describe(q) + ") = \"" + written + "\" does not parse: " + e.what(),
         context);
  }
  if (!(back == q)) {
    fail("to_string(" + describe(q) + ") = \"" + written + "\" reads back as " + describe(back),
         context);
  }
  if (const std::optional<quota> independent = expected(written);
      !independent || !(*independent == q)) {
    fail("to_string(" + describe(q) + ") = \"" + written + "\" is not in the documented grammar",
         context);
  }
  if (ratelimit::to_string(back) != written) fail("to_string is not canonical", context);
}

// A valid quota from the input: the period a count of one of the units to_string writes,
// which is where its choice of unit can go wrong.
quota any_quota(ratelimit_fuzz::byte_reader& in) {
  static constexpr std::int64_t units[] = {
      1, 1'000, 1'000'000, 1'000'000'000, 60'000'000'000, 3'600'000'000'000, 86'400'000'000'000};
  const std::int64_t limit = in.sized(1, quota::max_units);
  const std::int64_t unit = units[in.byte() % 7];
  const std::int64_t count = in.sized(1, int64_max / unit);
  const std::int64_t burst = in.byte() % 2 == 0 ? limit : in.sized(1, quota::max_units);
  return quota{limit, std::chrono::nanoseconds{count * unit}, burst};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view spec(reinterpret_cast<const char*>(data), size);
  const std::optional<quota> want = expected(spec);
  std::optional<quota> got;
  try {
    got = ratelimit::parse_quota(spec);
  } catch (const std::invalid_argument& e) {
    if (!ratelimit_fuzz::quotes(e.what(), "ratelimit::parse_quota: ", spec)) {
      fail(std::string("the message does not quote the spec: ") + e.what(), spec);
    }
  }
  if (got.has_value() != want.has_value()) {
    fail(got ? "accepted a spec outside the grammar, as " + describe(*got)
             : "refused a spec in the grammar, " + describe(*want),
         spec);
  }
  if (got) {
    if (!(*got == *want)) fail("read as " + describe(*got) + ", not " + describe(*want), spec);
    check_round_trip(*got, spec);
  }

  // The same bytes, read as a quota.
  ratelimit_fuzz::byte_reader in(data, size);
  check_round_trip(any_quota(in), spec);
  return 0;
}
