#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ratelimit/detail/seeded_hash.hpp"

namespace ratelimit::detail::redis {

/// The Redis key of `user_key`'s state: `prefix{tag}name:user_key`, or
/// `prefix{tag}name#2:user_key` for an algorithm's second key.
///
/// The tag, 16 hex digits of a hash of the user key, is all Redis Cluster hashes (it
/// hashes what lies between the first `{` and the next `}`), so the keys of one decision
/// share a slot whatever bytes the user key holds: braces, CR/LF, NUL, none at all. The
/// user key itself follows the algorithm's name and a `:`, which neither a name nor the
/// prefix contains, so two user keys never share a Redis key, even if their tags collide.
/// Written into `out`, whose capacity is reused from call to call.
inline void key_name(std::string& out, std::string_view prefix, std::string_view name, int index,
                     std::string_view user_key) {
  // A fixed seed: every process of the fleet must name a key alike.
  constexpr std::uint64_t fleet_seed = 0x7261'7465'6c69'6d74;  // "ratelimt"
  const std::uint64_t tag = seeded_hash(user_key, fleet_seed);
  static constexpr char digits[] = "0123456789abcdef";
  out.assign(prefix);
  out.push_back('{');
  for (int shift = 60; shift >= 0; shift -= 4) out.push_back(digits[(tag >> shift) & 0xF]);
  out.push_back('}');
  out.append(name);
  if (index > 1) {
    out.push_back('#');
    out.push_back(static_cast<char>('0' + index));
  }
  out.push_back(':');
  out.append(user_key);
}

}  // namespace ratelimit::detail::redis
