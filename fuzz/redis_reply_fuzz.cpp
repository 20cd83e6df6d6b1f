// Redis reply decoding, fuzzed: detail::redis::decode, decode_all<1..3> and
// decode_reservation on replies built from the input, either as hiredis reply trees made
// directly (any type, nil, a null element, error strings, any integers, any element count,
// nesting) or as RESP bytes read by hiredis's own reader. Checked against the reply format
// the scripts document (storage/redis/scripts.hpp): `{allowed (1/0), remaining, retry_after,
// reset_after, delay}` as integers, durations in units of unit_ns with -1 for "never", then
// for a reservation the two integers of the state it left:
//  * the outcome is `decided` exactly when the reply has that shape and every value is in
//    range (allowed 0 or 1; 0 <= remaining <= 2^62; retry_after and reset_after >= -1;
//    delay >= 0; an admission waits for nothing), `noscript` exactly for an error starting
//    "NOSCRIPT", `failed` otherwise: a malformed reply never admits;
//  * a decided decision carries exactly those values, converted to nanoseconds (saturating;
//    -1 is nanoseconds::max());
//  * a reservation's state, when booking_units::from_reply accepts it, goes back to the
//    script unchanged through to_units; and the helpers beside it stay in range.
// Undefined behaviour anywhere is caught by UBSan.

#include <hiredis/hiredis.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <limits>
#include <optional>
#include <ratelimit/quota.hpp>
#include <ratelimit/storage/redis/booking.hpp>
#include <ratelimit/storage/redis/reply.hpp>
#include <ratelimit/storage/redis/scripts.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "byte_reader.hpp"

namespace {

namespace redis = ratelimit::detail::redis;
namespace algorithms = ratelimit::algorithms;
using ratelimit::decision;
using ratelimit::quota;
using ratelimit_fuzz::byte_reader;
using ratelimit_fuzz::int64_max;
using std::chrono::nanoseconds;
__extension__ typedef __int128 i128;
__extension__ typedef unsigned __int128 u128;

std::string describe(const redisReply* r, int depth = 0) {
  if (r == nullptr) return "null";
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      return std::to_string(r->integer);
    case REDIS_REPLY_NIL:
      return "nil";
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      return std::string(r->type == REDIS_REPLY_ERROR ? "error " : "string ") + "\"" +
             std::string(r->str, std::min<std::size_t>(r->len, 40)) + "\"";
    case REDIS_REPLY_ARRAY: {
      std::string out = "[";
      for (std::size_t i = 0; i < r->elements && depth < 3; ++i) {
        out += (i > 0 ? ", " : "") + describe(r->element[i], depth + 1);
      }
      return out + "]";
    }
    default:
      return "type " + std::to_string(r->type);
  }
}

const redisReply* current = nullptr;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "redis_reply_fuzz: %s\n  reply: %s\n", what.c_str(),
               describe(current).c_str());
  std::abort();
}

// ---------------------------------------------------------------------------------------------
// Replies from bytes.
// ---------------------------------------------------------------------------------------------

/// Reply trees as hiredis would hand them over, owned here.
class reply_builder {
 public:
  explicit reply_builder(byte_reader& in) : in_(in) {}

  /// A node, or (at depth > 0, rarely) a null element.
  redisReply* node(int depth) {
    const std::uint8_t kind = in_.byte();
    if (depth > 0 && kind % 16 == 15) return nullptr;
    redisReply& r = nodes_.emplace_back();
    switch (kind % 8) {
      case 0:
      case 1:
        r.type = REDIS_REPLY_INTEGER;
        r.integer = integer();
        break;
      case 2:
        r.type = REDIS_REPLY_NIL;
        break;
      case 3:
      case 4: {
        r.type = kind % 8 == 3 ? REDIS_REPLY_STRING : REDIS_REPLY_STATUS;
        text(r, std::string(in_.text()));
        break;
      }
      case 5: {
        r.type = REDIS_REPLY_ERROR;
        static constexpr std::string_view prefixes[] = {"NOSCRIPT ", "ERR ", "OOM ", "BUSY ", ""};
        text(r, std::string(prefixes[in_.byte() % 5]) + std::string(in_.text()));
        break;
      }
      default: {
        // An array: mostly of the counts the decoders look for, of integers.
        static constexpr std::size_t counts[] = {5, 7, 10, 15, 4, 6, 0, 1};
        const std::uint8_t shape = in_.byte();
        const std::size_t count = shape % 2 == 0 ? counts[shape / 2 % 8] : shape / 2 % 20;
        r.type = REDIS_REPLY_ARRAY;
        std::vector<redisReply*>& elements = arrays_.emplace_back(count);
        for (std::size_t i = 0; i < count; ++i) {
          elements[i] = depth < 3 ? node(depth + 1) : leaf();
        }
        r.elements = count;
        r.element = count > 0 ? elements.data() : nullptr;
        break;
      }
    }
    return &r;
  }

 private:
  /// Integers near the edges the decoders check.
  long long integer() {
    static constexpr long long special[] = {0,
                                            1,
                                            -1,
                                            2,
                                            -2,
                                            quota::max_units,
                                            quota::max_units + 1,
                                            (1LL << 53) - 1,
                                            1LL << 53,
                                            std::numeric_limits<long long>::max(),
                                            std::numeric_limits<long long>::min()};
    const std::uint8_t mode = in_.byte();
    if (mode < 128) return mode % 8;  // small values: the common case
    if (mode < 192) return special[mode % 11];
    return in_.signed_value();
  }

  redisReply* leaf() {
    redisReply& r = nodes_.emplace_back();
    r.type = REDIS_REPLY_INTEGER;
    r.integer = integer();
    return &r;
  }

  void text(redisReply& r, std::string s) {
    std::string& kept = strings_.emplace_back(std::move(s));
    r.str = kept.data();
    r.len = kept.size();
  }

  byte_reader& in_;
  std::deque<redisReply> nodes_;
  std::deque<std::vector<redisReply*>> arrays_;
  std::deque<std::string> strings_;
};

// ---------------------------------------------------------------------------------------------
// The documented format.
// ---------------------------------------------------------------------------------------------

nanoseconds from_units(long long units, std::int64_t unit_ns) {
  if (units < 0) return nanoseconds::max();
  const i128 ns = i128{units} * unit_ns;
  return nanoseconds{ns > int64_max ? int64_max : static_cast<std::int64_t>(ns)};
}

/// The decision five elements hold, if they are well-formed.
std::optional<decision> expected_fields(const redisReply* const* field, const quota& q,
                                        std::int64_t unit_ns) {
  long long v[5];
  for (int i = 0; i < 5; ++i) {
    if (field[i] == nullptr || field[i]->type != REDIS_REPLY_INTEGER) return std::nullopt;
    v[i] = field[i]->integer;
  }
  const bool well_formed = (v[0] == 0 || v[0] == 1) && v[1] >= 0 && v[1] <= quota::max_units &&
                           v[2] >= -1 && v[3] >= -1 && v[4] >= 0 && (v[0] == 0 || v[2] == 0);
  if (!well_formed) return std::nullopt;
  decision d{.allowed = v[0] == 1, .limit = q.limit, .remaining = v[1]};
  d.retry_after = d.allowed ? nanoseconds::zero() : from_units(v[2], unit_ns);
  d.reset_after = from_units(v[3], unit_ns);
  d.delay = from_units(v[4], unit_ns);
  return d;
}

/// What an error reply or a reply of the wrong shape decodes to, or nothing if it has the
/// shape of `count` integers.
std::optional<redis::outcome> expected_failure(const redisReply* r, std::size_t count) {
  if (r == nullptr) return redis::outcome::failed;
  if (r->type == REDIS_REPLY_ERROR) {
    return std::string_view(r->str, r->len).starts_with("NOSCRIPT") ? redis::outcome::noscript
                                                                    : redis::outcome::failed;
  }
  if (r->type != REDIS_REPLY_ARRAY || r->elements != count) return redis::outcome::failed;
  return std::nullopt;
}

bool same(const decision& a, const decision& b) {
  return a.allowed == b.allowed && a.limit == b.limit && a.remaining == b.remaining &&
         a.retry_after == b.retry_after && a.reset_after == b.reset_after && a.delay == b.delay &&
         a.degraded == b.degraded;
}

void expect(redis::outcome got, std::optional<decision> got_value, redis::outcome want,
            std::optional<decision> want_value, const char* function) {
  if (got != want) {
    fail(std::string(function) + " gives outcome " + std::to_string(static_cast<int>(got)) +
         ", the format says " + std::to_string(static_cast<int>(want)));
  }
  if (want == redis::outcome::decided && !same(*got_value, *want_value)) {
    fail(std::string(function) + " decoded the values wrong");
  }
}

void check_decode(const redisReply* r, const quota& q, std::int64_t unit_ns) {
  const redis::decoded got = redis::decode(r, q, unit_ns);
  std::optional<redis::outcome> want = expected_failure(r, 5);
  std::optional<decision> value;
  if (!want) {
    value = expected_fields(r->element, q, unit_ns);
    want = value ? redis::outcome::decided : redis::outcome::failed;
  }
  expect(got.result, got.value, *want, value, "decode");
}

template <std::size_t N>
void check_decode_all(const redisReply* r, const std::array<quota, N>& quotas,
                      std::int64_t unit_ns) {
  std::array<decision, N> out{};
  const redis::outcome got = redis::decode_all(r, quotas, unit_ns, out);
  std::optional<redis::outcome> want = expected_failure(r, 5 * N);
  std::array<std::optional<decision>, N> values{};
  if (!want) {
    want = redis::outcome::decided;
    for (std::size_t i = 0; i < N; ++i) {
      values[i] = expected_fields(r->element + 5 * i, quotas[i], unit_ns);
      if (!values[i]) want = redis::outcome::failed;
    }
  }
  for (std::size_t i = 0; i < N; ++i) {
    expect(got, out[i], *want, values[i], "decode_all");
  }
}

/// A reservation's reply, and what its state does next: from_reply, to_units and the
/// helpers beside them.
template <class A>
void check_reservation(const redisReply* r, const quota& q, std::int64_t unit_ns, std::int64_t cost,
                       std::int64_t max_wait_ns) {
  const redis::decoded_reservation got = redis::decode_reservation(r, q, unit_ns);
  std::optional<redis::outcome> want = expected_failure(r, 7);
  std::optional<decision> value;
  if (!want) {
    value = expected_fields(r->element, q, unit_ns);
    const bool state_ok = r->element[5] != nullptr && r->element[5]->type == REDIS_REPLY_INTEGER &&
                          r->element[6] != nullptr && r->element[6]->type == REDIS_REPLY_INTEGER;
    if (!state_ok) value.reset();
    want = value ? redis::outcome::decided : redis::outcome::failed;
  }
  expect(got.result, got.value, *want, value, "decode_reservation");
  if (got.result != redis::outcome::decided) return;
  if (got.state[0] != r->element[5]->integer || got.state[1] != r->element[6]->integer) {
    fail("decode_reservation read the state wrong");
  }

  // The storage only sends quotas the script accepts.
  try {
    redis::script<A>::check(q, unit_ns);
  } catch (const std::invalid_argument&) {
    return;
  }
  using units = redis::booking_units<A>;
  const std::int64_t wait = units::max_wait(q, max_wait_ns, unit_ns);
  if (wait < 0 || wait > redis::longest_duration ||
      wait > std::max<std::int64_t>(max_wait_ns, 0) / unit_ns) {
    fail("max_wait out of range: " + std::to_string(wait));
  }
  const auto [first, second] = got.state;
  const bool valid = std::is_same_v<A, algorithms::token_bucket>
                         ? second >= 0 && redis::exact(first) && redis::exact(second)
                         : second >= 0 && second < q.limit && redis::exact(first);
  typename A::booking b{};
  if (units::from_reply(got.state, cost, unit_ns, q, b) != valid) {
    fail("from_reply accepts a state iff it is one a script leaves: wrong for " +
         std::to_string(first) + ", " + std::to_string(second));
  }
  if (!valid) return;
  const redis::cancel_arguments back = units::to_units(b, q, unit_ns);
  const std::int64_t period = q.period.count() / unit_ns;
  const u128 length = u128{static_cast<std::uint64_t>(cost)} * static_cast<std::uint64_t>(period);
  if (b.cost == 0) {
    // A state whose instant int64 nanoseconds can't hold: a booking that gives back nothing.
    if (back.cost != 0) fail("an empty booking gives something back");
  } else if (b.cost != cost) {
    fail("from_reply lost the cost");
  } else if (length < static_cast<u128>(redis::exact_below)) {
    if (back.cost != cost || back.state[0] != first || back.state[1] != second) {
      fail("to_units(from_reply(" + std::to_string(first) + ", " + std::to_string(second) +
           ")) is (" + std::to_string(back.cost) + ": " + std::to_string(back.state[0]) + ", " +
           std::to_string(back.state[1]) + ")");
    }
  } else if (back.cost != 0) {
    fail("a cost the script can't hold exactly is sent");
  }
  // The deny cache's estimate, for a rejection that can pass later.
  if (!got.value.allowed && got.value.retry_after != nanoseconds::max() && cost <= q.burst) {
    if (units::step_retry_after(got.value, got.state, q, cost, wait, unit_ns) <
        nanoseconds::zero()) {
      fail("a negative step_retry_after");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  byte_reader in(data, size);
  const std::uint8_t mode = in.byte();
  static constexpr std::int64_t units[] = {1'000, 1, 10, 100, 10'000, 100'000, 1'000'000};
  const std::int64_t unit_ns = mode & 0x80 ? in.sized(1, int64_max) : units[in.byte() % 7];
  std::array<quota, 3> quotas;
  for (quota& q : quotas) {
    const std::int64_t limit = in.sized(1, quota::max_units);
    // Mostly periods the scripts accept: whole units.
    const std::int64_t period =
        in.byte() % 4 == 0 ? in.sized(1, int64_max) : unit_ns * in.sized(1, int64_max / unit_ns);
    const std::int64_t burst = in.byte() % 2 == 0 ? limit : in.sized(1, quota::max_units);
    q = quota::per(limit, nanoseconds{period}).with_burst(burst);
  }
  const std::int64_t cost = in.sized(1, int64_max);
  const std::int64_t max_wait_ns = in.signed_value();

  // The reply: RESP bytes through hiredis's reader, or a tree built directly.
  redisReply* reply = nullptr;
  redisReader* reader = nullptr;
  reply_builder builder(in);
  if (mode & 0x40) {
    const std::string_view resp = in.rest();
    // hiredis 0.14's reader allocates an array's element pointers at once, whatever the count
    // ("*717142859"); later versions bound it (maxelements). Not this library's concern.
    for (std::size_t star = resp.find('*'); star != std::string_view::npos;
         star = resp.find('*', star + 1)) {
      const std::size_t digits = resp.find_first_not_of("0123456789", star + 1);
      if ((digits == std::string_view::npos ? resp.size() : digits) - star > 5) return 0;
    }
    reader = redisReaderCreate();
    void* read = nullptr;
    if (redisReaderFeed(reader, resp.data(), resp.size()) == REDIS_OK &&
        redisReaderGetReply(reader, &read) == REDIS_OK) {
      reply = static_cast<redisReply*>(read);
    }
    if (reply == nullptr) {
      redisReaderFree(reader);
      return 0;
    }
  } else if ((mode & 0x20) == 0) {
    reply = builder.node(0);
  }
  current = reply;

  switch ((mode & 0x1f) % 6) {
    case 0:
      check_decode(reply, quotas[0], unit_ns);
      break;
    case 1:
      check_decode_all<1>(reply, {quotas[0]}, unit_ns);
      break;
    case 2:
      check_decode_all<2>(reply, {quotas[0], quotas[1]}, unit_ns);
      break;
    case 3:
      check_decode_all<3>(reply, quotas, unit_ns);
      break;
    case 4:
      check_reservation<algorithms::token_bucket>(reply, quotas[0], unit_ns, cost, max_wait_ns);
      break;
    default:
      check_reservation<algorithms::leaky_bucket>(reply, quotas[0], unit_ns, cost, max_wait_ns);
      break;
  }
  if (reader != nullptr) {
    freeReplyObject(reply);
    redisReaderFree(reader);
  }
  return 0;
}
