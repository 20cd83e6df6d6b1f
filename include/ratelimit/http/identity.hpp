#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ratelimit/http/ip_address.hpp"

namespace ratelimit::http {

/// Where a client_key came from.
enum class identity_source {
  api_key,        ///< the API key header
  peer,           ///< the address of the connection's other end
  forwarded_for,  ///< an X-Forwarded-For entry, vouched for by trusted proxies
};

/// The key to limit a client on: `value()` goes to try_acquire. "key:" and the API key, or
/// "ip:" and the client's address block in canonical text: "ip:192.0.2.7",
/// "ip:2001:db8:1:2::/64". The prefixes keep an API key from ever equalling an address
/// key. Holds its bytes inline: a value type that never allocates.
class client_key {
 public:
  /// Longer API keys are ignored (see client_identity::identify).
  static constexpr std::size_t max_api_key_length = 256;

  std::string_view value() const noexcept { return {bytes_.data(), size_}; }
  identity_source source() const noexcept { return source_; }

 private:
  friend class client_identity;

  client_key(identity_source source, std::string_view prefix, std::string_view rest) noexcept
      : size_{prefix.size() + rest.size()}, source_{source} {
    std::copy(prefix.begin(), prefix.end(), bytes_.begin());
    std::copy(rest.begin(), rest.end(),
              bytes_.begin() + static_cast<std::ptrdiff_t>(prefix.size()));
  }

  std::array<char, 4 + max_api_key_length> bytes_{};
  std::size_t size_;
  identity_source source_;
};

/// How client_identity groups addresses and whom it believes.
struct identity_options {
  /// The proxies in front of this server whose X-Forwarded-For entries are believed: blocks
  /// ("10.0.0.0/8", "2001:db8::/48") or single addresses ("192.0.2.1", "::1"), as
  /// ip_network::parse reads them. Empty: X-Forwarded-For is never read.
  std::vector<std::string> trusted_proxies{};
  /// IPv4 clients in one block of this prefix share a key: 32 (the default) keys each
  /// address alone; 24 puts a /24 in one bucket. 1 to 32.
  int ipv4_prefix = 32;
  /// IPv6 clients in one block of this prefix share a key. 64 by default, because one
  /// host usually holds a whole /64 and can pick a fresh address in it for every request.
  /// 1 to 128.
  int ipv6_prefix = 64;
};

/// Which key a request is limited on, independent of any HTTP library. Give it the request's
/// API key header, the peer address and the X-Forwarded-For header, as text:
///
/// 1. A non-empty API key (trimmed of spaces and tabs, at most 256 bytes) gives
///    "key:<api key>". Pass it only once it is verified, or an unverified key lets a
///    client mint a fresh bucket per request. A longer key is ignored, as if absent.
/// 2. Otherwise the client's address gives "ip:<block>": the peer, unless the peer is a
///    trusted proxy and X-Forwarded-For is present. Then the entries are read right to
///    left, each one added by the hop to its right; trusted proxies are skipped, and the
///    first address that is not a trusted proxy is the client. Entries further left were
///    written by the client itself and are never read. If every entry is a trusted proxy,
///    the leftmost is the client.
///
/// The result is std::nullopt, "unidentified", when the address can't be known: the peer
/// is not an address, or an X-Forwarded-For entry read before finding the client is not
/// one ("unknown", an obfuscated name, garbage). A key for such requests would put every
/// one of them in one bucket, so the caller must decide; the usual answers are to reject
/// the request with 400, or to limit them on a separate, strict quota under a key of the
/// caller's choosing ("unidentified"), knowing they share it.
///
/// Address text may be a bare IPv4 or IPv6 address (see ip_address::parse), with around
/// it, as peers and proxies write them: spaces and tabs; "[IPv6]" and "[IPv6]:port";
/// "IPv4:port"; an IPv6 zone ("fe80::1%eth0"), which is dropped. Textual variants of one
/// address give one key: zero compression, case, leading zeros in IPv6 groups,
/// ::ffff:a.b.c.d for IPv4. IPv4 parts with leading zeros are refused (octal to some
/// parsers). Several X-Forwarded-For headers must be joined with "," in order; empty list
/// elements are skipped. The Forwarded header (RFC 7239) is not read.
///
/// Thread-safe: identify() is const, allocates nothing and never throws.
class client_identity {
 public:
  /// Trusts no proxy; IPv4 by /32, IPv6 by /64.
  client_identity() : client_identity(identity_options{}) {}

  /// Throws std::invalid_argument naming the bad entry: a trusted proxy ip_network::parse
  /// refuses, or one covering every IPv4 or every IPv6 address (any client could then pick
  /// its own key); a prefix length out of range.
  explicit client_identity(identity_options options)
      : ipv4_prefix_{options.ipv4_prefix}, ipv6_prefix_{options.ipv6_prefix} {
    if (ipv4_prefix_ < 1 || ipv4_prefix_ > 32) {
      fail("ipv4_prefix must be 1 to 32 (got " + std::to_string(ipv4_prefix_) + ")");
    }
    if (ipv6_prefix_ < 1 || ipv6_prefix_ > 128) {
      fail("ipv6_prefix must be 1 to 128 (got " + std::to_string(ipv6_prefix_) + ")");
    }
    trusted_.reserve(options.trusted_proxies.size());
    for (std::size_t i = 0; i < options.trusted_proxies.size(); ++i) {
      const std::string& text = options.trusted_proxies[i];
      const std::string entry =
          "trusted_proxies[" + std::to_string(i) + "] " + detail::quota_spec::quoted(text) + ": ";
      try {
        trusted_.push_back(ip_network::parse(text));
      } catch (const std::invalid_argument& e) {
        fail(entry + e.what());
      }
      const ip_network& block = trusted_.back();
      if (covers_family(block, "0.0.0.0", "255.255.255.255") ||
          covers_family(block, "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")) {
        fail(entry + "trusts every address of a family, so any client could choose its key");
      }
    }
  }

  /// The key for a request, or std::nullopt when it has no usable identity (see above).
  /// `api_key` and `forwarded_for` are the header values, std::nullopt if absent; `peer`
  /// is the connection's remote address.
  [[nodiscard]] std::optional<client_key> identify(
      std::optional<std::string_view> api_key, std::string_view peer,
      std::optional<std::string_view> forwarded_for = std::nullopt) const noexcept {
    if (api_key) {
      const std::string_view key = trim(*api_key);
      if (!key.empty() && key.size() <= client_key::max_api_key_length) {
        return client_key{identity_source::api_key, "key:", key};
      }
    }
    const std::optional<ip_address> from = parse_endpoint(peer);
    if (!from) return std::nullopt;
    if (!forwarded_for || !trusts(*from)) return address_key(*from, identity_source::peer);

    // Right to left: each entry is the address the hop to its right saw.
    std::optional<ip_address> client;
    std::string_view rest = *forwarded_for;
    while (!rest.empty()) {
      const std::size_t comma = rest.rfind(',');
      const std::string_view entry =
          trim(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(0, comma);
      if (entry.empty()) continue;
      client = parse_endpoint(entry);
      // A hop we believe wrote something that is not an address: the client is unknown.
      if (!client) return std::nullopt;
      if (!trusts(*client)) break;
    }
    if (!client) return address_key(*from, identity_source::peer);  // only empty elements
    return address_key(*client, identity_source::forwarded_for);
  }

  /// Whether `address` is one of the trusted proxies.
  bool trusts(const ip_address& address) const noexcept {
    return std::any_of(trusted_.begin(), trusted_.end(),
                       [&](const ip_network& n) { return n.contains(address); });
  }

  /// The key of a client at `address`: its block, as identify() writes it.
  client_key address_key(const ip_address& address, identity_source source) const noexcept {
    const int prefix = address.is_v4() ? ipv4_prefix_ : ipv6_prefix_;
    std::array<char, ip_address::max_text_length + 4> text;
    std::size_t size = address.masked(prefix).write(text.data());
    if (prefix < address.bits()) {
      text[size++] = '/';
      if (prefix >= 100) text[size++] = static_cast<char>('0' + prefix / 100);
      if (prefix >= 10) text[size++] = static_cast<char>('0' + prefix / 10 % 10);
      text[size++] = static_cast<char>('0' + prefix % 10);
    }
    return client_key{source, "ip:", {text.data(), size}};
  }

  /// An address as a peer or a proxy writes it (see the class comment), or std::nullopt.
  static std::optional<ip_address> parse_endpoint(std::string_view text) noexcept {
    text = trim(text);
    if (text.starts_with('[')) {
      const std::size_t close = text.find(']');
      if (close == std::string_view::npos) return std::nullopt;
      const std::string_view after = text.substr(close + 1);
      if (!after.empty() && !(after[0] == ':' && is_port(after.substr(1)))) return std::nullopt;
      const std::string_view inside = text.substr(1, close - 1);
      if (inside.find(':') == std::string_view::npos) return std::nullopt;  // "[1.2.3.4]"
      return parse_without_zone(inside);
    }
    const std::size_t colon = text.find(':');
    if (colon != std::string_view::npos && text.find(':', colon + 1) == std::string_view::npos) {
      // One colon: IPv4 and a port. (IPv6 has at least two.)
      if (!is_port(text.substr(colon + 1))) return std::nullopt;
      const std::string_view host = text.substr(0, colon);
      if (host.find('.') == std::string_view::npos) return std::nullopt;
      return ip_address::parse(host);
    }
    return parse_without_zone(text);
  }

 private:
  [[noreturn]] static void fail(const std::string& what) {
    throw std::invalid_argument("ratelimit::http::client_identity: " + what);
  }

  static bool covers_family(const ip_network& block, std::string_view first,
                            std::string_view last) {
    return block.contains(*ip_address::parse(first)) && block.contains(*ip_address::parse(last));
  }

  static constexpr std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  }

  static constexpr bool is_port(std::string_view digits) noexcept {
    if (digits.empty() || digits.size() > 5) return false;
    unsigned value = 0;
    for (const char c : digits) {
      if (c < '0' || c > '9') return false;
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    return value <= 65535;
  }

  // An IPv6 zone ("%eth0", "%25eth0" from a URI) names the local interface: it is dropped.
  static std::optional<ip_address> parse_without_zone(std::string_view text) noexcept {
    const std::size_t percent = text.find('%');
    if (percent == std::string_view::npos) return ip_address::parse(text);
    const std::string_view zone = text.substr(percent + 1);
    const bool zone_ok = !zone.empty() && std::all_of(zone.begin(), zone.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '_' || c == '~' || c == '-';
    });
    const std::string_view address = text.substr(0, percent);
    if (!zone_ok || address.find(':') == std::string_view::npos) return std::nullopt;
    return ip_address::parse(address);
  }

  std::vector<ip_network> trusted_;
  int ipv4_prefix_;
  int ipv6_prefix_;
};

}  // namespace ratelimit::http
