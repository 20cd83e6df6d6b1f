#pragma once

/// Marks a function whose unsigned arithmetic wraps on purpose (a hash, SHA-1, a random
/// generator), so that clang's `-fsanitize=integer`, which reports unsigned wraparound
/// although it is defined, checks everything else and not that. Put it only on such
/// functions, with a comment saying why the wrap is intended.
#if defined(__clang__)
#define RATELIMIT_INTENDED_UNSIGNED_WRAP \
  [[clang::no_sanitize("unsigned-integer-overflow", "unsigned-shift-base")]]
#else
#define RATELIMIT_INTENDED_UNSIGNED_WRAP
#endif
