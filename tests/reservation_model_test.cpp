// Reservations (reserve / cancel) of the two buckets against an independent model.
//
// Every admitted request is a send of `cost` units at its act instant, admit time + delay.
// The model keeps the explicit schedule of the sends still standing (admitted, not cancelled)
// in exact integers, and holds the library to it:
//  * safety, after any sequence: the standing sends conform to the bucket, and the key owes at
//    least what they oblige, so that no later request can break the bucket either;
//  * exactness, while the model can follow the key (cancels of the latest booking only): every
//    field of every decision is the model's, to the nanosecond;
//  * a cancel with nothing booked since, a rejection, a second cancel, a cancel of a rejected or
//    moved-from reservation leave the key as a twin limiter that never saw them.
// Seeded random sequences over awkward quotas; a failure prints the quota, the seed and the
// calls. The model is the bucket's definition, not the library's arithmetic: a token bucket's
// sends conform iff every run of them from t_i to t_j sends at most
// burst + (t_j − t_i)·limit/period units; a leaky bucket's departures are cost·period/limit
// apart, and try_acquire never queues past `burst` (a reservation is bounded by its max_wait).
// Those bounds are in tests/support/reference_models.hpp, shared with fuzz/decision_fuzz.
//
// A delay is the exact wait rounded up to the nanosecond, so the instants a caller serves at
// lie up to 1ns after the exact ones, and two of them may come that much closer together than
// the rate allows (three reservations of 1 at 7/min, burst 1, are served 8'571'428'571ns
// apart, not 8'571'428'571.4). Where the tests see only the rounded instants (through the
// limiter), every bound is widened by that nanosecond; where they know the exact ones (the
// model's own, or the algorithm's state), the bounds are exact.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iostream>
#include <limits>
#include <optional>
#include <random>
#include <ratelimit/ratelimit.hpp>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "support/random_requests.hpp"
#include "support/reference_models.hpp"

namespace {

using namespace std::chrono_literals;
using ratelimit::decision;
using ratelimit::manual_clock;
using ratelimit::quota;
using ratelimit_test::describe;
using ratelimit_test::i128;
using ratelimit_test::model::ceil_div;
using ratelimit_test::model::describe;
using ratelimit_test::model::same;
using ratelimit_test::model::send;
using ratelimit_test::model::to_string;
using std::chrono::nanoseconds;

constexpr std::string_view key = "key";
constexpr std::int64_t forever = std::numeric_limits<std::int64_t>::max();

// The model's time is the library's nanoseconds scaled by the quota's limit: instant t is
// t·limit, and one unit of cost spans `period` of it (one interval, period/limit ns). Every
// instant the library computes exactly is then an integer: an act instant, a token bucket's
// deficit (in 1/period token), a leaky bucket's queue (in 1/limit ns).

i128 scaled(const quota& q, std::int64_t ns) { return i128{ns} * q.limit; }
i128 unit(const quota& q) { return q.period.count(); }
i128 capacity(const quota& q) { return q.burst * unit(q); }

/// The sends of one key (an admitted request: `cost` units sent at `at`, its act instant, in
/// the model's time), in booking order.
class schedule {
 public:
  std::size_t book(i128 at, std::int64_t cost) {
    sends_.push_back({{at, cost}, true});
    return sends_.size() - 1;
  }
  void cancel(std::size_t id) { sends_[id].standing = false; }

  /// The sends still standing, by act instant.
  std::vector<send> standing() const {
    std::vector<send> out;
    for (const booked& b : sends_) {
      if (b.standing) out.push_back(b.sent);
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const send& a, const send& b) { return a.at < b.at; });
    return out;
  }

  /// The latest booking still standing.
  std::optional<std::size_t> latest() const {
    for (std::size_t i = sends_.size(); i > 0; --i) {
      if (sends_[i - 1].standing) return i - 1;
    }
    return std::nullopt;
  }

 private:
  struct booked {
    send sent;
    bool standing;
  };
  std::vector<booked> sends_;
};

/// What the model expects of a call: the decision, and the admitted send's exact act instant.
struct expected {
  decision d;
  std::optional<i128> at;
};

/// Token bucket: `burst` tokens, refilled at limit/period. In the model's time a unit of cost
/// is `period` and the bucket holds burst·period.
struct token_bucket_model {
  using algorithm = ratelimit::algorithms::token_bucket;
  using limiter = ratelimit::token_bucket<manual_clock>;
  /// try_acquire admits only what it can serve now.
  static constexpr std::int64_t try_acquire_wait = 0;

  /// The sends played in order of act instant through GCRA, tat = max(at, tat) + cost·period:
  /// the instant the bucket is full again. Unrolled, it is the max over sends i of
  /// at_i + period·(units sent from at_i on), so it is the least the key can owe: with more
  /// than burst − (tat − now)/period tokens, a request could wait for the instant of send i
  /// and take them on top of send i and every send after it.
  static std::optional<i128> tat(const quota& q, const std::vector<send>& sends) {
    std::optional<i128> tat;
    for (const send& s : sends) tat = std::max(s.at, tat.value_or(s.at)) + s.cost * unit(q);
    return tat;
  }

  /// What the standing sends oblige the key to owe at `now`: the deficit, in 1/period token.
  static i128 owed(const quota& q, const std::vector<send>& sends, std::int64_t now) {
    const std::optional<i128> t = tat(q, sends);
    return t ? std::max<i128>(0, *t - scaled(q, now)) : 0;
  }

  /// The deficit the library's state holds at `now` (white box: for measuring only).
  static i128 held(const quota& q, const algorithm::state& s, std::int64_t now) {
    const i128 deficit = static_cast<i128>(s.deficit());
    return std::max<i128>(0,
                          deficit - std::max<i128>(0, scaled(q, now) - scaled(q, s.refilled_at)));
  }

  /// The act instant of a request of `cost` admitted at `now` that left the key owing `after`.
  static i128 act(const quota& q, i128 after, std::int64_t now, std::int64_t) {
    return scaled(q, now) + std::max<i128>(0, after - capacity(q));
  }

  /// DESIGN: admits iff tokens >= cost; a reservation also iff the tokens missing refill
  /// within max_wait, taking them at once (a debt) with `delay` the exact wait, rounded up.
  /// `reserving`: max_wait, else try_acquire.
  static expected predict(const quota& q, const std::vector<send>& sends, std::int64_t now,
                          std::int64_t cost, std::optional<std::int64_t> reserving) {
    const std::int64_t max_wait = reserving.value_or(0);
    i128 deficit = owed(q, sends, now);
    expected e{};
    e.d.limit = q.limit;
    if (cost > q.burst) {
      e.d.retry_after = nanoseconds::max();
    } else {
      const i128 missing = deficit + cost * unit(q) - capacity(q);
      const i128 wait = missing > 0 ? ceil_div(missing, q.limit) : 0;
      if (wait <= max_wait) {
        e.d.allowed = true;
        e.d.delay = nanoseconds{static_cast<std::int64_t>(wait)};
        e.at = scaled(q, now) + std::max<i128>(0, missing);
        deficit += cost * unit(q);
      } else {
        e.d.retry_after = nanoseconds{static_cast<std::int64_t>(wait - max_wait)};
      }
    }
    if (deficit < capacity(q)) {
      e.d.remaining = q.burst - static_cast<std::int64_t>(ceil_div(deficit, unit(q)));
    }
    e.d.reset_after = nanoseconds{static_cast<std::int64_t>(ceil_div(deficit, q.limit))};
    return e;
  }

  /// Empty if every run of sends, from the one at t_i to the one at t_j, sends at most
  /// burst + (t_j − t_i)·limit/period units. `slack` widens every run by as much (for
  /// instants rounded up).
  static std::string violation(const quota& q, const std::vector<send>& sends, std::int64_t,
                               i128 slack) {
    return ratelimit_test::model::token_bucket_overdraw(q, sends, slack);
  }

  /// The bucket bound is all there is (see violation).
  static std::string overfull(const quota&, const std::vector<send>&, std::int64_t, i128) {
    return "";
  }
};

/// Leaky bucket: a queue of at most `burst` units drained one per period/limit ns. In the
/// model's time a unit of cost is `period` and the queue holds burst·period.
struct leaky_bucket_model {
  using algorithm = ratelimit::algorithms::leaky_bucket;
  using limiter = ratelimit::leaky_bucket<manual_clock>;
  /// try_acquire admits whatever fits in the queue, with the delay that spaces it out.
  static constexpr std::int64_t try_acquire_wait = forever;

  /// The instant the queue drains: the end of the last standing send's slot, at + cost·period.
  /// The least a FIFO queue can hold: a request queued before it would leave inside that slot.
  static std::optional<i128> tat(const quota& q, const std::vector<send>& sends) {
    std::optional<i128> tat;
    for (const send& s : sends) tat = std::max(tat.value_or(s.at), s.at + s.cost * unit(q));
    return tat;
  }

  /// What the standing sends oblige the queue to hold at `now`, in 1/limit ns.
  static i128 owed(const quota& q, const std::vector<send>& sends, std::int64_t now) {
    const std::optional<i128> t = tat(q, sends);
    return t ? std::max<i128>(0, *t - scaled(q, now)) : 0;
  }

  /// The queue the library's state holds at `now` (white box: for measuring only).
  static i128 held(const quota& q, const algorithm::state& s, std::int64_t now) {
    return std::max<i128>(0, scaled(q, s.drains_at) + s.fraction - scaled(q, now));
  }

  static i128 act(const quota& q, i128 after, std::int64_t now, std::int64_t cost) {
    return scaled(q, now) + after - cost * unit(q);
  }

  /// DESIGN: delay = max(0, tat − now); try_acquire admits iff delay + cost·I <= burst·I, a
  /// reservation iff delay <= max_wait (its own bound, in place of the queue's size); then
  /// tat = now + delay + cost·I.
  static expected predict(const quota& q, const std::vector<send>& sends, std::int64_t now,
                          std::int64_t cost, std::optional<std::int64_t> reserving) {
    std::optional<i128> drains = tat(q, sends);
    i128 queued = owed(q, sends, now);
    expected e{};
    e.d.limit = q.limit;
    if (cost > q.burst) {
      e.d.retry_after = nanoseconds::max();
    } else {
      const i128 room = reserving ? scaled(q, *reserving) : capacity(q) - cost * unit(q);
      if (queued <= room) {
        e.d.allowed = true;
        e.d.delay = nanoseconds{static_cast<std::int64_t>(ceil_div(queued, q.limit))};
        e.at = scaled(q, now) + queued;
        queued += cost * unit(q);
        drains = *e.at + cost * unit(q);
      } else {
        e.d.retry_after =
            nanoseconds{static_cast<std::int64_t>(ceil_div(*drains - room, q.limit) - now)};
      }
    }
    if (queued < capacity(q)) {
      e.d.remaining = static_cast<std::int64_t>((capacity(q) - queued) / unit(q));
    }
    if (drains) {
      e.d.reset_after = nanoseconds{
          static_cast<std::int64_t>(std::max<i128>(0, ceil_div(*drains, q.limit) - now))};
    }
    return e;
  }

  /// Empty if consecutive departures are at least the previous one's cost·period apart.
  /// `slack`: instants rounded up.
  static std::string violation(const quota& q, const std::vector<send>& sends, std::int64_t,
                               i128 slack) {
    return ratelimit_test::model::leaky_bucket_crowding(q, sends, slack);
  }

  /// Empty if the queue holds at most burst·period of service at `now`: so it must right after
  /// try_acquire admits a request (reservations are bounded by their max_wait instead).
  static std::string overfull(const quota& q, const std::vector<send>& sends, std::int64_t now,
                              i128 slack) {
    return ratelimit_test::model::leaky_bucket_overfull(q, sends, now, slack);
  }
};

/// Rates that are no whole number of nanoseconds a unit, bursts above, below and at one, and
/// costs in the thousands.
std::vector<quota> awkward_quotas() {
  return {
      quota::per_minute(7),
      quota::per(10, 13s).with_burst(3),
      quota::per_minute(7).with_burst(20),
      quota::per(3, 1s).with_burst(1),
      quota::per(1000, 7s).with_burst(1500),
      quota::per(7, 1'000'000'007ns).with_burst(5),
      quota::per_hour(1'000'003).with_burst(100'000),
      quota::per(1'000'003, 1s).with_burst(64),
  };
}

/// Seeded calls for one key: costs, longest waits and clock steps that land on the edges.
/// `crowded`: long waits and short steps, so that reservations pile up behind each other.
class workload {
 public:
  workload(const quota& q, std::uint64_t seed, bool crowded = false)
      : q_(q), rng_(seed), crowded_(crowded) {}

  int percent() { return static_cast<int>(uniform(0, 99)); }
  bool chance(int percent_) { return percent() < percent_; }
  std::size_t pick(std::size_t n) {
    return static_cast<std::size_t>(uniform(0, static_cast<std::int64_t>(n) - 1));
  }

  std::int64_t cost() {
    const std::int64_t burst = q_.burst;
    const int p = percent();
    if (p < 45) return uniform(1, std::min<std::int64_t>(burst, 3));
    if (p < 75) return uniform(1, burst);
    if (p < 85) return burst;
    if (p < 90) return burst + 1;
    return uniform(1, 2 * burst);
  }

  std::int64_t max_wait() {
    if (crowded_ && chance(50)) return 10 * drain();
    const int p = percent();
    if (p < 25) return 0;
    if (p < 50) return uniform(0, 3 * interval());
    if (p < 75) return uniform(0, drain());
    if (p < 90) return uniform(0, 3 * drain());
    return 10 * drain();
  }

  std::int64_t step() {
    if (crowded_ && chance(80)) return uniform(0, 1) * uniform(0, interval());
    const int p = percent();
    if (p < 10) return 1;
    if (p < 35) return uniform(0, interval());
    if (p < 55) {
      // A whole number of intervals, give or take a nanosecond.
      const i128 exact = ceil_div(uniform(1, 3) * unit(q_), q_.limit);
      return static_cast<std::int64_t>(exact) - 1 + uniform(0, 2);
    }
    if (p < 85) return uniform(0, drain());
    return uniform(drain(), 3 * drain());
  }

 private:
  std::int64_t uniform(std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>{lo, hi}(rng_);
  }
  std::int64_t interval() const { return static_cast<std::int64_t>(ceil_div(unit(q_), q_.limit)); }
  std::int64_t drain() const { return static_cast<std::int64_t>(ceil_div(capacity(q_), q_.limit)); }

  quota q_;
  std::mt19937_64 rng_;
  bool crowded_;
};

/// A reservation the test holds, and its send while cancelling it should give something back.
template <class Model>
struct entry {
  ratelimit::reservation<typename Model::algorithm> reservation;
  std::optional<std::size_t> send;
};

/// Moves a random held reservation into a new slot: the moved-from one stays behind, empty.
template <class Model>
void move_one(std::vector<entry<Model>>& all, workload& w, std::string& calls) {
  if (all.empty()) return;
  const std::size_t from = w.pick(all.size());
  auto reservation = std::move(all[from].reservation);
  const std::optional<std::size_t> send = std::exchange(all[from].send, std::nullopt);
  all.push_back({std::move(reservation), send});
  calls += "  move #" + std::to_string(from) + " to #" + std::to_string(all.size() - 1) + "\n";
}

std::int64_t now_of(const manual_clock& clock) { return clock.now().time_since_epoch().count(); }

// ---------------------------------------------------------------------------------------------
// 1. Safety: any sequence of reserve / try_acquire / cancel / clock steps, through the limiter.
// The instants are the caller's, admit time + delay, rounded up from the exact ones by less
// than a nanosecond: every bound below is widened by that nanosecond (limit − 1 in the
// model's time), so a failure is a real overdraw.
// ---------------------------------------------------------------------------------------------

template <class Model>
void check_safety(const quota& q, std::uint64_t seed, int steps, bool crowded) {
  manual_clock clock;
  typename Model::limiter limiter{q, clock};
  schedule sends;
  std::vector<entry<Model>> reservations;
  workload w{q, seed, crowded};
  // The share of reserve, try_acquire, cancel and move calls (cumulative percent); the rest
  // are clock steps.
  const int reserves = crowded ? 45 : 35;
  const int requests = crowded ? 52 : 50;
  const int cancels = crowded ? 85 : 70;
  const int moves = crowded ? 88 : 75;
  const i128 slack = q.limit - 1;
  std::string calls;
  bool failed = false;
  const auto fail = [&](const std::string& what) {
    ADD_FAILURE() << describe(q) << " seed " << seed << ": " << what << "\ncalls:\n" << calls;
    failed = true;
  };
  // After a call at `now`: the standing sends conform, and the key owes at least what they
  // oblige (reset_after is the wait until it owes nothing, rounded up).
  const auto check = [&](const decision& d) {
    const std::vector<send> standing = sends.standing();
    const std::int64_t now = now_of(clock);
    if (std::string v = Model::violation(q, standing, now, slack); !v.empty()) return fail(v);
    const i128 owed = Model::owed(q, standing, now);
    if (scaled(q, d.reset_after.count()) + slack < owed) {
      fail("at " + std::to_string(now) + "ns the key owes at most " +
           to_string(scaled(q, d.reset_after.count())) + " but its standing sends oblige " +
           to_string(owed) + " (1/period token or 1/limit ns): a later request can overdraw");
    }
  };
  const auto probe = [&] {
    const decision d = limiter.try_acquire(key, q.burst + 1);
    calls += "  probe -> " + describe(d) + "\n";
    if (d.allowed || d.retry_after != nanoseconds::max()) fail("a cost above the burst passed");
    return d;
  };
  // One request: reserve (max_wait >= 0) or try_acquire (max_wait < 0).
  const auto request = [&](std::int64_t cost, std::int64_t max_wait) {
    const std::int64_t now = now_of(clock);
    decision d;
    if (max_wait >= 0) {
      auto r = limiter.reserve(key, cost, nanoseconds{max_wait});
      d = r.decision();
      calls += "  at " + std::to_string(now) + ": #" + std::to_string(reservations.size()) +
               " = reserve(" + std::to_string(cost) + ", " + std::to_string(max_wait) + "ns) -> " +
               describe(d) + "\n";
      std::optional<std::size_t> id;
      if (d.allowed) id = sends.book(scaled(q, now + d.delay.count()), cost);
      reservations.push_back({std::move(r), id});
      if (d.allowed && d.delay.count() > max_wait) fail("a delay beyond max_wait");
    } else {
      d = limiter.try_acquire(key, cost);
      calls += "  at " + std::to_string(now) + ": try_acquire(" + std::to_string(cost) + ") -> " +
               describe(d) + "\n";
      if (d.allowed) sends.book(scaled(q, now + d.delay.count()), cost);
      if (d.delay.count() > Model::try_acquire_wait) fail("try_acquire with a delay");
      if (std::string v = Model::overfull(q, sends.standing(), now, slack);
          d.allowed && !v.empty()) {
        fail(v);
      }
    }
    if (!d.allowed && d.retry_after <= 0ns) fail("a rejection that need not wait");
    check(d);
    return d;
  };

  for (int step = 0; step < steps && !failed; ++step) {
    const int op = w.percent();
    if (op < requests) {
      const std::int64_t cost = w.cost();
      const std::int64_t max_wait = op < reserves ? w.max_wait() : -1;
      const decision d = request(cost, max_wait);
      // retry_after is the wait until the same request passes: a nanosecond less is too soon.
      if (!failed && !d.allowed && d.retry_after != nanoseconds::max() && w.chance(30)) {
        clock.advance(d.retry_after - 1ns);
        const decision early = request(cost, max_wait);
        if (early.allowed || early.retry_after != 1ns) fail("retry_after is too long");
        clock.advance(1ns);
        if (!request(cost, max_wait).allowed) fail("retry_after is too short");
      }
    } else if (op < cancels) {
      if (reservations.empty()) continue;
      std::size_t which = w.pick(reservations.size());
      if (crowded && w.chance(80)) {
        // Mostly the ones that still hold units.
        std::vector<std::size_t> outstanding;
        for (std::size_t i = 0; i < reservations.size(); ++i) {
          if (reservations[i].send) outstanding.push_back(i);
        }
        if (!outstanding.empty()) which = outstanding[w.pick(outstanding.size())];
      }
      entry<Model>& r = reservations[which];
      calls += "  at " + std::to_string(now_of(clock)) + ": cancel #" + std::to_string(which) +
               (r.send ? "" : " (nothing to give back)") + "\n";
      if (r.send) {
        sends.cancel(*r.send);
        r.send.reset();
        limiter.cancel(key, r.reservation);
        if (w.chance(50)) check(probe());
      } else {
        const decision before = probe();
        limiter.cancel(key, r.reservation);
        if (!same(before, probe())) fail("a cancel that had nothing to give back changed the key");
      }
    } else if (op < moves) {
      move_one(reservations, w, calls);
    } else {
      const std::int64_t by = w.step();
      clock.advance(nanoseconds{by});
      calls += "  advance " + std::to_string(by) + "ns\n";
      if (w.chance(30)) check(probe());
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 2. Exactness: cancels only of the latest booking still standing (the library gives it all
// back), so the library's key is the model's, and every field of every decision agrees.
// ---------------------------------------------------------------------------------------------

template <class Model>
void check_exact(const quota& q, std::uint64_t seed, int steps) {
  manual_clock clock;
  typename Model::limiter limiter{q, clock};
  schedule sends;
  std::vector<entry<Model>> reservations;
  workload w{q, seed};
  std::string calls;
  bool failed = false;
  const auto fail = [&](const std::string& what) {
    ADD_FAILURE() << describe(q) << " seed " << seed << ": " << what << "\ncalls:\n" << calls;
    failed = true;
  };
  const auto agree = [&](const decision& got, const expected& want) {
    if (!same(got, want.d)) fail("the model decides " + describe(want.d));
    if (std::string v = Model::violation(q, sends.standing(), now_of(clock), 0); !v.empty()) {
      fail("the exact schedule: " + v);
    }
  };
  const auto probe = [&] {
    const expected want =
        Model::predict(q, sends.standing(), now_of(clock), q.burst + 1, std::nullopt);
    const decision d = limiter.try_acquire(key, q.burst + 1);
    calls += "  probe -> " + describe(d) + "\n";
    agree(d, want);
  };
  const auto request = [&](std::int64_t cost, std::int64_t max_wait) {
    const std::int64_t now = now_of(clock);
    const expected want = Model::predict(q, sends.standing(), now, cost,
                                         max_wait >= 0 ? std::optional{max_wait} : std::nullopt);
    decision d;
    if (max_wait >= 0) {
      auto r = limiter.reserve(key, cost, nanoseconds{max_wait});
      d = r.decision();
      calls += "  at " + std::to_string(now) + ": #" + std::to_string(reservations.size()) +
               " = reserve(" + std::to_string(cost) + ", " + std::to_string(max_wait) + "ns) -> " +
               describe(d) + "\n";
      std::optional<std::size_t> id;
      if (d.allowed && want.at) id = sends.book(*want.at, cost);
      reservations.push_back({std::move(r), id});
    } else {
      d = limiter.try_acquire(key, cost);
      calls += "  at " + std::to_string(now) + ": try_acquire(" + std::to_string(cost) + ") -> " +
               describe(d) + "\n";
      if (d.allowed && want.at) sends.book(*want.at, cost);
      if (std::string v = Model::overfull(q, sends.standing(), now, 0); d.allowed && !v.empty()) {
        fail(v);
      }
    }
    agree(d, want);
    return d;
  };

  for (int step = 0; step < steps && !failed; ++step) {
    const int op = w.percent();
    if (op < 50) {
      const std::int64_t cost = w.cost();
      std::int64_t max_wait = op < 35 ? w.max_wait() : -1;
      if (max_wait >= 0 && w.chance(25)) {
        // Exactly the wait the model says the request needs, or a nanosecond less.
        const expected unbounded =
            Model::predict(q, sends.standing(), now_of(clock), cost, std::optional{forever});
        if (unbounded.d.allowed) {
          max_wait = std::max<std::int64_t>(0, unbounded.d.delay.count() - (w.chance(50) ? 1 : 0));
        }
      }
      const decision d = request(cost, max_wait);
      if (!failed && !d.allowed && d.retry_after != nanoseconds::max() && w.chance(30)) {
        clock.advance(d.retry_after - 1ns);
        const decision early = request(cost, max_wait);
        if (early.allowed || early.retry_after != 1ns) fail("retry_after is too long");
        clock.advance(1ns);
        if (!request(cost, max_wait).allowed) fail("retry_after is too short");
      }
    } else if (op < 65) {
      // The latest booking still standing, if a reservation: it gives everything back.
      const std::optional<std::size_t> latest = sends.latest();
      for (std::size_t i = 0; latest && i < reservations.size(); ++i) {
        if (reservations[i].send != latest) continue;
        calls += "  at " + std::to_string(now_of(clock)) + ": cancel #" + std::to_string(i) + "\n";
        sends.cancel(*latest);
        reservations[i].send.reset();
        limiter.cancel(key, reservations[i].reservation);
        probe();
        break;
      }
    } else if (op < 72) {
      // One with nothing to give back: rejected, cancelled already, or moved from.
      std::vector<std::size_t> spent;
      for (std::size_t i = 0; i < reservations.size(); ++i) {
        if (!reservations[i].send) spent.push_back(i);
      }
      if (spent.empty()) continue;
      const std::size_t i = spent[w.pick(spent.size())];
      calls += "  at " + std::to_string(now_of(clock)) + ": cancel #" + std::to_string(i) +
               " (nothing to give back)\n";
      limiter.cancel(key, reservations[i].reservation);
      probe();
    } else if (op < 77) {
      move_one(reservations, w, calls);
    } else {
      const std::int64_t by = w.step();
      clock.advance(nanoseconds{by});
      calls += "  advance " + std::to_string(by) + "ns\n";
      if (w.chance(30)) probe();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 3. Twins: two limiters on one clock see the same calls, but for a reservation cancelled with
// nothing booked since (or a few rejections) on one of them. Every later decision agrees.
// ---------------------------------------------------------------------------------------------

enum class aside { cancelled_reservation, rejections };

template <class Model>
void check_twins(const quota& q, std::uint64_t seed, aside what) {
  manual_clock clock;
  typename Model::limiter one{q, clock};
  typename Model::limiter twin{q, clock};
  using reservation = ratelimit::reservation<typename Model::algorithm>;
  std::vector<std::pair<reservation, reservation>> pairs;
  workload w{q, seed};
  std::string calls;
  bool failed = false;
  const auto fail = [&](const std::string& what_) {
    ADD_FAILURE() << describe(q) << " seed " << seed << ": " << what_ << "\ncalls:\n" << calls;
    failed = true;
  };
  const auto compare = [&](const decision& a, const decision& b, const std::string& call) {
    calls += "  at " + std::to_string(now_of(clock)) + ": " + call + " -> " + describe(a) +
             (same(a, b) ? "" : " but the twin: " + describe(b)) + "\n";
    if (!same(a, b)) fail("the key differs from its twin's");
  };
  // One call on both. `cancel_first`: a cancel of an earlier pair, if there is one.
  const auto both = [&](bool cancel_first) {
    const int op = cancel_first ? 55 : w.percent();
    if (op < 35) {
      const std::int64_t cost = w.cost();
      const std::int64_t max_wait = w.max_wait();
      auto a = one.reserve(key, cost, nanoseconds{max_wait});
      auto b = twin.reserve(key, cost, nanoseconds{max_wait});
      compare(a.decision(), b.decision(),
              "#" + std::to_string(pairs.size()) + " = reserve(" + std::to_string(cost) + ", " +
                  std::to_string(max_wait) + "ns)");
      pairs.emplace_back(std::move(a), std::move(b));
    } else if (op < 50) {
      const std::int64_t cost = w.cost();
      compare(one.try_acquire(key, cost), twin.try_acquire(key, cost),
              "try_acquire(" + std::to_string(cost) + ")");
    } else if (op < 70) {
      if (pairs.empty()) return;
      const std::size_t i = w.pick(pairs.size());
      calls += "  at " + std::to_string(now_of(clock)) + ": cancel #" + std::to_string(i) + "\n";
      one.cancel(key, pairs[i].first);
      twin.cancel(key, pairs[i].second);
    } else if (op < 80) {
      compare(one.try_acquire(key, q.burst + 1), twin.try_acquire(key, q.burst + 1), "probe");
    } else {
      const std::int64_t by = w.step();
      clock.advance(nanoseconds{by});
      calls += "  advance " + std::to_string(by) + "ns\n";
    }
  };

  const std::size_t before = w.pick(25);
  for (std::size_t i = 0; i < before && !failed; ++i) both(false);
  calls += "  -- on one only:\n";
  if (what == aside::cancelled_reservation) {
    const std::int64_t cost = w.cost();
    const std::int64_t max_wait = w.max_wait();
    auto r = one.reserve(key, cost, nanoseconds{max_wait});
    calls += "  at " + std::to_string(now_of(clock)) + ": reserve(" + std::to_string(cost) + ", " +
             std::to_string(max_wait) + "ns) -> " + describe(r.decision()) + "\n";
    if (w.chance(50)) {
      const std::int64_t by = w.step();
      clock.advance(nanoseconds{by});
      calls += "  advance " + std::to_string(by) + "ns\n";
    }
    if (w.chance(25)) {
      auto moved = std::move(r);
      one.cancel(key, r);  // moved from: nothing
      r = std::move(moved);
      calls += "  cancel the moved-from one\n";
    }
    one.cancel(key, r);
    calls += "  at " + std::to_string(now_of(clock)) + ": cancel it\n";
    if (w.chance(25)) {
      one.cancel(key, r);
      calls += "  cancel it again\n";
    }
  } else {
    // Requests the key must turn down: one unit more than `remaining`, and a reservation
    // whose longest wait falls a nanosecond short of the retry_after of the same request.
    const decision probe = one.try_acquire(key, q.burst + 1);
    calls += "  probe -> " + describe(probe) + "\n";
    // A full key turns down only what exceeds its burst.
    const std::int64_t cost = probe.remaining < q.burst ? probe.remaining + 1 : q.burst + 1;
    const decision no = one.try_acquire(key, cost);
    calls += "  try_acquire(" + std::to_string(cost) + ") -> " + describe(no) + "\n";
    if (no.allowed) return fail("admitted more than `remaining`");
    if (no.retry_after != nanoseconds::max()) {
      const nanoseconds max_wait = no.retry_after - 1ns;
      auto r = one.reserve(key, cost, max_wait);
      calls += "  reserve(" + std::to_string(cost) + ", " + std::to_string(max_wait.count()) +
               "ns) -> " + describe(r.decision()) + "\n";
      if (r) fail("a reservation passed before its retry_after");
      one.cancel(key, r);
    }
  }
  calls += "  -- on both:\n";
  for (int i = 0; i < 30 && !failed; ++i) both(i == 0 && w.chance(50));
}

// ---------------------------------------------------------------------------------------------
// 4. The give-back, measured: how much more a key owes after a cancel than its standing sends
// oblige. Run on the algorithm (pure, copyable state), so that measuring touches nothing.
// ---------------------------------------------------------------------------------------------

/// What the cancels with a standing booking after them kept back, in units of cost (tokens,
/// or intervals of the queue).
struct give_back {
  /// Per cancel: how much less the standing sends oblige once it is gone (the most it could
  /// give back), less what it gave back.
  std::vector<double> kept;
  /// The same, over the cancelled cost.
  std::vector<double> share;
  /// Per cancel: what the key owes beyond its standing sends afterwards (earlier cancels'
  /// keepings included).
  std::vector<double> beyond;
  /// Cancels after which the key owed less than its standing sends oblige.
  int overdrawn = 0;
};

template <class Model>
void measure_give_back(const quota& q, std::uint64_t seed, int steps, give_back& out) {
  using A = typename Model::algorithm;
  typename A::state state = A::fresh(q, 0);
  std::int64_t now = 0;
  schedule sends;
  struct booked {
    typename A::booking booking;
    std::size_t send;
    std::int64_t cost;
    bool outstanding;
  };
  std::vector<booked> bookings;
  workload w{q, seed, seed % 2 == 0};
  const auto tokens = [&](i128 v) { return static_cast<double>(v) / static_cast<double>(unit(q)); };
  for (int step = 0; step < steps; ++step) {
    const int op = w.percent();
    if (op < 50) {
      const std::int64_t cost = w.cost();
      typename A::booking b{};
      const decision d =
          op < 35 ? A::reserve(state, q, now, cost, w.max_wait(), b) : A::step(state, q, now, cost);
      if (!d.allowed) continue;
      const std::size_t id = sends.book(Model::act(q, Model::held(q, state, now), now, cost), cost);
      if (op < 35) bookings.push_back({b, id, cost, true});
    } else if (op < 75) {
      if (bookings.empty()) continue;
      booked& b = bookings[w.pick(bookings.size())];
      if (!b.outstanding) continue;
      b.outstanding = false;
      const bool later = sends.latest() != b.send;
      const i128 owed_before = Model::owed(q, sends.standing(), now);
      const i128 held_before = Model::held(q, state, now);
      sends.cancel(b.send);
      static_cast<void>(A::cancel(state, q, now, b.booking));
      const i128 owed = Model::owed(q, sends.standing(), now);
      const i128 held = Model::held(q, state, now);
      if (held < owed) ++out.overdrawn;
      if (!later) continue;
      const double kept = tokens((owed_before - owed) - (held_before - held));
      out.kept.push_back(kept);
      out.share.push_back(kept / static_cast<double>(b.cost));
      out.beyond.push_back(tokens(held - owed));
    } else {
      now += w.step();
    }
  }
}

// ---------------------------------------------------------------------------------------------

template <class Model>
class ReservationModel : public testing::Test {};

struct bucket_names {
  template <class Model>
  static std::string GetName(int) {
    return std::is_same_v<Model, token_bucket_model> ? "TokenBucket" : "LeakyBucket";
  }
};

using models = testing::Types<token_bucket_model, leaky_bucket_model>;
TYPED_TEST_SUITE(ReservationModel, models, bucket_names);

TYPED_TEST(ReservationModel, NoSequenceOverdrawsTheBucket) {
  for (const quota& q : awkward_quotas()) {
    for (std::uint64_t seed = 1; seed <= 40; ++seed) {
      check_safety<TypeParam>(q, seed, 200, seed % 2 == 0);
    }
  }
}

TYPED_TEST(ReservationModel, EveryDecisionIsTheModelsWhileCancelsTakeTheLatestBooking) {
  for (const quota& q : awkward_quotas()) {
    for (std::uint64_t seed = 1; seed <= 25; ++seed) check_exact<TypeParam>(q, seed, 120);
  }
}

TYPED_TEST(ReservationModel, ACancelWithNothingBookedSinceLeavesTheKeyAsATwinThatNeverSawIt) {
  for (const quota& q : awkward_quotas()) {
    for (std::uint64_t seed = 1; seed <= 40; ++seed) {
      check_twins<TypeParam>(q, seed, aside::cancelled_reservation);
    }
  }
}

TYPED_TEST(ReservationModel, ARejectionLeavesTheKeyAsATwinThatNeverSawIt) {
  for (const quota& q : awkward_quotas()) {
    for (std::uint64_t seed = 1; seed <= 40; ++seed) {
      check_twins<TypeParam>(q, seed, aside::rejections);
    }
  }
}

/// Runs the same calls on `one` and `twin` (their clock shared) and expects the same decisions.
template <class Limiter>
void expect_twins(Limiter& one, Limiter& twin, manual_clock& clock, std::int64_t burst) {
  for (int i = 0; i < 12; ++i) {
    for (std::int64_t cost : {std::int64_t{1}, burst + 1, burst}) {
      const decision a = one.try_acquire(key, cost);
      const decision b = twin.try_acquire(key, cost);
      EXPECT_TRUE(same(a, b)) << "call " << i << " cost " << cost << ": " << describe(a)
                              << " but the twin: " << describe(b);
    }
    clock.advance(3s);
  }
}

TYPED_TEST(ReservationModel, CancellingARejectedReservationChangesNothing) {
  const quota q = quota::per_minute(7).with_burst(3);
  manual_clock clock;
  typename TypeParam::limiter one{q, clock};
  typename TypeParam::limiter twin{q, clock};
  ASSERT_TRUE(one.reserve(key, 3, 0s));
  ASSERT_TRUE(twin.reserve(key, 3, 0s));
  auto rejected = one.reserve(key, 2, 1s);
  ASSERT_FALSE(rejected);
  EXPECT_FALSE(rejected.outstanding());
  one.cancel(key, rejected);
  expect_twins(one, twin, clock, q.burst);
}

TYPED_TEST(ReservationModel, CancellingTwiceGivesBackOnce) {
  const quota q = quota::per_minute(7).with_burst(3);
  manual_clock clock;
  typename TypeParam::limiter one{q, clock};
  typename TypeParam::limiter twin{q, clock};
  auto r = one.reserve(key, 2, 1min);
  auto t = twin.reserve(key, 2, 1min);
  ASSERT_TRUE(r);
  one.cancel(key, r);
  twin.cancel(key, t);
  EXPECT_FALSE(r.outstanding());
  // The same booking again at the same instant leaves the key just as `r` did: a second
  // cancel of `r` would give back its units.
  ASSERT_TRUE(one.reserve(key, 2, 1min));
  ASSERT_TRUE(twin.reserve(key, 2, 1min));
  one.cancel(key, r);
  expect_twins(one, twin, clock, q.burst);
}

TYPED_TEST(ReservationModel, CancellingAMovedFromReservationChangesNothing) {
  const quota q = quota::per_minute(7).with_burst(3);
  manual_clock clock;
  typename TypeParam::limiter one{q, clock};
  typename TypeParam::limiter twin{q, clock};
  auto r = one.reserve(key, 2, 1min);
  auto t = twin.reserve(key, 2, 1min);
  ASSERT_TRUE(r);
  auto moved = std::move(r);
  EXPECT_FALSE(r.outstanding());
  EXPECT_TRUE(moved.outstanding());
  one.cancel(key, r);
  expect_twins(one, twin, clock, q.burst);
  one.cancel(key, moved);
  twin.cancel(key, t);
  expect_twins(one, twin, clock, q.burst);
}

// Not a bound, a measurement: printed for the record. Asserted only: nothing overdrawn.
TYPED_TEST(ReservationModel, CancelGiveBackIsMeasuredAndNeverOverdraws) {
  const auto summary = [](const std::vector<double>& v) {
    double sum = 0;
    double max = 0;
    for (double x : v) {
      sum += x;
      max = std::max(max, x);
    }
    return "mean " + std::to_string(v.empty() ? 0 : sum / static_cast<double>(v.size())) + " max " +
           std::to_string(max);
  };
  std::cout << "[ give-back ] " << bucket_names::GetName<TypeParam>(0)
            << ": cancels with a standing booking after them; what each kept back of what it "
               "could give (units of cost), that as a share of its cost, and what the key "
               "then owes beyond its standing sends\n";
  give_back all;
  for (const quota& q : awkward_quotas()) {
    give_back out;
    for (std::uint64_t seed = 1; seed <= 40; ++seed) {
      measure_give_back<TypeParam>(q, seed, 150, out);
    }
    std::cout << "  " << describe(q) << ": " << out.kept.size() << " cancels; kept "
              << summary(out.kept) << "; share " << summary(out.share) << "; beyond "
              << summary(out.beyond) << "; overdrawn " << out.overdrawn << "\n";
    all.share.insert(all.share.end(), out.share.begin(), out.share.end());
    all.overdrawn += out.overdrawn;
  }
  std::cout << "  all: share " << summary(all.share) << "\n";
  EXPECT_EQ(all.overdrawn, 0) << "cancels that left the key owing less than its schedule";
}

// ---------------------------------------------------------------------------------------------
// Regressions: the shortest sequences the model found.
// ---------------------------------------------------------------------------------------------

// A cancel keeps back the tokens up to the act instant of the last booking, which it reads as
// the end of the key's debt. A first cancel gives tokens back and so moves that end earlier,
// before the instant a standing request was promised: a second cancel then gives back tokens
// that request counts on.
TEST(TokenBucketCancel, ASecondCancelNeverGivesBackTokensAStandingRequestCountsOn) {
  manual_clock clock;
  ratelimit::token_bucket<manual_clock> limiter{quota::per(3, 3s), clock};  // 1/s, burst 3
  auto first = limiter.reserve(key, 1, 10s);
  auto second = limiter.reserve(key, 3, 10s);
  auto third = limiter.reserve(key, 1, 10s);
  ASSERT_EQ(first.delay(), 0s);
  ASSERT_EQ(second.delay(), 1s);
  ASSERT_EQ(third.delay(), 2s);
  limiter.cancel(key, second);
  limiter.cancel(key, first);
  clock.advance(2s);
  // `third` is served now with 1 token of a bucket of 3: 2 are left, not 3.
  EXPECT_FALSE(limiter.try_acquire(key, 3));
}

// How much a cancel keeps back depends on when the key was last touched: a rejected request
// (which consumes nothing) makes a later cancel give back less.
TEST(TokenBucketCancel, ARejectionDoesNotChangeWhatALaterCancelGivesBack) {
  manual_clock clock;
  ratelimit::token_bucket<manual_clock> one{quota::per(3, 3s), clock};
  ratelimit::token_bucket<manual_clock> twin{quota::per(3, 3s), clock};
  auto r = one.reserve(key, 3, 10s);
  auto t = twin.reserve(key, 3, 10s);
  ASSERT_TRUE(one.reserve(key, 1, 10s));
  ASSERT_TRUE(twin.reserve(key, 1, 10s));
  clock.advance(2s);
  ASSERT_FALSE(one.try_acquire(key, 4));
  one.cancel(key, r);
  twin.cancel(key, t);
  const decision a = one.try_acquire(key, 3);
  const decision b = twin.try_acquire(key, 3);
  EXPECT_TRUE(same(a, b)) << describe(a) << " but the twin: " << describe(b);
}

// Whether anything was booked since a reservation is read from the deficit: the one it
// booked, less the refill. A partial give-back followed by a booking of the same size restores
// that value, and the reservation is then given back whole over the booking.
TEST(TokenBucketCancel, AGiveBackAndABookingOfTheSameSizeDoNotPassForNothingBookedSince) {
  manual_clock clock;
  ratelimit::token_bucket<manual_clock> limiter{quota::per(5, 5s), clock};  // 1/s, burst 5
  auto first = limiter.reserve(key, 5, 10s);
  auto second = limiter.reserve(key, 3, 10s);
  ASSERT_EQ(first.delay(), 0s);
  ASSERT_EQ(second.delay(), 3s);
  limiter.cancel(key, first);  // `second` was booked after it: 2 tokens back
  clock.advance(3500ms);
  const bool served = limiter.try_acquire(key, 2).allowed;  // served at 3.5s
  clock.advance(500ms);
  limiter.cancel(key, second);
  // 2 tokens taken at 3.5s leave at most 3 + 0.5 by 4s. (A cancel that gives back nothing
  // once another reservation was booked after it turns the 2 down, and then 4 may pass.)
  if (served) {
    EXPECT_FALSE(limiter.try_acquire(key, 4));
  }
}

// The contract's rule, with the numbers: a reservation with a standing booking after it gives
// back nothing; cancelled latest first, each gives back its whole cost.
TEST(TokenBucketCancel, GivesBackNothingBehindAStandingBookingAndAllOnceItIsGone) {
  manual_clock clock;
  ratelimit::token_bucket<manual_clock> limiter{quota::per(3, 3s), clock};  // 1/s, burst 3
  ASSERT_TRUE(limiter.try_acquire(key, 2));
  auto r = limiter.reserve(key, 3, 10s);
  auto later = limiter.reserve(key, 1, 10s);
  ASSERT_EQ(r.delay(), 2s);
  ASSERT_EQ(later.delay(), 3s);
  limiter.cancel(key, r);
  // Nothing back: the key owes 2 + 3 + 1 = 6 tokens of a bucket of 3, one more waits 4s.
  auto next = limiter.reserve(key, 1, 10s);
  EXPECT_EQ(next.delay(), 4s);
  limiter.cancel(key, next);
  limiter.cancel(key, later);
  // With `later` gone, `r` is the latest standing booking again... but it was cancelled
  // already: nothing more comes back, and the key owes its 2 + 3.
  auto after = limiter.reserve(key, 1, 10s);
  EXPECT_EQ(after.delay(), 3s);
}

TEST(TokenBucketCancel, CancelledLatestFirstEachGivesBackItsWholeCost) {
  manual_clock clock;
  ratelimit::token_bucket<manual_clock> limiter{quota::per(3, 3s), clock};
  ASSERT_TRUE(limiter.try_acquire(key, 2));
  auto r = limiter.reserve(key, 3, 10s);
  auto later = limiter.reserve(key, 1, 10s);
  limiter.cancel(key, later);
  limiter.cancel(key, r);
  EXPECT_EQ(limiter.reserve(key, 1, 10s).delay(), 0s) << "2 owed of 3: one token is there";
}

}  // namespace
