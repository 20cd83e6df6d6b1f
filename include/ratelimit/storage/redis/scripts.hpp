#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "ratelimit/algorithms/fixed_window.hpp"
#include "ratelimit/algorithms/leaky_bucket.hpp"
#include "ratelimit/algorithms/sliding_log.hpp"
#include "ratelimit/algorithms/sliding_window_counter.hpp"
#include "ratelimit/algorithms/token_bucket.hpp"
#include "ratelimit/detail/wide_math.hpp"
#include "ratelimit/quota.hpp"

/// The server-side twins of the algorithms: one Lua script each, run by `EVALSHA` as one
/// atomic decision. Each script reproduces its algorithm's `step` exactly, with every time
/// counted in integer units of `unit_ns` nanoseconds.
///
/// Calling contract: `EVALSHA sha keys KEYS... ARGV...`, where KEYS are the `keys` key
/// names the storage builds for one user key (one Redis Cluster slot), and
/// | ARGV | meaning                                                                   |
/// |------|---------------------------------------------------------------------------|
/// | 1    | now in units (decimal), or empty: the script reads `TIME`, in microseconds |
/// | 2..5 | limit, period in units, burst, cost (1 <= cost <= min(limit, burst))      |
/// | 6    | unit_ns (divides 1'000'000)                                               |
/// | 7    | TTL slack in milliseconds, added to every TTL (1 with server time)        |
/// | 8    | buckets only, optional: a reservation's longest wait in units (see below) |
/// The reply is `{allowed (1/0), remaining, retry_after, reset_after, delay}`, the last
/// three in units, -1 for "never" (nanoseconds::max() in C++). A key whose state is fresh
/// again is deleted; any other key written gets a TTL of `reset_after` (rounded up to the
/// millisecond) plus the slack. A script fails with an error reply when now is out of range.
/// What a key holds is the script's own business: little-endian doubles in a string, or a
/// list of records for the sliding log.
///
/// Reservations (the buckets): given ARGV[8], the step's script is A::reserve with that
/// longest wait, in units, and its reply carries two more integers, the state it left:
/// `refilled_at` and `deficit` (token bucket), `drains_at` and `fraction` (leaky bucket),
/// in units (the fraction in 1/limit unit). Without ARGV[8] (or with it empty) it is the
/// plain step, as a multi-rule script's rules always are. A cancel is a script of its own,
/// `cancel_script<A>`, on the same key: ARGV 1 to 7 as above with ARGV[5] the booking's
/// cost, then ARGV 8 and 9 the state the reservation left, as its reply gave them; it
/// replies with the key's state after, as a decision admitting nothing.
///
/// Lua numbers are doubles, exact for integers below 2^53. The scripts assume times below
/// 2^52 units in magnitude (microseconds since 1970 until the year 2112; nanoseconds of a
/// clock started less than 52 days ago) and no clock stepping back by 2^52 units or more;
/// `check` accepts only quotas whose periods and refill times stay within 2^50 units and
/// whose products stay below 2^53, so that no value a script computes can lose a unit.
namespace ratelimit::detail::redis {

/// The server-side twin of algorithm A. One specialization per algorithm.
template <class A>
struct script;

/// The concatenation of string views, as one static string: the scripts share a prelude.
template <const std::string_view&... Parts>
struct joined {
  static constexpr auto characters = [] {
    std::array<char, (Parts.size() + ...)> out{};
    auto next = out.begin();
    ((next = std::copy(Parts.begin(), Parts.end(), next)), ...);
    return out;
  }();
  static constexpr std::string_view value{characters.data(), characters.size()};
};

/// Integers below this are exact in a Lua number.
inline constexpr std::int64_t exact_below = std::int64_t{1} << 53;
/// The longest duration (period, refill or drain time) a script adds to a time, in units:
/// a time below 2^52 plus two of them stays below 2^53.
inline constexpr std::int64_t longest_duration = std::int64_t{1} << 50;

[[noreturn]] inline void reject_quota(std::string_view algorithm, const std::string& what) {
  throw std::invalid_argument("ratelimit::redis " + std::string(algorithm) + ": " + what);
}

inline std::string in_units(std::int64_t units, std::int64_t unit_ns) {
  return std::to_string(units) + " units of " + std::to_string(unit_ns) + "ns";
}

/// The checks every script needs; returns `q.period` in units of `unit_ns`.
inline std::int64_t period_in_units(std::string_view algorithm, const quota& q,
                                    std::int64_t unit_ns) {
  static_cast<void>(q.validated());
  if (unit_ns <= 0 || 1'000'000 % unit_ns != 0) {
    reject_quota(algorithm, "unit_ns must divide 1000000 (got " + std::to_string(unit_ns) + ")");
  }
  if (q.period.count() % unit_ns != 0) {
    reject_quota(algorithm, "period must be a whole number of " + std::to_string(unit_ns) +
                                "ns units (got " + std::to_string(q.period.count()) + "ns)");
  }
  const std::int64_t period = q.period.count() / unit_ns;
  if (period > longest_duration) {
    reject_quota(algorithm, "period must be <= 2^50 units (got " + in_units(period, unit_ns) + ")");
  }
  return period;
}

/// Throws unless `value`, of the field `field`, is below 2^53: it reaches a script exactly.
inline void check_exact(std::string_view algorithm, const char* field, std::int64_t value) {
  if (value >= exact_below) {
    reject_quota(algorithm,
                 std::string(field) + " must be < 2^53 (got " + std::to_string(value) + ")");
  }
}

/// Throws unless the buckets' capacity, `burst × period` (in 1/period token or 1/limit
/// unit), plus `limit` if `plus_limit`, is below 2^53, and the time to fill it at `limit`
/// per period is at most 2^50 units.
inline void check_bucket(std::string_view algorithm, const quota& q, std::int64_t period,
                         std::int64_t unit_ns, bool plus_limit) {
  check_exact(algorithm, "limit", q.limit);
  const u128 capacity =
      wide_mul(static_cast<std::uint64_t>(q.burst), static_cast<std::uint64_t>(period));
  const std::string got = "(got burst " + std::to_string(q.burst) + ", period " +
                          in_units(period, unit_ns) + ", limit " + std::to_string(q.limit) + ")";
  const u128 largest = capacity + (plus_limit ? static_cast<std::uint64_t>(q.limit) : 0);
  if (largest >= static_cast<u128>(exact_below)) {
    reject_quota(algorithm, std::string(plus_limit ? "burst * period + limit" : "burst * period") +
                                " must be < 2^53 " + got);
  }
  if (ceil_div(capacity, static_cast<std::uint64_t>(q.limit)) >
      static_cast<u128>(longest_duration)) {
    reject_quota(algorithm,
                 "burst * period / limit (the time to fill) must be <= 2^50 units " + got);
  }
}

// What every script starts with, in four parts (a multi-rule script shares the first and
// third, and gives each rule the second and fourth): the time, the rule's arguments, exact
// integer division, and saving state.
inline constexpr std::string_view prelude_time = R"lua(
-- Times are integer units below 2^52 in magnitude, and check() bounds the quota, so that
-- every number below stays an integer below 2^53, exact in a double. States are stored as
-- little-endian doubles (struct): exact too, and about ten times cheaper to read and write
-- than decimal text, in a script whose every microsecond is on the decision's path.
-- Decimal arguments are converted by arithmetic (`+ 0`): a third of the cost of tonumber().
local now
if ARGV[1] == '' then
  -- Server time: app servers whose clocks disagree still share one clock.
  local time = redis.call('TIME')
  now = time[1] * 1000000 + time[2]
else
  now = ARGV[1] + 0
end
if now >= 4503599627370496 or now <= -4503599627370496 then
  return redis.error_reply('ratelimit: now must be below 2^52 in magnitude')
end
)lua";

inline constexpr std::string_view prelude_arguments =
    "local limit, period, cost = ARGV[2] + 0, ARGV[3] + 0, ARGV[5] + 0\n";

inline constexpr std::string_view prelude_arithmetic = R"lua(
-- floor(a / b) for b > 0. math.floor(a / b) alone is exact while |a| < 2^53 (the rounding
-- error of a / b stays below 1/b, the least distance to an integer it does not equal); the
-- exact remainder makes the helper correct without leaning on that argument.
local function div(a, b)
  local q = math.floor(a / b)
  local r = a - q * b
  if r < 0 then
    q = q - 1
  elseif r >= b then
    q = q + 1
  end
  return q
end

local function ceil_div(a, b)
  local q = div(a, b)
  if q * b < a then q = q + 1 end
  return q
end
)lua";

inline constexpr std::string_view prelude_state = R"lua(
-- The TTL of a state that is fresh again `reset` (> 0) units from now, in milliseconds. A
-- number argument reaches Redis with every digit; tostring() would use an exponent.
local function ttl(reset)
  return math.max(1, ceil_div(reset, 1000000 / ARGV[6]) + ARGV[7])
end

-- Keeps `value` under `key` until the state is fresh again, `reset` units from now; a
-- fresh state is deleted instead: it is what a missing key means, at no memory cost. An
-- unchanged state is not rewritten: its expiry already points at the same instant.
local function save(key, old, value, reset)
  if reset == 0 then
    if old then redis.call('DEL', key) end
  elseif value ~= old then
    redis.call('SET', key, value, 'PX', ttl(reset))
  end
end
)lua";

inline constexpr std::string_view prelude =
    joined<prelude_time, prelude_arguments, prelude_arithmetic, prelude_state>::value;

// The buckets' scripts are assembled from parts, so that a reservation and its cancel run
// the very lines a plain step runs: the state, what changes it, then what the decision
// reports and the save. ARGV[8], when given and not empty, turns a step into a
// reservation (see token_bucket_take and leaky_bucket_take); a multi-rule script's rules
// never get one, so they step.

inline constexpr std::string_view token_bucket_state = R"lua(
-- State (refilled_at, deficit): the bucket holds burst - deficit / period tokens, the
-- deficit counting missing tokens in 1/period token so that refills never round. Above
-- the capacity it is a debt that reservations left: the storage clamps their waits so
-- that it stays below 2^53 - burst * period.
local key, burst = KEYS[1], ARGV[4] + 0
local old = redis.call('GET', key)
local refilled_at, deficit = now, 0
if old then refilled_at, deficit = struct.unpack('<dd', old) end
local capacity = burst * period

-- The time until `units` (1/period token) have refilled, counted from refilled_at.
local function wait(units)
  if units == 0 then return 0 end
  return math.max(0, refilled_at + ceil_div(units, limit) - now)
end
)lua";

inline constexpr std::string_view token_bucket_refill = R"lua(
-- A clock stepped back refills nothing until it passes refilled_at again.
if now > refilled_at then
  local elapsed = now - refilled_at
  -- Compared before multiplying: elapsed * limit may pass 2^53, and the bucket is full
  -- once elapsed reaches the time the deficit takes to refill.
  if elapsed >= ceil_div(deficit, limit) then
    deficit = 0
  else
    deficit = deficit - elapsed * limit
  end
  refilled_at = now
end
)lua";

inline constexpr std::string_view token_bucket_take = R"lua(
-- ARGV[8]: a reservation's longest wait in units; a request whose tokens refill within it
-- is admitted now, with that wait as its delay, and the bucket goes into debt. A plain
-- step waits 0, which a missing token always exceeds.
local reserving = ARGV[8] ~= nil and ARGV[8] ~= ''
local max_wait = 0
if reserving then max_wait = ARGV[8] + 0 end
local allowed, retry, delay = 0, 0, 0
if cost > burst then
  retry = -1
else
  -- deficit + spend <= capacity, without a sum that could pass 2^53
  local room = capacity - cost * period
  if deficit <= room then
    deficit = deficit + cost * period
    allowed = 1
  else
    local ready = wait(deficit - room)
    if ready <= max_wait then
      deficit = deficit + cost * period
      allowed, delay = 1, ready
    else
      retry = ready - max_wait
    end
  end
end
)lua";

inline constexpr std::string_view token_bucket_settle = R"lua(
-- A deficit above the capacity (a debt, or a quota that shrank) holds no whole token.
local remaining = 0
if deficit < capacity then remaining = burst - ceil_div(deficit, period) end
local reset = wait(deficit)

save(key, old, struct.pack('<dd', refilled_at, deficit), reset)
)lua";

inline constexpr std::string_view token_bucket_reply = R"lua(
-- A reservation also reports the state it left, which its booking keeps for cancel.
if reserving then return {allowed, remaining, retry, reset, delay, refilled_at, deficit} end
return {allowed, remaining, retry, reset, delay}
)lua";

inline constexpr std::string_view token_bucket_body =
    joined<token_bucket_state, token_bucket_refill, token_bucket_take, token_bucket_settle,
           token_bucket_reply>::value;

/// algorithms::token_bucket::cancel, on the state as stored (before this call's refill).
/// ARGV[5] is the booking's cost (0 gives back nothing), ARGV[8] and ARGV[9] its
/// booked_at and deficit in units. The units refilled since the booking, elapsed * limit,
/// may pass 2^53: like the refill, the script compares elapsed with a quotient instead
/// of computing that product.
inline constexpr std::string_view token_bucket_cancel = R"lua(
local booked_at, booked = ARGV[8] + 0, ARGV[9] + 0
-- A state older than the booking is not the one it was booked on: it owes nothing.
if refilled_at >= booked_at then
  local elapsed = refilled_at - booked_at
  -- What refills alone would have left of the booked deficit; a booking still standing
  -- since adds to it, and then nothing is given back.
  local untouched = 0
  if elapsed < ceil_div(booked, limit) then untouched = booked - elapsed * limit end
  if deficit == untouched then
    local give = cost * period
    if deficit > give then deficit = deficit - give else deficit = 0 end
  end
end
)lua";

/// What a cancel replies: the key's state after it, as a decision that admits nothing.
inline constexpr std::string_view bucket_cancel_reply = R"lua(
return {0, remaining, 0, reset, 0}
)lua";

inline constexpr std::string_view token_bucket_cancel_body =
    joined<token_bucket_state, token_bucket_cancel, token_bucket_refill, token_bucket_settle,
           bucket_cancel_reply>::value;

inline constexpr std::string_view leaky_bucket_state = R"lua(
-- State (drains_at, fraction): the queue drains at drains_at + fraction / limit, so the
-- interval period / limit never rounds. A missing key is a queue that drained at the
-- beginning of the clock; one that drains now is the same, for this call.
local key, burst = KEYS[1], ARGV[4] + 0
local old = redis.call('GET', key)
local drains_at, fraction = now, 0
if old then drains_at, fraction = struct.unpack('<dd', old) end

-- Lengths of queue are in 1/limit of a unit: a request takes period of them.
local capacity = burst * period
-- A queue further ahead than this is longer than the capacity (after the clock stepped
-- back, or behind reservations), whatever its fraction: its exact length, which may pass
-- 2^53, is never needed.
local longest_ahead = div(capacity, limit)
local function queued()
  local ahead = drains_at - now
  if ahead < 0 then return 0 end
  if ahead > longest_ahead then return capacity + 1 end
  return ahead * limit + fraction
end
)lua";

inline constexpr std::string_view leaky_bucket_take = R"lua(
local reserving = ARGV[8] ~= nil and ARGV[8] ~= ''
local allowed, retry, delay = 0, 0, 0
if cost > burst then
  retry = -1
elseif reserving then
  -- ARGV[8]: a reservation's longest wait in units. It is admitted iff its delay, the time
  -- until the queue ahead of it drains, is at most that wait, however long the queue: it
  -- may pass the capacity, and its length in 1/limit unit pass 2^53, so it is counted
  -- from drains_at in whole units. The storage clamps the wait to 2^50 units, so that
  -- drains_at stays below 2^53.
  local max_wait = ARGV[8] + 0
  local start_at, start_fraction = now, 0
  if drains_at >= now then start_at, start_fraction = drains_at, fraction end
  local ready = start_at - now
  if start_fraction > 0 then ready = ready + 1 end
  if ready <= max_wait then
    allowed, delay = 1, ready
    local length = start_fraction + cost * period
    local whole = div(length, limit)
    drains_at, fraction = start_at + whole, length - whole * limit
  else
    -- At ready - max_wait from now the queue ahead is max_wait long.
    retry = ready - max_wait
  end
else
  -- A step is admitted iff the queue leaves room for it under the capacity.
  local waiting = queued()
  local room = capacity - cost * period
  if waiting <= room then
    allowed = 1
    delay = ceil_div(waiting, limit)
    local after = waiting + cost * period
    local whole = div(after, limit)
    drains_at, fraction = now + whole, after - whole * limit
  else
    -- The first instant at which at most `room` is queued.
    local admitted_from
    if room >= fraction then
      admitted_from = drains_at - div(room - fraction, limit)
    else
      admitted_from = drains_at + ceil_div(fraction - room, limit)
    end
    retry = math.max(0, admitted_from - now)
  end
end
)lua";

inline constexpr std::string_view leaky_bucket_settle = R"lua(
local held = queued()
local remaining = 0
if held < capacity then remaining = div(capacity - held, period) end
local drained = drains_at
if fraction > 0 then drained = drained + 1 end
local reset = math.max(0, drained - now)

save(key, old, struct.pack('<dd', drains_at, fraction), reset)
)lua";

inline constexpr std::string_view leaky_bucket_reply = R"lua(
-- A reservation also reports the queue it left, which its booking keeps for cancel.
if reserving then return {allowed, remaining, retry, reset, delay, drains_at, fraction} end
return {allowed, remaining, retry, reset, delay}
)lua";

inline constexpr std::string_view leaky_bucket_body =
    joined<leaky_bucket_state, leaky_bucket_take, leaky_bucket_settle, leaky_bucket_reply>::value;

/// algorithms::leaky_bucket::cancel. ARGV[5] is the booking's cost (0 gives back nothing),
/// ARGV[8] and ARGV[9] the queue it left, drains_at in units and fraction in 1/limit unit.
/// A missing key is a fresh one, which no booking left (C++'s fresh queue drained at the
/// beginning of the clock): it gives back nothing.
inline constexpr std::string_view leaky_bucket_cancel = R"lua(
if old and drains_at == ARGV[8] + 0 and fraction == ARGV[9] + 0 then
  -- tat - cost * period, without drains_at * limit (which may pass 2^53): the cost's
  -- length of queue is whole units plus a fraction below limit.
  local length = cost * period
  local whole = div(length, limit)
  drains_at, fraction = drains_at - whole, fraction - (length - whole * limit)
  if fraction < 0 then drains_at, fraction = drains_at - 1, fraction + limit end
end
)lua";

inline constexpr std::string_view leaky_bucket_cancel_body =
    joined<leaky_bucket_state, leaky_bucket_cancel, leaky_bucket_settle,
           bucket_cancel_reply>::value;

inline constexpr std::string_view fixed_window_body = R"lua(
-- State (window, count): window k covers [k * period, (k + 1) * period).
local key = KEYS[1]
local old = redis.call('GET', key)
local current = div(now, period)
local window, count = current, 0
if old then window, count = struct.unpack('<dd', old) end
-- A clock stepped back into an earlier window keeps counting in the later one.
if current > window then window, count = current, 0 end

local window_end = (window + 1) * period
local allowed, retry = 0, 0
if cost > limit then
  retry = -1
elseif cost <= limit - count then
  count = count + cost
  allowed = 1
else
  retry = math.max(0, window_end - now)
end
local reset = 0
if count > 0 then reset = math.max(0, window_end - now) end

save(key, old, struct.pack('<dd', window, count), reset)
return {allowed, math.max(limit - count, 0), retry, reset, 0}
)lua";

inline constexpr std::string_view sliding_log_body = R"lua(
-- State: a list of 24-byte records, oldest first, one per instant that admitted requests:
-- the instant, the costs admitted at it, and the running total of costs up to and
-- including it, modulo 2^52 (above any limit check() accepts: only differences of totals
-- are used, and they stay exact however long the key lives). The script reads the oldest
-- few records and the newest, and reaches further only by index: a long log never enters
-- Lua, where every string costs time per byte.
local key = KEYS[1]
local wrap = 4503599627370496
local chunk = 8
local oldest = redis.call('LRANGE', key, 0, chunk - 1)
local known = #oldest

-- Record i (from 0): its instant, cost and running total.
local function record(i)
  return struct.unpack('<ddd', oldest[i + 1] or redis.call('LINDEX', key, i))
end
local function between(from, to)
  local costs = to - from
  if costs < 0 then costs = costs + wrap end
  return costs
end
-- The first index in [from, to] at which `holds` is true, given that it holds at `to` and,
-- once true, stays true.
local function search(from, to, holds)
  while from < to do
    local middle = math.floor((from + to) / 2)
    if holds(middle) then
      to = middle
    else
      from = middle + 1
    end
  end
  return from
end
local length
local function last_index()
  if known < chunk then return known - 1 end
  if not length then length = redis.call('LLEN', key) end
  return length - 1
end
local function live(i)
  return now - record(i) < period
end

-- Records before `first` are out of (now - period, now]. Instants strictly increase, so
-- those are a prefix, and the whole log once the newest is out: then first is -1.
local first, newest_at, newest_cost, newest_total = 0, nil, 0, 0
if known > 0 then
  if known < chunk then
    newest_at, newest_cost, newest_total = struct.unpack('<ddd', oldest[known])
  else
    newest_at, newest_cost, newest_total = struct.unpack('<ddd', redis.call('LINDEX', key, -1))
  end
  if now - newest_at >= period then
    first, newest_at = -1, nil
  else
    while first < known and not live(first) do first = first + 1 end
    if first == known then first = search(first, last_index(), live) end
  end
end
local sum = 0
if newest_at then
  local _, cost_first, total_first = record(first)
  sum = between(total_first - cost_first, newest_total)
end

local allowed, retry, push, replace = 0, 0, nil, nil
if cost > limit then
  retry = -1
elseif cost <= limit - sum then
  allowed = 1
  local total = cost
  if newest_at then
    total = newest_total + cost
    if total >= wrap then total = total - wrap end
  end
  -- A clock stepped back stamps at the newest instant seen: the request counts for at
  -- least its period. Requests at one instant share one record.
  if newest_at and now <= newest_at then
    replace = struct.pack('<ddd', newest_at, newest_cost + cost, total)
  else
    newest_at = now
    push = struct.pack('<ddd', now, cost, total)
  end
  sum = sum + cost
else
  -- The oldest record whose expiry leaves at most limit - cost behind it.
  local function frees(i)
    local _, _, total = record(i)
    return between(total, newest_total) <= limit - cost
  end
  local i = first
  while i < known and not frees(i) do i = i + 1 end
  if i >= known then i = search(i, last_index(), frees) end
  retry = math.max(0, record(i) + period - now)
end

local reset = 0
if newest_at then reset = math.max(0, newest_at + period - now) end
if first < 0 then
  redis.call('DEL', key)
elseif first > 0 then
  redis.call('LTRIM', key, first, -1)
end
if push then redis.call('RPUSH', key, push) end
if replace then redis.call('LSET', key, -1, replace) end
if reset > 0 and (first ~= 0 or allowed == 1) then redis.call('PEXPIRE', key, ttl(reset)) end
return {allowed, math.max(limit - sum, 0), retry, reset, 0}
)lua";

inline constexpr std::string_view sliding_window_counter_body = R"lua(
-- State (window, previous, current): the counts of windows window - 1 and window, each
-- aligned as in the fixed window.
local key = KEYS[1]
local old = redis.call('GET', key)
local index = div(now, period)
local window, previous, current = index, 0, 0
if old then window, previous, current = struct.unpack('<ddd', old) end
if index > window then
  if index == window + 1 then previous = current else previous = 0 end
  window, current = index, 0
end

-- Both sides of previous * (period - elapsed) / period + current + cost <= limit are
-- scaled by period, so the comparison never rounds. A clock stepped back before this
-- window weighs the previous one fully.
local start = window * period
local elapsed = math.min(math.max(now - start, 0), period)
local capacity = limit * period
local carried = previous * (period - elapsed)

local allowed, retry = 0, 0
if cost > limit then
  retry = -1
elseif current + cost <= limit and carried <= capacity - (current + cost) * period then
  current = current + cost
  allowed = 1
else
  -- The weighted count only falls with time: the answer is the first instant the weight
  -- of the window before drops enough, in this window or, once current alone is too
  -- many, in the next, where current becomes the window before. The weight is never 0.
  local fits = current + cost <= limit
  local weight, room, window_end = current, limit - cost, start + 2 * period
  if fits then weight, room, window_end = previous, limit - current - cost, start + period end
  local admitted_from = window_end - math.min(div(room * period, weight), period)
  retry = math.max(0, admitted_from - now)
end

local remaining = math.max(div(capacity - carried, period) - current, 0)
local reset = 0
if current > 0 then
  reset = math.max(0, start + 2 * period - now)
elseif previous > 0 then
  reset = math.max(0, start + period - now)
end

save(key, old, struct.pack('<ddd', window, previous, current), reset)
return {allowed, remaining, retry, reset, 0}
)lua";

template <>
struct script<algorithms::token_bucket> {
  static constexpr std::string_view name = "tb";
  static constexpr int keys = 1;
  static constexpr std::string_view body = token_bucket_body;
  static constexpr std::string_view source = joined<prelude, token_bucket_body>::value;

  /// Throws std::invalid_argument naming the field and its value unless the script decides
  /// `q` exactly in units of `unit_ns`.
  static void check(const quota& q, std::int64_t unit_ns) {
    const std::int64_t period = period_in_units("token_bucket", q, unit_ns);
    check_bucket("token_bucket", q, period, unit_ns, false);
  }
};

template <>
struct script<algorithms::leaky_bucket> {
  static constexpr std::string_view name = "lb";
  static constexpr int keys = 1;
  static constexpr std::string_view body = leaky_bucket_body;
  static constexpr std::string_view source = joined<prelude, leaky_bucket_body>::value;

  /// Throws std::invalid_argument naming the field and its value unless the script decides
  /// `q` exactly in units of `unit_ns`.
  static void check(const quota& q, std::int64_t unit_ns) {
    const std::int64_t period = period_in_units("leaky_bucket", q, unit_ns);
    // A queue length is at most the capacity plus a fraction below limit.
    check_bucket("leaky_bucket", q, period, unit_ns, true);
  }
};

/// The script that gives back what a reservation of algorithm A booked: one
/// specialization per reservable algorithm that Redis serves. It runs on the key of
/// `script<A>`.
template <class A>
struct cancel_script;

template <>
struct cancel_script<algorithms::token_bucket> {
  static constexpr std::string_view source = joined<prelude, token_bucket_cancel_body>::value;
};

template <>
struct cancel_script<algorithms::leaky_bucket> {
  static constexpr std::string_view source = joined<prelude, leaky_bucket_cancel_body>::value;
};

template <>
struct script<algorithms::fixed_window> {
  static constexpr std::string_view name = "fw";
  static constexpr int keys = 1;
  static constexpr std::string_view body = fixed_window_body;
  static constexpr std::string_view source = joined<prelude, fixed_window_body>::value;

  /// Throws std::invalid_argument naming the field and its value unless the script decides
  /// `q` exactly in units of `unit_ns`.
  static void check(const quota& q, std::int64_t unit_ns) {
    period_in_units("fixed_window", q, unit_ns);
    check_exact("fixed_window", "limit", q.limit);
  }
};

template <>
struct script<algorithms::sliding_log> {
  static constexpr std::string_view name = "sl";
  static constexpr int keys = 1;
  static constexpr std::string_view body = sliding_log_body;
  static constexpr std::string_view source = joined<prelude, sliding_log_body>::value;

  /// Throws std::invalid_argument naming the field and its value unless the script decides
  /// `q` exactly in units of `unit_ns`.
  static void check(const quota& q, std::int64_t unit_ns) {
    period_in_units("sliding_log", q, unit_ns);
    // The running totals wrap at 2^52: a difference of two is unambiguous below that.
    if (q.limit >= std::int64_t{1} << 52) {
      reject_quota("sliding_log", "limit must be < 2^52 (got " + std::to_string(q.limit) + ")");
    }
  }
};

template <>
struct script<algorithms::sliding_window_counter> {
  static constexpr std::string_view name = "swc";
  static constexpr int keys = 1;
  static constexpr std::string_view body = sliding_window_counter_body;
  static constexpr std::string_view source = joined<prelude, sliding_window_counter_body>::value;

  /// Throws std::invalid_argument naming the field and its value unless the script decides
  /// `q` exactly in units of `unit_ns`.
  static void check(const quota& q, std::int64_t unit_ns) {
    const std::int64_t period = period_in_units("sliding_window_counter", q, unit_ns);
    if (wide_mul(static_cast<std::uint64_t>(q.limit), static_cast<std::uint64_t>(period)) >=
        static_cast<u128>(exact_below)) {
      reject_quota("sliding_window_counter", "limit * period must be < 2^53 (got limit " +
                                                 std::to_string(q.limit) + ", period " +
                                                 in_units(period, unit_ns) + ")");
    }
  }
};

/// What a multi-rule script runs before its rules: the rules' commands go through
/// `deferring`, which runs reads at once and queues writes, so that a set some rule rejects
/// writes nothing. That is exact because no body reads a key after writing it: each reads
/// its state, decides, then writes (the sliding log's LTRIM, RPUSH, LSET and PEXPIRE come
/// last, after its every LRANGE, LINDEX and LLEN), and the rules' keys are distinct.
inline constexpr std::string_view multi_deferring = R"lua(
-- Every rule reads through this, and queues its writes here until all have decided.
local writes = {}
local reads = {GET = true, LRANGE = true, LINDEX = true, LLEN = true}
local queued = {SET = true, DEL = true, LTRIM = true, RPUSH = true, LSET = true, PEXPIRE = true}
local deferring = {error_reply = redis.error_reply, status_reply = redis.status_reply}
function deferring.call(command, ...)
  if reads[command] then return redis.call(command, ...) end
  if not queued[command] then error('ratelimit: a rule ran ' .. command) end
  writes[#writes + 1] = {command, ...}
end
)lua";

/// The end of a multi-rule script: every rule decides on its own key and arguments; the
/// writes run only if every rule admitted the request. ARGV: now (or empty), unit_ns, TTL
/// slack, then limit, period, burst and cost of each rule. The reply: each rule's five
/// integers, one after the other.
inline constexpr std::string_view multi_main = R"lua(
local replies, admitted = {}, true
for i = 1, #rules do
  local at = 3 + (i - 1) * 4
  local reply = rules[i]({KEYS[i]}, {ARGV[1], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3],
                                     ARGV[at + 4], ARGV[2], ARGV[3]})
  if reply.err then return reply end
  if reply[1] ~= 1 then admitted = false end
  for j = 1, 5 do replies[#replies + 1] = reply[j] end
end
if admitted then
  for i = 1, #writes do redis.call(unpack(writes[i])) end
end
return replies
)lua";

/// The script deciding rules of algorithms `As...` as one, all or nothing: one key each
/// (KEYS[i] for rule i), the shared time read once. Each rule runs its algorithm's body
/// unchanged, as a function whose KEYS, ARGV and redis are its own.
template <class... As>
struct multi_script {
  static_assert(((script<As>::keys == 1) && ...), "multi_script: one key per rule");

  static const std::string& source() {
    static const std::string text = [] {
      std::string out{prelude_time};
      out.append(prelude_arithmetic).append(multi_deferring);
      int index = 0;
      std::string list;
      const auto add_rule = [&](std::string_view body) {
        const std::string name = "rule_" + std::to_string(++index);
        out.append("\nlocal function ")
            .append(name)
            .append("(KEYS, ARGV)\nlocal redis = deferring\n");
        out.append(prelude_arguments).append(prelude_state).append(body).append("end\n");
        list.append(list.empty() ? "" : ", ").append(name);
      };
      (add_rule(script<As>::body), ...);
      out.append("\nlocal rules = {").append(list).append("}\n").append(multi_main);
      return out;
    }();
    return text;
  }
};

}  // namespace ratelimit::detail::redis
