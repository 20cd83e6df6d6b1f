#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>

/// Reads a fuzzer's input front to back, so that fuzz/make_corpus.py can write seeds in the
/// same order. Past the end every read gives zeros: any input decodes to something.
namespace ratelimit_fuzz {

inline constexpr std::int64_t int64_max = std::numeric_limits<std::int64_t>::max();
inline constexpr std::int64_t int64_min = std::numeric_limits<std::int64_t>::min();

class byte_reader {
 public:
  byte_reader(const std::uint8_t* data, std::size_t size) noexcept : data_(data), size_(size) {}

  bool empty() const noexcept { return pos_ >= size_; }
  std::size_t left() const noexcept { return empty() ? 0 : size_ - pos_; }

  std::uint8_t byte() noexcept { return empty() ? 0 : data_[pos_++]; }

  /// `bytes` bytes, little-endian.
  std::uint64_t little_endian(int bytes) noexcept {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= std::uint64_t{byte()} << (8 * i);
    return v;
  }

  /// A value in [lo, hi] whose size the input chooses: one byte gives a width w (0 to 64
  /// bits), then ceil(w / 8) bytes give that many bits, added to lo (modulo the range). So
  /// small values are as likely as huge ones, which is where the edges live.
  std::int64_t sized(std::int64_t lo, std::int64_t hi) noexcept {
    const int width = byte() % 65;
    std::uint64_t raw = little_endian((width + 7) / 8);
    if (width < 64) raw &= (std::uint64_t{1} << width) - 1;
    const auto span = static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo);
    if (span != std::numeric_limits<std::uint64_t>::max()) raw %= span + 1;
    return static_cast<std::int64_t>(static_cast<std::uint64_t>(lo) + raw);
  }

  /// Any int64: a sign byte (odd: negative), then a magnitude as sized() reads it.
  std::int64_t signed_value() noexcept {
    const bool negative = (byte() & 1) != 0;
    const std::int64_t magnitude = sized(0, int64_max);
    return negative ? -magnitude - (magnitude == int64_max ? 1 : 0) : magnitude;
  }

  /// A string: one length byte, or 255 and then two bytes of length; as many bytes as are
  /// left if fewer.
  std::string_view text() noexcept {
    std::size_t length = byte();
    if (length == 255) length = static_cast<std::size_t>(little_endian(2));
    length = std::min(length, left());
    const std::string_view s(reinterpret_cast<const char*>(data_ + pos_), length);
    pos_ += length;
    return s;
  }

  /// Everything not read yet.
  std::string_view rest() noexcept {
    const std::size_t length = left();
    const std::string_view s(reinterpret_cast<const char*>(data_ + pos_), length);
    pos_ += length;
    return s;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

}  // namespace ratelimit_fuzz
