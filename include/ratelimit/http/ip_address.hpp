#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "ratelimit/quota_spec.hpp"

namespace ratelimit::http {

/// An IPv4 or IPv6 address, held as 16 bytes in network order. An IPv4 address is held as
/// its IPv4-mapped IPv6 form (::ffff:a.b.c.d), so "1.2.3.4" and "::ffff:1.2.3.4" are one
/// address and compare equal. A value type; parsing and formatting never allocate.
class ip_address {
 public:
  using bytes_type = std::array<std::uint8_t, 16>;

  /// The longest text write() produces: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".
  static constexpr std::size_t max_text_length = 39;

  /// Reads one address written as a bare literal, and nothing else; std::nullopt otherwise.
  ///
  /// * IPv4: four decimal parts 0 to 255 separated by dots. A part with a leading zero
  ///   ("010") is refused: inet_aton reads it as octal (8), others as decimal (10), and an
  ///   address two parsers read differently must not become a key or pass a trust check.
  /// * IPv6 (RFC 4291 2.2): eight groups of 1 to 4 hex digits in either case, one "::"
  ///   standing for one or more zero groups, optionally ending in a dotted IPv4 address.
  ///
  /// No whitespace, brackets, port or zone: see client_identity for the forms a request
  /// may carry.
  static std::optional<ip_address> parse(std::string_view text) noexcept {
    ip_address a;
    if (text.find(':') == std::string_view::npos) {
      a.bytes_[10] = a.bytes_[11] = 0xff;
      if (!parse_v4(text, &a.bytes_[12])) return std::nullopt;
    } else if (!parse_v6(text, a.bytes_)) {
      return std::nullopt;
    }
    return a;
  }

  /// Whether this is an IPv4 address (written either way).
  bool is_v4() const noexcept {
    for (std::size_t i = 0; i < 10; ++i) {
      if (bytes_[i] != 0) return false;
    }
    return bytes_[10] == 0xff && bytes_[11] == 0xff;
  }

  /// The address's length in bits in its own family: 32 for IPv4, 128 for IPv6.
  int bits() const noexcept { return is_v4() ? 32 : 128; }

  /// The 16 bytes, IPv4 as ::ffff:a.b.c.d.
  const bytes_type& bytes() const noexcept { return bytes_; }

  /// This address with every bit after the first `prefix` of its own family cleared:
  /// `masked(24)` of 192.0.2.77 is 192.0.2.0, `masked(64)` of 2001:db8::1 is 2001:db8::.
  /// `prefix` is clamped to 0 .. bits().
  ip_address masked(int prefix) const noexcept {
    if (prefix < 0) prefix = 0;
    if (prefix > bits()) prefix = bits();
    ip_address m = *this;
    m.clear_after(prefix + (is_v4() ? 96 : 0));
    return m;
  }

  /// Writes the canonical text to `out`, which holds at least max_text_length chars, and
  /// returns its length. IPv4 as a dotted quad; IPv6 as RFC 5952 4 says: lower case, no
  /// leading zeros, the longest run of two or more zero groups (the first, if tied) as "::".
  std::size_t write(char* out) const noexcept {
    char* p = out;
    if (is_v4()) {
      for (std::size_t i = 12; i < 16; ++i) {
        if (i > 12) *p++ = '.';
        p = write_decimal(p, bytes_[i]);
      }
      return static_cast<std::size_t>(p - out);
    }
    std::array<unsigned, 8> groups{};
    for (std::size_t i = 0; i < 8; ++i) groups[i] = bytes_[2 * i] * 256u + bytes_[2 * i + 1];
    // The longest run of zero groups, if at least two long.
    std::size_t run_start = 8, run_length = 0;
    for (std::size_t i = 0; i < 8;) {
      std::size_t j = i;
      while (j < 8 && groups[j] == 0) ++j;
      if (j - i > run_length && j - i >= 2) {
        run_start = i;
        run_length = j - i;
      }
      i = j == i ? i + 1 : j;
    }
    for (std::size_t i = 0; i < 8; ++i) {
      if (i == run_start) {
        *p++ = ':';
        *p++ = ':';
        i += run_length - 1;
        continue;
      }
      if (i > 0 && i != run_start + run_length) *p++ = ':';
      p = write_hex(p, groups[i]);
    }
    return static_cast<std::size_t>(p - out);
  }

  /// The canonical text, as write() gives it.
  std::string to_string() const {
    std::array<char, max_text_length> text;
    return std::string(text.data(), write(text.data()));
  }

  friend bool operator==(const ip_address&, const ip_address&) = default;

 private:
  friend class ip_network;

  static constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

  static constexpr int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  static bool parse_v4(std::string_view text, std::uint8_t* out) noexcept {
    std::size_t pos = 0;
    for (int part = 0; part < 4; ++part) {
      if (part > 0) {
        if (pos == text.size() || text[pos] != '.') return false;
        ++pos;
      }
      const std::size_t start = pos;
      unsigned value = 0;
      while (pos < text.size() && is_digit(text[pos]) && pos - start < 3) {
        value = value * 10 + static_cast<unsigned>(text[pos] - '0');
        ++pos;
      }
      const std::size_t digits = pos - start;
      if (digits == 0 || value > 255 || (digits > 1 && text[start] == '0')) return false;
      out[part] = static_cast<std::uint8_t>(value);
    }
    return pos == text.size();
  }

  static bool parse_v6(std::string_view text, bytes_type& out) noexcept {
    std::array<unsigned, 8> groups{};
    std::size_t count = 0;
    int gap = -1;  // where "::" stands, in groups; -1 if absent
    std::size_t pos = 0;
    if (text.starts_with("::")) {
      gap = 0;
      pos = 2;
    }
    std::array<std::uint8_t, 4> v4{};
    bool ends_in_v4 = false;
    while (pos < text.size()) {
      const std::string_view rest = text.substr(pos);
      if (rest.find(':') == std::string_view::npos && rest.find('.') != std::string_view::npos) {
        if (count > 6 || !parse_v4(rest, v4.data())) return false;
        ends_in_v4 = true;
        count += 2;
        break;
      }
      if (count == 8) return false;
      unsigned value = 0;
      std::size_t digits = 0;
      while (pos < text.size() && hex_value(text[pos]) >= 0 && digits < 4) {
        value = value * 16 + static_cast<unsigned>(hex_value(text[pos]));
        ++pos;
        ++digits;
      }
      if (digits == 0) return false;
      groups[count++] = value;
      if (pos == text.size()) break;
      if (text[pos] != ':') return false;  // a fifth hex digit, or any other byte
      ++pos;
      if (pos < text.size() && text[pos] == ':') {
        if (gap >= 0) return false;  // a second "::"
        gap = static_cast<int>(count);
        ++pos;
      } else if (pos == text.size()) {
        return false;  // a single trailing ':'
      }
    }
    // Without "::", exactly eight groups; with it, "::" stands for at least one.
    if (gap < 0 ? count != 8 : count > 7) return false;

    const std::size_t hex_groups = ends_in_v4 ? count - 2 : count;
    std::array<unsigned, 8> full{};
    const std::size_t head = gap < 0 ? hex_groups : static_cast<std::size_t>(gap);
    const std::size_t zeros = 8 - count;
    for (std::size_t i = 0; i < hex_groups; ++i) full[i < head ? i : i + zeros] = groups[i];
    for (std::size_t i = 0; i < 8; ++i) {
      out[2 * i] = static_cast<std::uint8_t>(full[i] >> 8);
      out[2 * i + 1] = static_cast<std::uint8_t>(full[i] & 0xff);
    }
    if (ends_in_v4) {
      for (std::size_t i = 0; i < 4; ++i) out[12 + i] = v4[i];
    }
    return true;
  }

  static char* write_decimal(char* p, unsigned value) noexcept {
    if (value >= 100) *p++ = static_cast<char>('0' + value / 100);
    if (value >= 10) *p++ = static_cast<char>('0' + value / 10 % 10);
    *p++ = static_cast<char>('0' + value % 10);
    return p;
  }

  static char* write_hex(char* p, unsigned value) noexcept {
    static constexpr char digits[] = "0123456789abcdef";
    bool started = false;
    for (int shift = 12; shift >= 0; shift -= 4) {
      const unsigned digit = (value >> shift) & 0xf;
      if (digit != 0 || started || shift == 0) {
        *p++ = digits[digit];
        started = true;
      }
    }
    return p;
  }

  // Clears every bit after the first `prefix` of the 128.
  void clear_after(int prefix) noexcept {
    for (int i = 0; i < 16; ++i) {
      const int keep = prefix - 8 * i;
      if (keep >= 8) continue;
      bytes_[static_cast<std::size_t>(i)] &=
          keep <= 0 ? std::uint8_t{0} : static_cast<std::uint8_t>(0xff00u >> keep);
    }
  }

  bytes_type bytes_{};
};

/// A block of addresses: an address and a prefix length, as in "10.0.0.0/8" or
/// "2001:db8::/32". Blocks live in the 128-bit space where IPv4 is ::ffff:0:0/96, so
/// "10.0.0.0/8" and "::ffff:10.0.0.0/104" are one block, and "::/0" holds every address.
/// A value type.
class ip_network {
 public:
  /// Reads "address/prefix", or a lone address: a block of that one address. The prefix
  /// counts bits of the address as written: 0 to 32 after an IPv4 address, 0 to 128 after
  /// an IPv6 one. Throws std::invalid_argument quoting `text` and naming its fault: an
  /// address ip_address::parse refuses; a prefix out of range or with a sign, space or
  /// leading zero; or bits set after the prefix ("10.0.0.1/8" is a typo, either for
  /// 10.0.0.1 or for 10.0.0.0/8, so it is refused rather than guessed).
  static ip_network parse(std::string_view text) {
    const std::size_t slash = text.find('/');
    const std::string_view address_text = text.substr(0, slash);
    const std::optional<ip_address> address = ip_address::parse(address_text);
    if (!address) {
      fail(text, "not an IPv4 or IPv6 address: " + detail::quota_spec::quoted(address_text));
    }
    const bool written_as_v4 = address_text.find(':') == std::string_view::npos;
    const int most = written_as_v4 ? 32 : 128;
    const int offset = written_as_v4 ? 96 : 0;
    if (slash == std::string_view::npos) return ip_network{*address, 128};

    const std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3 ||
        digits.find_first_not_of("0123456789") != std::string_view::npos ||
        (digits.size() > 1 && digits[0] == '0')) {
      fail(text, "prefix length must be a number 0 to " + std::to_string(most) + " (got " +
                     detail::quota_spec::quoted(digits) + ")");
    }
    int prefix = 0;
    for (const char c : digits) prefix = prefix * 10 + (c - '0');
    if (prefix > most) {
      fail(text, "prefix length must be 0 to " + std::to_string(most) + " (got " +
                     std::to_string(prefix) + ")");
    }
    ip_address network = *address;
    network.clear_after(prefix + offset);
    if (!(network == *address)) {
      fail(text, "bits are set after the /" + std::to_string(prefix) + " prefix (the block is " +
                     network.to_string() + "/" + std::to_string(prefix) + ")");
    }
    return ip_network{*address, prefix + offset};
  }

  /// Whether `a` lies in this block.
  bool contains(const ip_address& a) const noexcept {
    ip_address m = a;
    m.clear_after(prefix_);
    return m == address_;
  }

  friend bool operator==(const ip_network&, const ip_network&) = default;

 private:
  ip_network(const ip_address& address, int prefix) noexcept : address_{address}, prefix_{prefix} {}

  [[noreturn]] static void fail(std::string_view text, const std::string& what) {
    throw std::invalid_argument("ratelimit::http::ip_network: " + detail::quota_spec::quoted(text) +
                                ": " + what);
  }

  ip_address address_;
  int prefix_;  // of the 128 bits
};

}  // namespace ratelimit::http
