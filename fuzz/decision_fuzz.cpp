// The decision math, fuzzed: the input chooses an algorithm, a quota anywhere within
// quota::max_units, a starting instant anywhere in int64 time, and a sequence of calls on one
// key: try_acquire (A::step), reserve and cancel (the buckets; a window algorithm steps
// instead), and clock steps forward and back, some of them to the instants the last decision
// named (retry_after, reset_after, delay, give or take a nanosecond). Every call is checked
//  * against an independent model (tests/support/reference_models.hpp, which the reference
//    model tests hold the library to as well): every field of every decision, and
//  * for the properties DESIGN and docs/guarantees.md state, on the library's own answers:
//    a rejection consumes nothing (probes of the key with and without it agree); retry_after
//    is exact (1ns earlier the same call is turned down, at it the call passes); remaining
//    and reset_after are what they say; no standing set of admitted requests exceeds the
//    algorithm's bound (token bucket: burst + rate × span; leaky bucket: departures one
//    interval apart; windows: limit per aligned window; sliding log: limit per period);
//    and the fields are in range.
// Undefined behaviour anywhere is caught by UBSan.
//
// Input: algorithm (1 byte), limit, period, burst, start, then calls (see `run`). Written by
// fuzz/make_corpus.py in the same order.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <optional>
#include <ratelimit/algorithms/fixed_window.hpp>
#include <ratelimit/algorithms/leaky_bucket.hpp>
#include <ratelimit/algorithms/sliding_log.hpp>
#include <ratelimit/algorithms/sliding_window_counter.hpp>
#include <ratelimit/algorithms/token_bucket.hpp>
#include <ratelimit/quota.hpp>
#include <string>
#include <type_traits>
#include <vector>

#include "byte_reader.hpp"
#include "support/reference_models.hpp"

namespace {

namespace algorithms = ratelimit::algorithms;
namespace model = ratelimit_test::model;
using model::describe;
using model::same;
using ratelimit::decision;
using ratelimit::quota;
using ratelimit_fuzz::int64_max;
using ratelimit_fuzz::int64_min;
using ratelimit_test::i128;
using std::chrono::nanoseconds;

constexpr int max_calls = 1500;

/// The calls made so far, printed when a check fails.
class transcript {
 public:
  void start(const char* algorithm, const quota& q, std::int64_t now) {
    lines_.clear();
    header_ = std::string(algorithm) + " " + ratelimit_test::describe(q) + " starting at " +
              std::to_string(now);
  }
  void add(std::string line) { lines_.push_back(std::move(line)); }

  [[noreturn]] void fail(const std::string& what) const {
    std::fprintf(stderr, "decision_fuzz: %s\n  %s\n", what.c_str(), header_.c_str());
    for (const std::string& line : lines_) std::fprintf(stderr, "  %s\n", line.c_str());
    std::abort();
  }

 private:
  std::string header_;
  std::vector<std::string> lines_;
};

transcript history;

// ---------------------------------------------------------------------------------------------
// One interface over the five algorithms (their models: model::model_of).
// ---------------------------------------------------------------------------------------------

/// Indexed by the input's first byte.
constexpr const char* algorithm_names[] = {"token_bucket", "leaky_bucket", "fixed_window",
                                           "sliding_log", "sliding_window_counter"};

/// The buckets hold up to burst and take reservations; the windows hold up to limit and
/// only step.
template <class A>
constexpr bool is_bucket =
    std::is_same_v<A, algorithms::token_bucket> || std::is_same_v<A, algorithms::leaky_bucket>;

template <class A>
std::int64_t capacity_of(const quota& q) {
  return is_bucket<A> ? q.burst : q.limit;
}

/// What a reservation of A took, for cancel; nothing for a window.
template <class A>
auto booking_of() {
  if constexpr (is_bucket<A>) {
    return typename A::booking{};
  } else {
    return '\0';
  }
}

/// A copy of a key's state, to probe it without touching it. The sliding log's state owns
/// its ring, so it is rebuilt stamp by stamp.
template <class A>
typename A::state copy_of(const typename A::state& s) {
  if constexpr (std::is_same_v<A, algorithms::sliding_log>) {
    typename A::state out;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (!out.push(s[i])) history.fail("out of memory copying a sliding log");
    }
    return out;
  } else {
    return s;
  }
}

/// A call on the key: a step, or a reservation waiting up to `max_wait` (buckets only).
struct call {
  std::int64_t cost;
  std::optional<std::int64_t> max_wait;
};

std::string describe(const call& c, std::int64_t now) {
  return "at " + std::to_string(now) +
         (c.max_wait
              ? ": reserve(" + std::to_string(c.cost) + ", " + std::to_string(*c.max_wait) + "ns)"
              : ": step(" + std::to_string(c.cost) + ")");
}

template <class A>
decision apply(typename A::state& s, const quota& q, std::int64_t now, const call& c,
               [[maybe_unused]] void* booking) {
  if constexpr (is_bucket<A>) {
    if (c.max_wait) {
      typename A::booking unused{};
      auto* b = booking != nullptr ? static_cast<typename A::booking*>(booking) : &unused;
      return A::reserve(s, q, now, c.cost, *c.max_wait, *b);
    }
  }
  return A::step(s, q, now, c.cost);
}

/// The same call on a copy of the key, at `at`.
template <class A>
decision probe(const typename A::state& s, const quota& q, std::int64_t at, const call& c) {
  typename A::state copy = copy_of<A>(s);
  return apply<A>(copy, q, at, c, nullptr);
}

// ---------------------------------------------------------------------------------------------
// The bounds: what the admitted requests still standing may never exceed.
// ---------------------------------------------------------------------------------------------

/// The buckets' bounds are the model's (model::token_bucket_overdraw and the leaky bucket's),
/// on the sends standing: admitted at `now`, served after the delay rounded up to the
/// nanosecond, so within limit - 1 ticks of the exact instant. The windows' are here.
class bounds {
 public:
  bounds(const quota& q, int algorithm, std::int64_t start)
      : q_(q),
        algorithm_(algorithm),
        latest_(start),
        latest_window_(static_cast<std::int64_t>(model::floor_div(start, q.period.count()))) {}

  /// Before each call: the clock reads `now`.
  void see(std::int64_t now) {
    if (now < latest_) log_window_.clear();  // the sliding log is checked between steps back
    latest_ = std::max(latest_, now);
    latest_window_ = std::max(latest_window_,
                              static_cast<std::int64_t>(model::floor_div(now, q_.period.count())));
  }

  /// An admission at `now` with `delay`; returns its id, for cancel.
  std::size_t admit(std::int64_t now, std::int64_t cost, nanoseconds delay, bool by_step) {
    const i128 limit = q_.limit;
    const i128 period = q_.period.count();
    const i128 slack = limit - 1;  // a delay is rounded up to the nanosecond
    switch (algorithm_) {
      case 0:  // token bucket: served after the delay, but never before the latest instant
        // seen, the bucket's own time when the clock stepped back
        stand(std::max<i128>(latest_, i128{now} + delay.count()) * limit, cost);
        expect_none(model::token_bucket_overdraw(q_, standing(), slack));
        break;
      case 1: {  // leaky bucket: served at now + delay, one interval per unit apart
        stand((i128{now} + delay.count()) * limit, cost);
        const std::vector<model::send> sends = standing();
        expect_none(model::leaky_bucket_crowding(q_, sends, slack));
        // and try_acquire never queues past the burst
        if (by_step) expect_none(model::leaky_bucket_overfull(q_, sends, now, slack));
        break;
      }
      case 2:
      case 4: {  // windows: at most limit per aligned window, counted where the key counts it
        if ((per_window_[latest_window_] += cost) > q_.limit) {
          history.fail("an aligned window admitted more than the limit");
        }
        break;
      }
      case 3: {  // sliding log: at most limit in any period
        while (!log_window_.empty() && i128{log_window_.front().at} + period <= now) {
          log_window_.pop_front();
        }
        log_window_.push_back({now, cost});
        i128 sum = 0;
        for (const model::send& s : log_window_) sum += s.cost;
        if (sum > q_.limit) history.fail("one period holds more than the limit");
        break;
      }
    }
    return next_id_++;
  }

  void cancel(std::size_t id) {
    const auto found = served_at_.find(id);
    if (found == served_at_.end()) return;
    standing_.erase({found->second, id});
    served_at_.erase(found);
  }

 private:
  void stand(i128 at, std::int64_t cost) {
    standing_.emplace(std::pair{at, next_id_}, cost);
    served_at_.emplace(next_id_, at);
  }
  /// The sends standing, by instant and then in order of admission.
  std::vector<model::send> standing() const {
    std::vector<model::send> out;
    for (const auto& [key, cost] : standing_) out.push_back({key.first, cost});
    return out;
  }
  static void expect_none(const std::string& violation) {
    if (!violation.empty()) history.fail(violation);
  }

  quota q_;
  int algorithm_;
  std::int64_t latest_;
  std::int64_t latest_window_;
  /// The sends standing, by (instant, id): their costs.
  std::map<std::pair<i128, std::size_t>, std::int64_t> standing_;
  std::map<std::size_t, i128> served_at_;
  std::map<std::int64_t, std::int64_t> per_window_;
  std::deque<model::send> log_window_;  ///< at: nanoseconds
  std::size_t next_id_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The checks on one decision.
// ---------------------------------------------------------------------------------------------

/// The fields of decision `d` of call `c` are in range. A cancel's decision is the key's state,
/// as a decision admitting nothing with no wait (`c` empty).
template <class A>
void check_fields(const decision& d, const quota& q, std::optional<call> c) {
  const std::int64_t capacity = capacity_of<A>(q);
  if (d.limit != q.limit || d.degraded) history.fail("limit or degraded wrong: " + describe(d));
  if (d.remaining < 0 || d.remaining > capacity)
    history.fail("remaining out of range: " + describe(d));
  if (d.reset_after < nanoseconds::zero()) history.fail("negative reset_after: " + describe(d));
  if (d.delay < nanoseconds::zero()) history.fail("negative delay: " + describe(d));
  if (d.delay == nanoseconds::max()) history.fail("a delay that reads as never: " + describe(d));
  if (d.allowed && d.retry_after != nanoseconds::zero()) {
    history.fail("admitted with a retry_after: " + describe(d));
  }
  if (!d.allowed && d.delay != nanoseconds::zero())
    history.fail("rejected with a delay: " + describe(d));
  if (!c) {
    if (d.allowed || d.retry_after != nanoseconds::zero()) history.fail("a cancel admits or waits");
    return;
  }
  if (!d.allowed && d.retry_after <= nanoseconds::zero()) {
    history.fail("rejected with no wait: " + describe(d));
  }
  if (c->cost > capacity && (d.allowed || d.retry_after != nanoseconds::max())) {
    history.fail("a cost above the capacity is not \"never\": " + describe(d));
  }
  const bool may_delay = std::is_same_v<A, algorithms::leaky_bucket> || c->max_wait.has_value();
  if (!may_delay && d.delay != nanoseconds::zero())
    history.fail("a delay from a step: " + describe(d));
  // A negative max_wait is no wait at all.
  if (c->max_wait && d.delay.count() > std::max<std::int64_t>(*c->max_wait, 0))
    history.fail("a delay beyond max_wait");
}

/// The properties of a decision `d` of call `c` at `now`, which left the key at `after`;
/// `before` is the key as it was.
template <class A>
void check_properties(const typename A::state& before, const typename A::state& after,
                      const quota& q, std::int64_t now, const call& c, const decision& d) {
  const std::int64_t capacity = capacity_of<A>(q);
  const call one{1, std::nullopt};
  const call all{capacity, std::nullopt};
  if (!d.allowed) {
    // A rejection consumes nothing: at this instant the key answers as if it never came.
    for (const call& p : {one, all, c}) {
      const decision with = probe<A>(after, q, now, p);
      const decision without = probe<A>(before, q, now, p);
      if (!same(with, without)) {
        history.fail("a rejection changed the key: probing it with " + describe(p, now) +
                     " gives " + describe(with) + ", without the rejection " + describe(without));
      }
    }
    // retry_after is exact: the same call passes then, and not a nanosecond earlier.
    if (d.retry_after != nanoseconds::max() && i128{now} + d.retry_after.count() <= int64_max) {
      const std::int64_t at = now + d.retry_after.count();
      const decision early = probe<A>(after, q, at - 1, c);
      const decision then = probe<A>(after, q, at, c);
      if (early.allowed || !then.allowed) {
        history.fail("retry_after " + std::to_string(d.retry_after.count()) +
                     " is not exact: 1ns before " + describe(early) + ", at it " + describe(then));
      }
    }
  }
  // remaining: that much passes now, and one more does not.
  if (d.remaining > 0 && !probe<A>(after, q, now, {d.remaining, std::nullopt}).allowed) {
    history.fail("`remaining` does not pass now");
  }
  if (probe<A>(after, q, now, {d.remaining + 1, std::nullopt}).allowed) {
    history.fail("more than `remaining` passes now");
  }
  // reset_after: a whole capacity passes then.
  if (d.reset_after != nanoseconds::max() && i128{now} + d.reset_after.count() <= int64_max &&
      !probe<A>(after, q, now + d.reset_after.count(), all).allowed) {
    history.fail("the quota is not full at reset_after");
  }
}

// ---------------------------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------------------------

std::int64_t saturating_add(std::int64_t a, i128 b) {
  return static_cast<std::int64_t>(std::clamp<i128>(i128{a} + b, int64_min, int64_max));
}

/// A cost: small, near the capacity, the last `remaining` (and one more), or anything.
std::int64_t read_cost(ratelimit_fuzz::byte_reader& in, std::int64_t capacity,
                       const decision& last) {
  const std::uint8_t mode = in.byte();
  switch (mode % 4) {
    case 0:
      return 1 + mode / 4 % 8;
    case 1:
      return std::max<std::int64_t>(1, saturating_add(capacity, (mode / 4 % 5) - 3));
    case 2:
      return std::max<std::int64_t>(1, saturating_add(last.remaining, mode / 4 % 2));
    default:
      return in.sized(1, int64_max);
  }
}

/// A clock step: small, a number of intervals give or take a nanosecond, what the last
/// decision named give or take a nanosecond, or anything.
std::int64_t read_step(ratelimit_fuzz::byte_reader& in, const quota& q, const decision& last) {
  const std::uint8_t mode = in.byte();
  const i128 interval = model::ceil_div(q.period.count(), q.limit);
  const i128 nudge = (mode / 8 % 3) - 1;
  switch (mode % 8) {
    case 0:
      return in.byte();
    case 1:
      return static_cast<std::int64_t>(
          std::clamp<i128>(interval * (1 + in.byte() % 4) + nudge, 0, int64_max));
    case 2:
      return saturating_add(last.retry_after.count(), nudge);
    case 3:
      return saturating_add(last.reset_after.count(), nudge);
    case 4:
      return saturating_add(last.delay.count(), nudge);
    case 5:
      return saturating_add(q.period.count(), nudge);
    default:
      return in.sized(0, int64_max);
  }
}

template <class A>
void run(const quota& q, int algorithm, std::int64_t start, ratelimit_fuzz::byte_reader& in) {
  history.start(algorithm_names[algorithm], q, start);
  typename A::state state = A::fresh(q, start);
  auto expected = model::model_of<A>(q, start);
  bounds admitted(q, algorithm, start);
  std::int64_t now = start;
  decision last{};

  struct held {
    decltype(booking_of<A>()) booking;
    model::bucket::booking modelled;
    std::size_t send;
    bool outstanding;
  };
  std::vector<held> bookings;

  for (int i = 0; i < max_calls && !in.empty(); ++i) {
    const std::uint8_t op = in.byte();
    switch (op % 8) {
      case 0:
      case 1:
      case 2:
      case 3: {  // a step, or (2, 3) a reservation
        call c{read_cost(in, capacity_of<A>(q), last), std::nullopt};
        if (op % 8 >= 2 && is_bucket<A>) {
          if ((op & 0x80) != 0) {
            c.max_wait = in.sized(0, int64_max);
          } else {
            // Some intervals, give or take up to 128ns: below none, a negative wait.
            const i128 intervals = in.byte();
            const i128 nudge = in.byte() - 128;
            c.max_wait = static_cast<std::int64_t>(
                std::clamp<i128>(intervals * model::ceil_div(q.period.count(), q.limit) + nudge,
                                 int64_min, int64_max));
          }
        }
        admitted.see(now);
        typename A::state before = copy_of<A>(state);
        held h{};
        const decision d = apply<A>(state, q, now, c, &h.booking);
        decision want;
        if constexpr (is_bucket<A>) {
          want = c.max_wait ? expected.reserve(now, c.cost, *c.max_wait, h.modelled)
                            : expected.step(now, c.cost);
        } else {
          want = expected.step(now, c.cost);
        }
        history.add(describe(c, now) + " -> " + describe(d));
        if (!same(d, want)) history.fail("the model decides " + describe(want));
        check_fields<A>(d, q, c);
        check_properties<A>(before, state, q, now, c, d);
        if (d.allowed) {
          h.send = admitted.admit(now, c.cost, d.delay, !c.max_wait);
          h.outstanding = true;
          if (c.max_wait) bookings.push_back(h);
        }
        last = d;
        break;
      }
      case 4: {  // cancel one of the latest reservations still outstanding
        if constexpr (is_bucket<A>) {
          if (bookings.empty()) break;
          held& h = bookings[bookings.size() - 1 - in.byte() % bookings.size()];
          if (!h.outstanding) break;
          h.outstanding = false;
          admitted.see(now);
          admitted.cancel(h.send);
          const decision d = A::cancel(state, q, now, h.booking);
          const decision want = expected.cancel(now, h.modelled);
          history.add("at " + std::to_string(now) + ": cancel -> " + describe(d));
          if (!same(d, want)) history.fail("the model's key after the cancel: " + describe(want));
          check_fields<A>(d, q, std::nullopt);
        }
        break;
      }
      case 5:
      case 6: {  // the clock steps forward
        const std::int64_t by = read_step(in, q, last);
        now = saturating_add(now, by);
        history.add("advance " + std::to_string(by));
        break;
      }
      default: {  // the clock steps back
        const std::int64_t by = read_step(in, q, last);
        now = saturating_add(now, -i128{by});
        history.add("back " + std::to_string(by));
        break;
      }
    }
  }
}

/// Indexed like algorithm_names.
constexpr void (*runs[])(const quota&, int, std::int64_t, ratelimit_fuzz::byte_reader&) = {
    run<algorithms::token_bucket>, run<algorithms::leaky_bucket>, run<algorithms::fixed_window>,
    run<algorithms::sliding_log>, run<algorithms::sliding_window_counter>};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ratelimit_fuzz::byte_reader in(data, size);
  const int algorithm = in.byte() % 5;
  const std::int64_t limit = in.sized(1, quota::max_units);
  const std::int64_t period = in.sized(1, int64_max);
  const std::uint8_t burst_mode = in.byte();
  const std::int64_t burst = burst_mode % 2 == 0 ? limit : in.sized(1, quota::max_units);
  const quota q = quota::per(limit, nanoseconds{period}).with_burst(burst);
  const std::int64_t start = in.signed_value();
  runs[algorithm](q, algorithm, start, in);
  return 0;
}
