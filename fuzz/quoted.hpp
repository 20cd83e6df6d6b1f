#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace ratelimit_fuzz {

/// Reads back text in double quotes as the library's error messages write it, from their
/// documentation: '"' and '\' escaped by a backslash, tab, newline and carriage return as
/// \t \n \r, other control bytes and DEL as \xHH (lower-case hex), every other byte as it
/// is. `quoted` starts at the opening quote; the text and what follows the closing quote,
/// or nothing unless every byte is written in exactly that form (so that each text has one
/// quoted form). A reader rather than a writer: the library writes, the check reads back.
inline std::optional<std::pair<std::string, std::string_view>> unquote(std::string_view quoted) {
  constexpr std::string_view hex = "0123456789abcdef";
  const auto must_escape = [](unsigned char byte) { return byte < 0x20 || byte == 0x7f; };
  if (!quoted.starts_with('"')) return std::nullopt;
  std::string text;
  for (std::size_t i = 1; i < quoted.size(); ++i) {
    const auto byte = static_cast<unsigned char>(quoted[i]);
    if (byte == '"') return std::pair{text, quoted.substr(i + 1)};
    if (byte != '\\') {
      if (must_escape(byte)) return std::nullopt;
      text += static_cast<char>(byte);
      continue;
    }
    if (++i == quoted.size()) return std::nullopt;
    switch (quoted[i]) {
      case '"':
      case '\\':
        text += quoted[i];
        break;
      case 't':
        text += '\t';
        break;
      case 'n':
        text += '\n';
        break;
      case 'r':
        text += '\r';
        break;
      case 'x': {
        if (i + 2 >= quoted.size()) return std::nullopt;
        const std::size_t high = hex.find(quoted[i + 1]);
        const std::size_t low = hex.find(quoted[i + 2]);
        if (high == std::string_view::npos || low == std::string_view::npos) return std::nullopt;
        const auto escaped = static_cast<unsigned char>(high * 16 + low);
        // Only for the bytes with no shorter form.
        if (!must_escape(escaped) || escaped == '\t' || escaped == '\n' || escaped == '\r') {
          return std::nullopt;
        }
        text += static_cast<char>(escaped);
        i += 2;
        break;
      }
      default:
        return std::nullopt;
    }
  }
  return std::nullopt;  // no closing quote
}

/// Whether `message` is `prefix`, then `text` quoted as above, then ": " and an explanation.
inline bool quotes(std::string_view message, std::string_view prefix, std::string_view text) {
  if (!message.starts_with(prefix)) return false;
  const auto read = unquote(message.substr(prefix.size()));
  return read && read->first == text && read->second.starts_with(": ") && read->second.size() > 2;
}

}  // namespace ratelimit_fuzz
