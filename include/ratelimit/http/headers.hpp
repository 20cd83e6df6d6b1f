#pragma once

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

#include "ratelimit/algorithm.hpp"
#include "ratelimit/decision.hpp"
#include "ratelimit/detail/wide_math.hpp"
#include "ratelimit/multi_limiter.hpp"
#include "ratelimit/quota.hpp"
#include "ratelimit/quota_spec.hpp"

/// Response headers from decisions, for any HTTP library: the status, Retry-After, the
/// X-RateLimit-* trio and the IETF RateLimit-Policy and RateLimit fields.
///
/// The IETF fields follow draft-ietf-httpapi-ratelimit-headers-11 (23 May 2026): each field
/// is a Structured Fields List (RFC 9651) of items whose value is the policy name as an
/// sf-string, with parameters q (quota) and w (window, seconds) in RateLimit-Policy and
/// r (available quota) and t (effective window, seconds) in RateLimit:
///
///     RateLimit-Policy: "burst";q=100;w=60, "daily";q=1000;w=86400
///     RateLimit: "burst";r=0;t=30, "daily";r=412;t=52110
namespace ratelimit::http {

/// The status of a rejected request: 429 Too Many Requests (RFC 6585).
inline constexpr int too_many_requests = 429;

/// The field names written, as written.
namespace field_names {
inline constexpr std::string_view retry_after = "Retry-After";
inline constexpr std::string_view x_ratelimit_limit = "X-RateLimit-Limit";
inline constexpr std::string_view x_ratelimit_remaining = "X-RateLimit-Remaining";
inline constexpr std::string_view x_ratelimit_reset = "X-RateLimit-Reset";
inline constexpr std::string_view ratelimit_policy = "RateLimit-Policy";
inline constexpr std::string_view ratelimit = "RateLimit";
}  // namespace field_names

/// A rule's name and window, for the IETF fields: `policy{"burst", quota::per_minute(100)}`
/// writes `"burst";q=100;w=60` (q is the decision's limit). Validated when made, so that
/// writing headers can't fail. A value type that never allocates.
class policy {
 public:
  static constexpr std::size_t max_name_length = 64;

  /// Throws std::invalid_argument naming `name` unless it is 1 to 64 bytes of printable
  /// ASCII (0x20 to 0x7e, what an sf-string holds), or naming `window` unless it is > 0.
  policy(std::string_view name, std::chrono::nanoseconds window) : window_{window} {
    const auto fail = [&](const std::string& what) {
      throw std::invalid_argument("ratelimit::http::policy: name " +
                                  detail::quota_spec::quoted(name) + ": " + what);
    };
    if (name.empty()) fail("must not be empty");
    if (name.size() > max_name_length) {
      fail("must be at most 64 bytes (got " + std::to_string(name.size()) + ")");
    }
    for (std::size_t i = 0; i < name.size(); ++i) {
      const auto byte = static_cast<unsigned char>(name[i]);
      if (byte < 0x20 || byte > 0x7e) {
        fail("byte " + std::to_string(i) + " is not printable ASCII (0x20 to 0x7e)");
      }
    }
    if (window.count() <= 0) {
      throw std::invalid_argument("ratelimit::http::policy: " + detail::quota_spec::quoted(name) +
                                  ": window must be > 0ns (got " + std::to_string(window.count()) +
                                  "ns)");
    }
    // An sf-string: in double quotes, with '"' and '\' escaped by a backslash.
    name_size_ = name.size();
    item_[item_size_++] = '"';
    for (const char c : name) {
      if (c == '"' || c == '\\') item_[item_size_++] = '\\';
      item_[item_size_++] = c;
    }
    item_[item_size_++] = '"';
    std::copy(name.begin(), name.end(), name_.begin());
  }

  /// The window of `q`: its period.
  policy(std::string_view name, const quota& q) : policy(name, q.period) {}

  /// The name as given.
  std::string_view name() const noexcept { return {name_.data(), name_size_}; }
  /// The name as an sf-string, as the fields hold it: `"burst"`.
  std::string_view item() const noexcept { return {item_.data(), item_size_}; }
  std::chrono::nanoseconds window() const noexcept { return window_; }

 private:
  std::array<char, max_name_length> name_{};
  std::array<char, 2 + 2 * max_name_length> item_{};
  std::size_t name_size_ = 0;
  std::size_t item_size_ = 0;
  std::chrono::nanoseconds window_;
};

/// One policy per rule of a multi_limiter, from its names and quotas:
/// `policies_for(limiter.rules())`. Throws as policy does, for the first bad name.
template <algorithm... As>
std::array<policy, sizeof...(As)> policies_for(const std::tuple<rule<As>...>& rules) {
  return std::apply(
      [](const rule<As>&... r) {
        return std::array<policy, sizeof...(As)>{policy{r.name, r.limit}...};
      },
      rules);
}

/// How Reset is written in X-RateLimit-Reset.
enum class reset_format {
  unix_seconds,   ///< the Unix time, in seconds, at which the quota is full again
  delta_seconds,  ///< the seconds from now until then
};

/// Which fields to write, and how.
struct header_options {
  reset_format reset = reset_format::unix_seconds;
  /// X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset.
  bool x_ratelimit = true;
  /// RateLimit-Policy and RateLimit; written only when policies are given.
  bool ietf = true;
};

/// One header: a name and a value of visible ASCII (and, in the IETF fields, spaces).
/// The value is not NUL-terminated.
struct header_field {
  std::string_view name;
  std::string_view value;
};

template <std::size_t Policies>
class rate_limit_headers;

}  // namespace ratelimit::http

namespace ratelimit::detail::http {

inline constexpr std::int64_t nanoseconds_per_second = 1'000'000'000;
// The largest sf-integer (RFC 9651 3.3.1): larger numbers are written as this.
inline constexpr std::int64_t max_sf_integer = 999'999'999'999'999;

// Whole seconds, rounded up; 0 for 0 and below.
constexpr std::int64_t ceil_seconds(std::chrono::nanoseconds d) noexcept {
  const std::int64_t ns = d.count();
  if (ns <= 0) return 0;
  return ns / nanoseconds_per_second + (ns % nanoseconds_per_second != 0 ? 1 : 0);
}

constexpr bool never_passes(const decision& d) noexcept {
  return !d.allowed && d.retry_after == std::chrono::nanoseconds::max();
}

// Retry-After of a rejection that can pass later: rounded up, at least one second, as a
// client retrying earlier would only be rejected again.
constexpr std::int64_t retry_seconds(const decision& d) noexcept {
  return std::max<std::int64_t>(1, ceil_seconds(d.retry_after));
}

// RateLimit's t: until the request could pass when rejected (so that Retry-After, the
// same number, is not earlier than the effective window ends, as the draft asks in 6);
// otherwise until the quota is full again.
constexpr std::int64_t window_seconds(const decision& d) noexcept {
  if (!d.allowed && !never_passes(d)) return retry_seconds(d);
  return ceil_seconds(d.reset_after);
}

// The Unix second at which `now + after` falls, rounded up; 0 before 1970. In 128 bits
// throughout: the whole seconds of an instant before 1677 overflow int64 nanoseconds.
inline std::int64_t unix_seconds(std::chrono::system_clock::time_point now,
                                 std::chrono::nanoseconds after) noexcept {
  using tick = std::chrono::system_clock::period;
  const i128 at =
      i128{now.time_since_epoch().count()} * tick::num * nanoseconds_per_second / tick::den +
      std::max<std::int64_t>(0, after.count());
  return at <= 0 ? 0 : saturate((at + nanoseconds_per_second - 1) / nanoseconds_per_second);
}

struct rule_view {
  const decision* d;
  const ratelimit::http::policy* p;
};

struct maker {
  template <std::size_t Policies>
  static ratelimit::http::rate_limit_headers<Policies> make(
      const decision& summary, const rule_view* rules, std::chrono::system_clock::time_point now,
      const ratelimit::http::header_options& options) noexcept {
    return {summary, rules, Policies, now, options};
  }
};

}  // namespace ratelimit::detail::http

namespace ratelimit::http {

/// The headers for one decision (or one multi_decision), computed at once into inline
/// buffers: no allocation, no exception. `Policies` is the number of IETF items it can
/// hold: 0 for a decision alone, 1 with a policy, N for a multi_decision<N>. A value type
/// that refers to nothing, so it can be copied and kept.
///
/// | field                 | written                         | value                          |
/// |-----------------------|---------------------------------|--------------------------------|
/// | Retry-After           | rejected, unless never_passes() | seconds, rounded up, >= 1      |
/// | X-RateLimit-Limit     | `x_ratelimit`                   | `limit`                        |
/// | X-RateLimit-Remaining | `x_ratelimit`                   | `remaining`, >= 0              |
/// | X-RateLimit-Reset     | `x_ratelimit`                   | when full again (`reset`)      |
/// | RateLimit-Policy      | `ietf`, and policies given      | `"burst";q=100;w=60` per rule  |
/// | RateLimit             | `ietf`, and policies given      | `"burst";r=0;t=30` per rule    |
///
/// * X-RateLimit-Reset is `now + reset_after` in Unix seconds, or with
///   reset_format::delta_seconds `reset_after` in seconds; rounded up either way.
/// * A request that can never pass (retry_after == nanoseconds::max(): its cost is above
///   the capacity) gets no Retry-After: no wait would help, and a client honouring one
///   would retry in vain. The status is still 429 and never_passes() says so, for callers
///   who would rather answer 413 or 400.
/// * `t` in RateLimit is, for a rule that rejected the request, the seconds until it would
///   pass (equal to Retry-After, which the draft asks not to end before the effective
///   window); otherwise the seconds until the rule's quota is full again (reset_after),
///   which for the buckets is the longest the client may have to wait for all of it.
/// * `w` is written only when the window is a whole number of seconds: the draft has no
///   sub-second precision, and a rounded window would misstate the rate.
/// * q and r are sf-integers, which stop at 999'999'999'999'999: larger values are written
///   as that. The X-RateLimit-* values are plain decimal, not capped.
/// * In a rejected multi_decision, a rule that would have admitted the request reports the
///   remaining it would have left (as multi_decision does): lower than what it has by the
///   request's cost.
template <std::size_t Policies>
class rate_limit_headers {
 public:
  static constexpr std::size_t max_fields = 6;

  /// Whether the request was rejected.
  bool rejected() const noexcept { return rejected_; }
  /// Whether it was rejected and can never pass as it is (no Retry-After is written).
  bool never_passes() const noexcept { return never_passes_; }
  /// 429 if rejected; otherwise `when_allowed`, the status the caller would send anyway.
  int status(int when_allowed = 200) const noexcept {
    return rejected_ ? too_many_requests : when_allowed;
  }

  std::size_t size() const noexcept { return count_; }
  header_field operator[](std::size_t i) const noexcept {
    return {fields_[i].name, {text_.data() + fields_[i].offset, fields_[i].length}};
  }
  /// The value of the field named `name` (ASCII case-insensitive), if written.
  std::optional<std::string_view> find(std::string_view name) const noexcept {
    for (std::size_t i = 0; i < count_; ++i) {
      const header_field f = (*this)[i];
      if (std::equal(f.name.begin(), f.name.end(), name.begin(), name.end(),
                     [](char a, char b) { return lower(a) == lower(b); })) {
        return f.value;
      }
    }
    return std::nullopt;
  }

  /// Calls `set(name, value)` with two std::string_views for each field, in the order of
  /// the table above: `h.apply([&](auto n, auto v) { res.set(n, v); })`.
  template <class Set>
  void apply(Set&& set) const {
    for (std::size_t i = 0; i < count_; ++i) {
      const header_field f = (*this)[i];
      set(f.name, f.value);
    }
  }

 private:
  friend struct detail::http::maker;

  rate_limit_headers(const decision& summary, const detail::http::rule_view* rules,
                     std::size_t rule_count, std::chrono::system_clock::time_point now,
                     const header_options& options) noexcept {
    using namespace detail::http;
    rejected_ = !summary.allowed;
    never_passes_ = detail::http::never_passes(summary);
    if (rejected_ && !never_passes_) {
      begin(field_names::retry_after);
      number(retry_seconds(summary));
      end();
    }
    if (options.x_ratelimit) {
      begin(field_names::x_ratelimit_limit);
      number(std::max<std::int64_t>(0, summary.limit));
      end();
      begin(field_names::x_ratelimit_remaining);
      number(std::max<std::int64_t>(0, summary.remaining));
      end();
      begin(field_names::x_ratelimit_reset);
      number(options.reset == reset_format::unix_seconds ? unix_seconds(now, summary.reset_after)
                                                         : ceil_seconds(summary.reset_after));
      end();
    }
    if (options.ietf && rule_count > 0) {
      begin(field_names::ratelimit_policy);
      for (std::size_t i = 0; i < rule_count; ++i) {
        if (i > 0) text(", ");
        text(rules[i].p->item());
        text(";q=");
        number(std::clamp<std::int64_t>(rules[i].d->limit, 0, max_sf_integer));
        const std::chrono::nanoseconds window = rules[i].p->window();
        if (window.count() % nanoseconds_per_second == 0) {
          text(";w=");
          number(window.count() / nanoseconds_per_second);
        }
      }
      end();
      begin(field_names::ratelimit);
      for (std::size_t i = 0; i < rule_count; ++i) {
        if (i > 0) text(", ");
        text(rules[i].p->item());
        text(";r=");
        number(std::clamp<std::int64_t>(rules[i].d->remaining, 0, max_sf_integer));
        text(";t=");
        number(window_seconds(*rules[i].d));
      }
      end();
    }
  }

  // Room for: four numbers of at most 20 digits, and per policy two items of at most
  // 130 (the quoted name) + 3 + 15 (an sf-integer) + 3 + 10 (seconds in int64 ns) + 2 (", ").
  static constexpr std::size_t item_capacity = 2 + 2 * policy::max_name_length + 3 + 15 + 3 + 10;
  static constexpr std::size_t capacity = 4 * 20 + Policies * 2 * (item_capacity + 2);

  struct field {
    std::string_view name;
    std::size_t offset;
    std::size_t length;
  };

  static constexpr char lower(char c) noexcept {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  }

  void begin(std::string_view name) noexcept { fields_[count_] = {name, used_, 0}; }
  void end() noexcept {
    fields_[count_].length = used_ - fields_[count_].offset;
    ++count_;
  }
  void text(std::string_view s) noexcept {
    std::copy(s.begin(), s.end(), text_.begin() + static_cast<std::ptrdiff_t>(used_));
    used_ += s.size();
  }
  void number(std::int64_t value) noexcept {
    used_ = static_cast<std::size_t>(
        std::to_chars(text_.data() + used_, text_.data() + text_.size(), value).ptr - text_.data());
  }

  std::array<field, max_fields> fields_{};
  std::array<char, capacity> text_;
  std::size_t count_ = 0;
  std::size_t used_ = 0;
  bool rejected_ = false;
  bool never_passes_ = false;
};

/// Retry-After and X-RateLimit-* for `d`. `now` is the wall clock when the decision was
/// made, for X-RateLimit-Reset in Unix seconds (pass std::chrono::system_clock::now()).
inline rate_limit_headers<0> headers_for(const decision& d,
                                         std::chrono::system_clock::time_point now,
                                         const header_options& options = {}) noexcept {
  return detail::http::maker::make<0>(d, nullptr, now, options);
}

/// Retry-After, X-RateLimit-* and the IETF fields for `d`, decided under policy `p`.
inline rate_limit_headers<1> headers_for(const decision& d, const policy& p,
                                         std::chrono::system_clock::time_point now,
                                         const header_options& options = {}) noexcept {
  const detail::http::rule_view rule{&d, &p};
  return detail::http::maker::make<1>(d, &rule, now, options);
}

/// The headers for a multi_decision: Retry-After and X-RateLimit-* from combined() (the
/// most restrictive rule's numbers, the latest retry), and one IETF item per rule, in the
/// rules' order: `headers_for(m, policies_for(limiter.rules()), now)`, with the policies
/// made once.
template <std::size_t N>
rate_limit_headers<N> headers_for(const multi_decision<N>& m, const std::array<policy, N>& policies,
                                  std::chrono::system_clock::time_point now,
                                  const header_options& options = {}) noexcept {
  std::array<detail::http::rule_view, N> rules;
  for (std::size_t i = 0; i < N; ++i) rules[i] = {&m.rules[i], &policies[i]};
  return detail::http::maker::make<N>(m.combined(), rules.data(), now, options);
}

/// Sets the headers on any response type through `set(name, value)`, called with two
/// std::string_views per field; the arguments after `set` are those of a headers_for
/// overload. Returns the headers, for their status():
///
///     const auto h = ratelimit::http::set_headers(
///         [&](std::string_view name, std::string_view value) { res.set(name, value); },
///         d, policy, std::chrono::system_clock::now());
///     res.result(h.status(res.result()));
template <class Set, class... Args>
requires requires(const Args&... args) { headers_for(args...); }
auto set_headers(Set&& set, const Args&... args) {
  const auto headers = headers_for(args...);
  headers.apply(set);
  return headers;
}

}  // namespace ratelimit::http
