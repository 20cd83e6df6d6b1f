// The HTTP helpers, fuzzed. The first byte picks one of:
//
// 0. client_identity: a configuration (trusted proxies as text, prefix lengths) and a request
//    (API key, peer, X-Forwarded-For, each present or not, any bytes). The constructor throws
//    std::invalid_argument exactly when an independent reading of the documented rules refuses
//    the configuration; identify() never fails, and returns what that reading says, with bare
//    addresses read by the C library's inet_pton. And, on the library alone: a peer that is
//    not a trusted proxy gets the same key whatever X-Forwarded-For says; a client found in
//    X-Forwarded-For keeps its key whatever the client wrote to the left of it.
// 1. headers_for over arbitrary decisions (any int64 in every field), with 0 to 3 policies
//    of any name and window and any options: the fields are exactly those an independent
//    formatter writes from the table on rate_limit_headers; every value is visible ASCII
//    (and spaces, in the IETF fields); Retry-After is >= 1 on a rejection that can pass.
// 2. ip_address::parse and ip_network::parse of any text, against inet_pton; the canonical
//    text reads back as the same address and is the one RFC 5952 asks for.
//
// Input layout: see each mode's reader below, and fuzz/make_corpus.py.

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <ratelimit/http.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "byte_reader.hpp"
#include "quoted.hpp"

namespace {

namespace http = ratelimit::http;
using ratelimit::decision;
using ratelimit_fuzz::byte_reader;
using std::chrono::nanoseconds;

using bytes16 = std::array<std::uint8_t, 16>;

std::string hex(std::string_view s) {
  std::string out;
  char buffer[4];
  for (const char c : s) {
    std::snprintf(buffer, sizeof buffer, "%02x", static_cast<unsigned char>(c));
    out += buffer;
  }
  return out;
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "http_fuzz: %s\n", what.c_str());
  std::abort();
}

// ---------------------------------------------------------------------------------------------
// Addresses, read independently: inet_pton for bare literals, and the forms the documentation
// of client_identity lists around them.
// ---------------------------------------------------------------------------------------------

/// A bare IPv4 (no ':') or IPv6 literal, IPv4 as ::ffff:a.b.c.d.
std::optional<bytes16> bare(std::string_view text) {
  if (text.find('\0') != std::string_view::npos) return std::nullopt;
  const std::string s(text);
  bytes16 b{};
  if (text.find(':') == std::string_view::npos) {
    b[10] = b[11] = 0xff;
    if (inet_pton(AF_INET, s.c_str(), &b[12]) != 1) return std::nullopt;
  } else if (inet_pton(AF_INET6, s.c_str(), b.data()) != 1) {
    return std::nullopt;
  }
  return b;
}

bool is_v4(const bytes16& b) {
  return std::all_of(b.begin(), b.begin() + 10, [](std::uint8_t x) { return x == 0; }) &&
         b[10] == 0xff && b[11] == 0xff;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_port(std::string_view s) {
  if (s.empty() || s.size() > 5) return false;
  if (!std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
  return std::stoi(std::string(s)) <= 65535;
}

/// An IPv6 literal with an optional zone ("%eth0"), which is dropped.
std::optional<bytes16> zoned(std::string_view text) {
  const std::size_t percent = text.find('%');
  if (percent == std::string_view::npos) return bare(text);
  const std::string_view zone = text.substr(percent + 1);
  const std::string_view address = text.substr(0, percent);
  const bool zone_ok = !zone.empty() && std::all_of(zone.begin(), zone.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '~' || c == '-';
  });
  if (!zone_ok || address.find(':') == std::string_view::npos) return std::nullopt;
  return bare(address);
}

/// What a peer or a proxy writes: blanks around; "[IPv6]" or "[IPv6]:port"; "IPv4:port";
/// a bare literal; IPv6 with a zone.
std::optional<bytes16> endpoint(std::string_view text) {
  text = trim(text);
  if (!text.empty() && text[0] == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    const std::string_view after = text.substr(close + 1);
    if (!after.empty() && !(after[0] == ':' && is_port(after.substr(1)))) return std::nullopt;
    const std::string_view inside = text.substr(1, close - 1);
    if (inside.find(':') == std::string_view::npos) return std::nullopt;
    return zoned(inside);
  }
  if (std::count(text.begin(), text.end(), ':') == 1) {
    const std::size_t colon = text.find(':');
    const std::string_view host = text.substr(0, colon);
    if (!is_port(text.substr(colon + 1)) || host.find('.') == std::string_view::npos) {
      return std::nullopt;
    }
    return bare(host);
  }
  return zoned(text);
}

/// `b` with every bit after the first `bits` of the 128 cleared.
bytes16 masked(bytes16 b, int bits) {
  for (int i = 0; i < 16; ++i) {
    const int keep = std::clamp(bits - 8 * i, 0, 8);
    b[static_cast<std::size_t>(i)] &= static_cast<std::uint8_t>(0xff00u >> keep);
  }
  return b;
}

/// RFC 5952: IPv4 as a dotted quad; IPv6 in lower-case hex without leading zeros, the first
/// longest run of two or more zero groups as "::".
std::string canonical(const bytes16& b) {
  char buffer[16];
  std::string out;
  if (is_v4(b)) {
    std::snprintf(buffer, sizeof buffer, "%u.%u.%u.%u", b[12], b[13], b[14], b[15]);
    return buffer;
  }
  unsigned groups[8];
  for (int i = 0; i < 8; ++i)
    groups[i] = b[2 * static_cast<std::size_t>(i)] * 256u + b[2 * static_cast<std::size_t>(i) + 1];
  int best = -1, best_length = 1;
  for (int i = 0; i < 8; ++i) {
    int j = i;
    while (j < 8 && groups[j] == 0) ++j;
    if (j - i > best_length) {
      best = i;
      best_length = j - i;
    }
  }
  for (int i = 0; i < 8; ++i) {
    if (i == best) {
      out += "::";
      i += best_length - 1;
      continue;
    }
    if (i > 0 && i != best + best_length) out += ':';
    std::snprintf(buffer, sizeof buffer, "%x", groups[i]);
    out += buffer;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// 0. client_identity
// ---------------------------------------------------------------------------------------------

struct block {
  bytes16 network;
  int bits;  // of the 128
};

/// A trusted proxy entry as ip_network::parse documents it: "address[/prefix]", the prefix
/// 0 to 32 after IPv4 and 0 to 128 after IPv6, decimal without sign or leading zero, no bits
/// set after it.
std::optional<block> network(std::string_view text) {
  const std::size_t slash = text.find('/');
  const std::string_view address_text = text.substr(0, slash);
  const std::optional<bytes16> address = bare(address_text);
  if (!address) return std::nullopt;
  const bool v4 = address_text.find(':') == std::string_view::npos;
  if (slash == std::string_view::npos) return block{*address, 128};
  const std::string_view digits = text.substr(slash + 1);
  if (digits.empty() || digits.size() > 3 || (digits.size() > 1 && digits[0] == '0') ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  const int prefix = std::stoi(std::string(digits));
  if (prefix > (v4 ? 32 : 128)) return std::nullopt;
  const int bits = prefix + (v4 ? 96 : 0);
  if (masked(*address, bits) != *address) return std::nullopt;
  return block{*address, bits};
}

bool contains(const block& b, const bytes16& a) { return masked(a, b.bits) == b.network; }

struct identity_config {
  http::identity_options options;
  std::vector<block> trusted;
  bool valid = true;
};

identity_config read_config(byte_reader& in) {
  identity_config c;
  c.options.ipv4_prefix = in.byte() % 40;  // 33 to 39 and 0 are refused
  c.options.ipv6_prefix = in.byte() % 140;
  const int proxies = in.byte() % 5;
  for (int i = 0; i < proxies; ++i) c.options.trusted_proxies.emplace_back(in.text());
  c.valid = c.options.ipv4_prefix >= 1 && c.options.ipv4_prefix <= 32 &&
            c.options.ipv6_prefix >= 1 && c.options.ipv6_prefix <= 128;
  for (const std::string& text : c.options.trusted_proxies) {
    const std::optional<block> b = network(text);
    // A block holding every IPv4 or every IPv6 address would let any client choose its key.
    if (!b || b->bits == 0 || (b->bits <= 96 && contains(*b, *bare("0.0.0.0")))) {
      c.valid = false;
    } else {
      c.trusted.push_back(*b);
    }
  }
  return c;
}

/// The elements of a comma-separated header value, trimmed, empty ones dropped.
std::vector<std::string_view> list_elements(std::string_view value) {
  std::vector<std::string_view> elements;
  std::size_t begin = 0;
  for (std::size_t i = 0; i <= value.size(); ++i) {
    if (i < value.size() && value[i] != ',') continue;
    const std::string_view element = trim(value.substr(begin, i - begin));
    if (!element.empty()) elements.push_back(element);
    begin = i + 1;
  }
  return elements;
}

bool trusted_by(const identity_config& c, const bytes16& a) {
  return std::any_of(c.trusted.begin(), c.trusted.end(),
                     [&](const block& b) { return contains(b, a); });
}

struct expected_key {
  std::string value;
  http::identity_source source;
};

/// The key the documented rules give; `all_proxies` says whether X-Forwarded-For was read to
/// its leftmost entry, every entry a trusted proxy.
std::optional<expected_key> expected_identity(const identity_config& c,
                                              std::optional<std::string_view> api_key,
                                              std::string_view peer,
                                              std::optional<std::string_view> forwarded_for,
                                              bool& all_proxies) {
  all_proxies = false;
  if (api_key) {
    const std::string_view key = trim(*api_key);
    if (!key.empty() && key.size() <= 256) {
      return expected_key{"key:" + std::string(key), http::identity_source::api_key};
    }
  }
  const auto trusted = [&](const bytes16& a) { return trusted_by(c, a); };
  const auto key = [&](const bytes16& a, http::identity_source source) {
    const int prefix = is_v4(a) ? c.options.ipv4_prefix : c.options.ipv6_prefix;
    const int bits = is_v4(a) ? 32 : 128;
    std::string text = "ip:" + canonical(masked(a, prefix + 128 - bits));
    if (prefix < bits) text += "/" + std::to_string(prefix);
    return expected_key{text, source};
  };
  const std::optional<bytes16> from = endpoint(peer);
  if (!from) return std::nullopt;
  if (!forwarded_for || !trusted(*from)) return key(*from, http::identity_source::peer);
  // The list's elements, left to right, the empty ones skipped; with none, the peer it is.
  const std::vector<std::string_view> entries = list_elements(*forwarded_for);
  if (entries.empty()) return key(*from, http::identity_source::peer);
  // Read from the right: the first entry that is not a trusted proxy is the client, the
  // leftmost if all are; an entry read before that which is no address makes it unknown.
  for (std::size_t i = entries.size(); i > 0; --i) {
    const std::optional<bytes16> entry = endpoint(entries[i - 1]);
    if (!entry) return std::nullopt;
    if (!trusted(*entry) || i == 1) {
      all_proxies = trusted(*entry);
      return key(*entry, http::identity_source::forwarded_for);
    }
  }
  return std::nullopt;  // not reached: the leftmost entry returns
}

std::string describe(const std::optional<http::client_key>& k) {
  if (!k) return "unidentified";
  return "\"" + std::string(k->value()) + "\" from " +
         std::to_string(static_cast<int>(k->source()));
}

bool same(const std::optional<http::client_key>& a, const std::optional<http::client_key>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || (a->value() == b->value() && a->source() == b->source());
}

void fuzz_identity(byte_reader& in) {
  const identity_config config = read_config(in);
  const std::uint8_t present = in.byte();
  const std::string_view api_text = in.text();
  const std::string_view peer = in.text();
  const std::string_view forwarded_text = in.text();
  const std::optional<std::string_view> api_key =
      present & 1 ? std::optional<std::string_view>(api_text) : std::nullopt;
  const std::optional<std::string_view> forwarded_for =
      present & 2 ? std::optional<std::string_view>(forwarded_text) : std::nullopt;

  std::optional<http::client_identity> identity;
  try {
    identity.emplace(config.options);
  } catch (const std::invalid_argument& e) {
    if (!std::string_view(e.what()).starts_with("ratelimit::http::client_identity: ")) {
      fail(std::string("an error without the class's name: ") + e.what());
    }
  }
  if (identity.has_value() != config.valid) {
    fail(identity ? "accepted a configuration the rules refuse"
                  : "refused a configuration the rules accept");
  }
  if (!identity) return;

  const std::optional<http::client_key> got = identity->identify(api_key, peer, forwarded_for);
  bool all_proxies = false;
  const std::optional<expected_key> want =
      expected_identity(config, api_key, peer, forwarded_for, all_proxies);
  const std::string request = "api key " + (api_key ? hex(*api_key) : "absent") + ", peer " +
                              hex(peer) + ", X-Forwarded-For " +
                              (forwarded_for ? hex(*forwarded_for) : "absent");
  if (got.has_value() != want.has_value() ||
      (got && (got->value() != want->value || got->source() != want->source))) {
    fail("identify gives " + describe(got) + ", the rules " +
         (want ? "\"" + want->value + "\"" : "unidentified") + "; " + request);
  }

  // An untrusted peer's X-Forwarded-For never chooses the key.
  const std::optional<bytes16> from = endpoint(peer);
  if (!(from && trusted_by(config, *from)) &&
      !same(got, identity->identify(api_key, peer, std::nullopt))) {
    fail("an untrusted peer's X-Forwarded-For changed the key; " + request);
  }
  // Nor does anything the client wrote left of the entry that found it.
  if (got && got->source() == http::identity_source::forwarded_for && !all_proxies) {
    const std::string prefixed = "garbage, " + std::string(*forwarded_for);
    const std::optional<http::client_key> again = identity->identify(api_key, peer, prefixed);
    if (!same(got, again)) {
      fail("entries left of the client changed its key: " + describe(again) + "; " + request);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 1. headers_for
// ---------------------------------------------------------------------------------------------

decision read_decision(byte_reader& in) {
  decision d;
  d.allowed = (in.byte() & 1) != 0;
  d.limit = in.signed_value();
  d.remaining = in.signed_value();
  d.retry_after = nanoseconds{in.signed_value()};
  d.reset_after = nanoseconds{in.signed_value()};
  d.delay = nanoseconds{in.signed_value()};
  return d;
}

http::policy read_policy(byte_reader& in) {
  const std::string_view name = in.text();
  const nanoseconds window{in.signed_value()};
  try {
    return http::policy{name, window};
  } catch (const std::invalid_argument& e) {
    if (!std::string_view(e.what()).starts_with("ratelimit::http::policy: ")) {
      fail(std::string("a policy error without the class's name: ") + e.what());
    }
    // The documented rules: 1 to 64 printable ASCII bytes, a window > 0.
    const bool printable = std::all_of(name.begin(), name.end(), [](char c) {
      return static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) <= 0x7e;
    });
    if (!name.empty() && name.size() <= 64 && printable && window.count() > 0) {
      fail("a valid policy was refused: " + hex(name) + " " + std::to_string(window.count()));
    }
    return http::policy{"fallback", std::chrono::seconds{1}};
  }
}

__extension__ typedef __int128 i128;

std::int64_t ceil_seconds(nanoseconds d) {
  if (d.count() <= 0) return 0;
  return static_cast<std::int64_t>((i128{d.count()} + 999'999'999) / 1'000'000'000);
}

std::string sf_string(std::string_view name) {
  std::string out = "\"";
  for (const char c : name) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

using fields = std::vector<std::pair<std::string, std::string>>;

/// The fields as the table on rate_limit_headers describes them.
fields expected_fields(const decision& summary, const std::vector<decision>& rules,
                       const std::vector<http::policy>& policies,
                       std::chrono::system_clock::time_point now,
                       const http::header_options& options) {
  constexpr std::int64_t max_sf = 999'999'999'999'999;
  fields out;
  const bool never = !summary.allowed && summary.retry_after == nanoseconds::max();
  if (!summary.allowed && !never) {
    out.emplace_back("Retry-After",
                     std::to_string(std::max<std::int64_t>(1, ceil_seconds(summary.retry_after))));
  }
  if (options.x_ratelimit) {
    out.emplace_back("X-RateLimit-Limit", std::to_string(std::max<std::int64_t>(0, summary.limit)));
    out.emplace_back("X-RateLimit-Remaining",
                     std::to_string(std::max<std::int64_t>(0, summary.remaining)));
    std::int64_t reset = ceil_seconds(summary.reset_after);
    if (options.reset == http::reset_format::unix_seconds) {
      // now + reset_after in Unix seconds, rounded up; 0 before 1970.
      // In i128: where system_clock counts coarser units (libc++: microseconds), a
      // duration_cast to nanoseconds could overflow.
      using period = std::chrono::system_clock::period;
      const i128 at =
          i128{now.time_since_epoch().count()} * period::num * 1'000'000'000 / period::den +
          std::max<std::int64_t>(0, summary.reset_after.count());
      const i128 seconds = at / 1'000'000'000 + (at % 1'000'000'000 > 0 ? 1 : 0);
      reset = static_cast<std::int64_t>(std::clamp<i128>(seconds, 0, ratelimit_fuzz::int64_max));
    }
    out.emplace_back("X-RateLimit-Reset", std::to_string(reset));
  }
  if (options.ietf && !policies.empty()) {
    std::string policy_field, ratelimit_field;
    for (std::size_t i = 0; i < policies.size(); ++i) {
      const decision& d = rules[i];
      const std::string item = sf_string(policies[i].name());
      if (i > 0) {
        policy_field += ", ";
        ratelimit_field += ", ";
      }
      policy_field += item + ";q=" + std::to_string(std::clamp<std::int64_t>(d.limit, 0, max_sf));
      if (policies[i].window().count() % 1'000'000'000 == 0) {
        policy_field += ";w=" + std::to_string(policies[i].window().count() / 1'000'000'000);
      }
      const bool passes_later = !d.allowed && d.retry_after != nanoseconds::max();
      const std::int64_t t = passes_later ? std::max<std::int64_t>(1, ceil_seconds(d.retry_after))
                                          : ceil_seconds(d.reset_after);
      ratelimit_field += item +
                         ";r=" + std::to_string(std::clamp<std::int64_t>(d.remaining, 0, max_sf)) +
                         ";t=" + std::to_string(t);
    }
    out.emplace_back("RateLimit-Policy", policy_field);
    out.emplace_back("RateLimit", ratelimit_field);
  }
  return out;
}

template <std::size_t N>
void check_headers(const http::rate_limit_headers<N>& h, const decision& summary,
                   const fields& want) {
  fields got;
  h.apply([&](std::string_view name, std::string_view value) {
    got.emplace_back(std::string(name), std::string(value));
  });
  std::string text;
  for (const auto& [name, value] : got) text += "\n  " + name + ": " + value;
  std::string wanted;
  for (const auto& [name, value] : want) wanted += "\n  " + name + ": " + value;
  if (got != want) fail("headers" + text + "\nbut the table says" + wanted);
  if (h.size() != got.size()) fail("size() disagrees with apply()");
  for (const auto& [name, value] : got) {
    const bool ietf = name.starts_with("RateLimit");
    for (const char c : value) {
      const auto byte = static_cast<unsigned char>(c);
      if (byte > 0x7e || byte < 0x20 || (byte == 0x20 && !ietf)) {
        fail("a value that is not visible ASCII:" + text);
      }
    }
    std::string lower = name;
    for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    if (h.find(lower) != std::optional<std::string_view>(value)) fail("find() misses " + name);
  }
  const std::optional<std::string_view> retry = h.find("Retry-After");
  if (!summary.allowed && summary.retry_after != nanoseconds::max() &&
      (!retry || retry->empty() || (*retry)[0] == '0' || (*retry)[0] == '-')) {
    fail("a rejection that can pass without Retry-After >= 1:" + text);
  }
  if (h.rejected() != !summary.allowed || h.status(200) != (summary.allowed ? 200 : 429)) {
    fail("status wrong");
  }
}

template <std::size_t N>
void fuzz_multi(byte_reader& in, std::chrono::system_clock::time_point now,
                const http::header_options& options) {
  ratelimit::multi_decision<N> m;
  m.allowed = (in.byte() & 1) != 0;
  m.most_restrictive = in.byte() % N;
  std::vector<decision> rules;
  for (decision& d : m.rules) {
    d = read_decision(in);
    rules.push_back(d);
  }
  std::vector<http::policy> list;
  for (std::size_t i = 0; i < N; ++i) list.push_back(read_policy(in));
  const auto policies = [&]<std::size_t... I>(std::index_sequence<I...>) {
    return std::array<http::policy, N>{list[I]...};
  }
  (std::make_index_sequence<N>{});
  const decision summary = m.combined();
  check_headers(http::headers_for(m, policies, now, options), summary,
                expected_fields(summary, rules, list, now, options));
}

void fuzz_headers(byte_reader& in) {
  const std::uint8_t shape = in.byte();
  http::header_options options;
  options.reset = shape & 1 ? http::reset_format::delta_seconds : http::reset_format::unix_seconds;
  options.x_ratelimit = (shape & 2) == 0;
  options.ietf = (shape & 4) == 0;
  const std::chrono::system_clock::time_point now{
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          nanoseconds{in.signed_value()})};
  switch (shape / 8 % 4) {
    case 0: {
      const decision d = read_decision(in);
      check_headers(http::headers_for(d, now, options), d,
                    expected_fields(d, {}, {}, now, options));
      break;
    }
    case 1: {
      const decision d = read_decision(in);
      const http::policy p = read_policy(in);
      check_headers(http::headers_for(d, p, now, options), d,
                    expected_fields(d, {d}, {p}, now, options));
      break;
    }
    case 2:
      fuzz_multi<2>(in, now, options);
      break;
    default:
      fuzz_multi<3>(in, now, options);
      break;
  }
}

// ---------------------------------------------------------------------------------------------
// 2. ip_address and ip_network
// ---------------------------------------------------------------------------------------------

void fuzz_addresses(byte_reader& in) {
  const int prefix = in.byte() % 140 - 5;
  const std::string_view text = in.rest();
  const std::optional<http::ip_address> got = http::ip_address::parse(text);
  const std::optional<bytes16> want = bare(text);
  if (got.has_value() != want.has_value() || (got && got->bytes() != *want)) {
    fail("ip_address::parse disagrees with inet_pton on " + hex(text));
  }
  if (got) {
    const std::string written = got->to_string();
    if (written != canonical(*want)) fail("not RFC 5952: " + written + " for " + hex(text));
    if (http::ip_address::parse(written) != got) fail("does not read back: " + written);
    const int bits = got->is_v4() ? 32 : 128;
    if (got->masked(prefix).bytes() != masked(*want, std::clamp(prefix, 0, bits) + 128 - bits)) {
      fail("masked(" + std::to_string(prefix) + ") wrong for " + written);
    }
  }

  std::optional<block> expected_block = network(text);
  try {
    const http::ip_network n = http::ip_network::parse(text);
    if (!expected_block) fail("ip_network::parse accepted " + hex(text));
    // The block holds its own address, and not the address just past it (if any).
    if (!n.contains(*http::ip_address::parse(canonical(expected_block->network)))) {
      fail("a block that does not hold its address: " + hex(text));
    }
    if (got && n.contains(*got) != contains(*expected_block, *want)) fail("contains() wrong");
  } catch (const std::invalid_argument& e) {
    if (expected_block) fail("ip_network::parse refused " + hex(text) + ": " + e.what());
    if (!ratelimit_fuzz::quotes(e.what(), "ratelimit::http::ip_network: ", text)) {
      fail(std::string("the message does not quote the text: ") + e.what());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  byte_reader in(data, size);
  switch (in.byte() % 3) {
    case 0:
      fuzz_identity(in);
      break;
    case 1:
      fuzz_headers(in);
      break;
    default:
      fuzz_addresses(in);
      break;
  }
  return 0;
}
