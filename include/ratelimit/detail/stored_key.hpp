#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>

#include "ratelimit/detail/seeded_hash.hpp"

namespace ratelimit::detail {

/// A key as looked up: its bytes, its hash, and for short keys the 16-byte form they
/// take in the table, so that comparing a short key costs two integer compares.
struct key_probe {
  std::string_view bytes;
  std::uint64_t hash;
  std::uint64_t words[2] = {};

  key_probe(std::string_view key, std::uint64_t key_hash) noexcept;
  bool is_short() const noexcept;
};

/// A key owned by the table in 16 bytes: up to 15 bytes inline, longer ones on the heap
/// (an 8-byte length, then the bytes). Byte 15 says which: the length of an inline key,
/// `heap_tag`, or `vacant_tag` for a slot holding no key.
class stored_key {
 public:
  static constexpr std::size_t inline_capacity = 15;

  stored_key() noexcept { bytes_[15] = vacant_tag; }
  stored_key(const stored_key&) = delete;
  stored_key& operator=(const stored_key&) = delete;
  stored_key(stored_key&& other) noexcept { steal(other); }
  stored_key& operator=(stored_key&& other) noexcept {
    if (this != &other) {
      release();
      steal(other);
    }
    return *this;
  }
  ~stored_key() { release(); }

  /// Takes the probe's bytes; false (and stays vacant) if a long key cannot be allocated.
  bool assign(const key_probe& key) noexcept {
    release();
    if (key.is_short()) {
      std::memcpy(bytes_, key.words, sizeof bytes_);
      return true;
    }
    const std::size_t size = key.bytes.size();
    auto* block = new (std::nothrow) char[sizeof(std::size_t) + size];
    if (block == nullptr) return false;
    std::memcpy(block, &size, sizeof size);
    std::memcpy(block + sizeof size, key.bytes.data(), size);
    std::memcpy(bytes_, &block, sizeof block);
    bytes_[15] = heap_tag;
    return true;
  }

  void release() noexcept {
    if (bytes_[15] == heap_tag) delete[] heap_block();
    bytes_[15] = vacant_tag;
  }

  bool vacant() const noexcept { return bytes_[15] == vacant_tag; }

  bool equals(const key_probe& key) const noexcept {
    if (key.is_short()) {
      std::uint64_t words[2];
      std::memcpy(words, bytes_, sizeof words);
      return words[0] == key.words[0] && words[1] == key.words[1];
    }
    if (bytes_[15] != heap_tag) return false;
    std::size_t size;
    std::memcpy(&size, heap_block(), sizeof size);
    return size == key.bytes.size() &&
           std::memcmp(heap_block() + sizeof size, key.bytes.data(), size) == 0;
  }

  std::string_view view() const noexcept {
    if (bytes_[15] == heap_tag) {
      std::size_t size;
      std::memcpy(&size, heap_block(), sizeof size);
      return {heap_block() + sizeof size, size};
    }
    if (vacant()) return {};
    return {reinterpret_cast<const char*>(bytes_), bytes_[15]};
  }

 private:
  friend struct key_probe;
  static constexpr unsigned char heap_tag = 0x80;
  static constexpr unsigned char vacant_tag = 0xFF;

  char* heap_block() const noexcept {
    char* block;
    std::memcpy(&block, bytes_, sizeof block);
    return block;
  }
  void steal(stored_key& other) noexcept {
    std::memcpy(bytes_, other.bytes_, sizeof bytes_);
    other.bytes_[15] = vacant_tag;
  }

  alignas(8) unsigned char bytes_[16];
};

inline key_probe::key_probe(std::string_view key, std::uint64_t key_hash) noexcept
    : bytes(key), hash(key_hash) {
  const std::size_t n = key.size();
  if (n > stored_key::inline_capacity) return;
  if constexpr (std::endian::native == std::endian::little) {
    // Overlapping loads, as in seeded_hash: this runs on every decision, and a memcpy of
    // a variable size is a function call.
    const char* p = key.data();
    if (n >= 8) {
      words[0] = load64(p);
      if (n > 8) words[1] = load64(p + n - 8) >> (8 * (16 - n));
    } else if (n >= 4) {
      words[0] = load32(p) | load32(p + n - 4) << (8 * (n - 4));
    } else if (n > 0) {
      const auto byte = [p](std::size_t i) {
        return std::uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
      };
      words[0] = byte(0) | byte(n / 2) | byte(n - 1);
    }
    words[1] |= std::uint64_t{n} << 56;
  } else {
    unsigned char encoded[16] = {};
    if (n > 0) std::memcpy(encoded, key.data(), n);
    encoded[15] = static_cast<unsigned char>(n);
    std::memcpy(words, encoded, sizeof encoded);
  }
}

inline bool key_probe::is_short() const noexcept {
  return bytes.size() <= stored_key::inline_capacity;
}

}  // namespace ratelimit::detail
