#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>

#include "ratelimit/quota.hpp"

namespace ratelimit {

namespace detail::quota_spec {

struct unit {
  std::string_view name;
  std::int64_t nanoseconds;
};

inline constexpr std::int64_t second = 1'000'000'000;

// Largest first: to_string writes a period in the largest unit that divides it.
inline constexpr unit canonical_units[] = {
    {"d", 86'400 * second},
    {"h", 3'600 * second},
    {"min", 60 * second},
    {"s", second},
    {"ms", 1'000'000},
    {"us", 1'000},
    {"ns", 1},
};

inline constexpr unit unit_names[] = {
    {"ns", 1},
    {"us", 1'000},
    {"ms", 1'000'000},
    {"s", second},
    {"sec", second},
    {"second", second},
    {"seconds", second},
    {"m", 60 * second},
    {"min", 60 * second},
    {"minute", 60 * second},
    {"minutes", 60 * second},
    {"h", 3'600 * second},
    {"hr", 3'600 * second},
    {"hour", 3'600 * second},
    {"hours", 3'600 * second},
    {"d", 86'400 * second},
    {"day", 86'400 * second},
    {"days", 86'400 * second},
};

// The messages say "2^62", as quota's own do.
static_assert(quota::max_units == std::int64_t{1} << 62);

constexpr bool is_space(char c) noexcept { return c == ' ' || c == '\t'; }
constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
constexpr bool is_letter(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

constexpr const unit* find_unit(std::string_view name) noexcept {
  for (const unit& u : unit_names) {
    if (u.name == name) return &u;
  }
  return nullptr;
}

constexpr std::string_view canonical_name(std::int64_t nanoseconds) noexcept {
  for (const unit& u : canonical_units) {
    if (u.nanoseconds == nanoseconds) return u.name;
  }
  return {};
}

// `text` in double quotes. Control bytes, quotes and backslashes are escaped, so that a NUL
// or a newline in a spec shows in the message instead of cutting or breaking it.
inline std::string quoted(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "\"";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (byte < 0x20 || byte == 0x7f) {
      out += "\\x";
      out += hex[byte >> 4];
      out += hex[byte & 0xf];
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

// A decimal digit string as a value, or max + 1 if it is above `max`.
constexpr std::uint64_t value_of(std::string_view digits, std::uint64_t max) noexcept {
  std::uint64_t value = 0;
  for (const char c : digits) {
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (max - digit) / 10) return max + 1;
    value = value * 10 + digit;
  }
  return value;
}

// One pass, left to right; the first problem met is the one reported.
class parser {
 public:
  explicit parser(std::string_view spec) noexcept : spec_{spec} {}

  quota parse() {
    skip_spaces();
    if (at_end()) fail(R"(empty spec (expected e.g. "100/s", "1000/min burst 50" or "10 per 2s"))");
    const std::int64_t limit = units("limit");
    const std::chrono::nanoseconds period = per_period();
    std::int64_t burst = limit;
    if (skip_spaces() > 0 && token() == "burst") {
      pos_ += 5;
      skip_spaces();
      if (at_end()) fail(R"(missing burst after "burst")");
      burst = units("burst");
      skip_spaces();
      if (!at_end()) fail("unexpected " + quoted(token()) + " after the burst");
    } else if (!at_end()) {
      fail("unexpected " + quoted(token()) +
           R"( after the period (expected " burst <n>" or the end))");
    }
    // Every rule of quota's is checked above with the text at fault; this keeps the spec in
    // the message should quota ever gain a rule this parser does not know.
    try {
      return quota::per(limit, period).with_burst(burst);
    } catch (const std::invalid_argument& e) {
      fail(e.what());
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::invalid_argument("ratelimit::parse_quota: " + quoted(spec_) + ": " + what);
  }

  bool at_end() const noexcept { return pos_ == spec_.size(); }

  std::size_t skip_spaces() noexcept {
    const std::size_t start = pos_;
    while (!at_end() && is_space(spec_[pos_])) ++pos_;
    return pos_ - start;
  }

  // From here to the next space or the end: what an error shows as the text at fault.
  std::string_view token() const noexcept {
    std::size_t end = pos_;
    while (end < spec_.size() && !is_space(spec_[end])) ++end;
    return spec_.substr(pos_, end - pos_);
  }

  template <class Predicate>
  std::string_view take_while(Predicate keep) noexcept {
    const std::size_t start = pos_;
    while (!at_end() && keep(spec_[pos_])) ++pos_;
    return spec_.substr(start, pos_ - start);
  }

  // A limit or burst: a whole number token, ending at a space, a '/' or the end.
  std::int64_t units(const std::string& field) {
    const std::string_view text = take_while([](char c) { return !is_space(c) && c != '/'; });
    if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos) {
      fail(field + " must be a positive integer (got " + quoted(text.empty() ? token() : text) +
           ")");
    }
    const std::uint64_t max = quota::max_units;
    const std::uint64_t value = value_of(text, max);
    if (value == 0) fail(field + " must be > 0 (got " + quoted(text) + ")");
    // 010 is 8 in C and in YAML 1.1: a leading zero is ambiguous, so it is refused.
    if (text[0] == '0') fail(field + " has a leading zero (got " + quoted(text) + ")");
    if (value > max) fail(field + " must be <= 2^62 (got " + quoted(text) + ")");
    return static_cast<std::int64_t>(value);
  }

  // After the limit: [spaces] "/" [spaces] span, or spaces "per" spaces span. "per" needs
  // its spaces, as it would otherwise run into the numbers beside it.
  std::chrono::nanoseconds per_period() {
    const std::size_t spaces = skip_spaces();
    if (at_end()) fail(R"(missing period after the limit (expected "/<unit>" or " per <unit>"))");
    if (spec_[pos_] == '/') {
      ++pos_;
      skip_spaces();
      return span(R"("/")");
    }
    if (spaces > 0 && token() == "per") {
      pos_ += 3;
      skip_spaces();
      return span(R"("per")");
    }
    fail(R"(expected "/" or " per " after the limit, got )" + quoted(token()));
  }

  // [count [spaces]] unit
  std::chrono::nanoseconds span(const std::string& after) {
    if (at_end()) fail("missing period after " + after);
    const std::size_t start = pos_;
    const std::string_view count_text = take_while(is_digit);
    if (!count_text.empty()) skip_spaces();
    const std::string_view name = take_while(is_letter);
    const std::string_view text = spec_.substr(start, pos_ - start);
    const std::string before = count_text.empty() ? after : quoted(count_text);
    if (name.empty() && at_end()) fail("missing unit after " + before);
    if (name.empty()) fail("expected a unit after " + before + ", got " + quoted(token()));

    const auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    const std::uint64_t count = count_text.empty() ? 1 : value_of(count_text, max);
    if (count == 0) fail("period must be > 0 (got " + quoted(text) + ")");
    if (count_text.starts_with('0')) {
      fail("period has a leading zero (got " + quoted(text) + ")");
    }
    const unit* u = find_unit(name);
    if (u == nullptr) {
      std::string lower{name};
      for (char& c : lower) c = static_cast<char>(c | 0x20);
      fail("unknown unit " + quoted(name) + " (expected ns, us, ms, s, min, h, d" +
           (find_unit(lower) != nullptr ? "; units are lower-case)" : ")"));
    }
    const std::uint64_t most = max / static_cast<std::uint64_t>(u->nanoseconds);
    if (count > most) {
      fail("period " + quoted(text) + " is too long (at most " + std::to_string(most) +
           std::string{canonical_name(u->nanoseconds)} + ")");
    }
    return std::chrono::nanoseconds{static_cast<std::int64_t>(count) * u->nanoseconds};
  }

  std::string_view spec_;
  std::size_t pos_ = 0;
};

}  // namespace detail::quota_spec

/// Reads a quota as written in a configuration file: "100/s", "1000/min burst 50",
/// "5000/h", "10 per 2s". Anything else throws std::invalid_argument whose message quotes
/// the whole spec, then the part of it at fault:
/// `ratelimit::parse_quota: "100/fortnight": unknown unit "fortnight" (expected ns, us, ms,
/// s, min, h, d)`. Nothing is implied: a zero is an error, never "unlimited".
///
/// | part   | grammar                                          | example          |
/// |--------|--------------------------------------------------|------------------|
/// | spec   | `[ws] limit period [ws "burst" ws burst] [ws]`   | `100/s burst 20` |
/// | period | `[ws] "/" [ws] span` or `ws "per" ws span`       | `/s`, ` per 2s`  |
/// | span   | `[count [ws]] unit`                              | `s`, `2s`, `2 s` |
/// | limit  | decimal digits, 1 to 2^62                        | `100`            |
/// | burst  | decimal digits, 1 to 2^62 (default: the limit)   | `20`             |
/// | count  | decimal digits, count × unit <= 2^63 - 1 ns      | `2`              |
/// | unit   | `ns` `us` `ms`                                   |                  |
/// |        | `s` `sec` `second` `seconds`                     |                  |
/// |        | `m` `min` `minute` `minutes`                     |                  |
/// |        | `h` `hr` `hour` `hours`                          |                  |
/// |        | `d` `day` `days`                                 |                  |
/// | ws     | one or more spaces or tabs                       |                  |
///
/// Numbers have no sign, decimal point, exponent, digit separator or leading zero ("010"
/// is 8 in C and YAML 1.1). Words are lower-case only ("M" reads as month or mega) and
/// whole: "10per s" and "10/sburst 5" are errors. Newlines are not whitespace.
inline quota parse_quota(std::string_view spec) { return detail::quota_spec::parser{spec}.parse(); }

/// The canonical spec of `q`, which parse_quota reads back as `q`: the period in the
/// largest unit that divides it exactly, "/unit" for a count of 1 and " per <count><unit>"
/// otherwise, and " burst <b>" unless the burst equals the limit. `quota::per(10, 2s)` is
/// "10 per 2s", `quota::per_minute(1000).with_burst(50)` "1000/min burst 50". An invalid
/// quota throws std::invalid_argument, as quota::validated() does.
inline std::string to_string(const quota& q) {
  q.validated();
  std::string spec = std::to_string(q.limit);
  for (const detail::quota_spec::unit& u : detail::quota_spec::canonical_units) {
    if (q.period.count() % u.nanoseconds != 0) continue;
    const std::int64_t count = q.period.count() / u.nanoseconds;
    spec += count == 1 ? "/" : " per " + std::to_string(count);
    spec += u.name;
    break;
  }
  if (q.burst != q.limit) spec += " burst " + std::to_string(q.burst);
  return spec;
}

}  // namespace ratelimit
