#!/usr/bin/env python3
"""Writes the seed corpus of every fuzzer: fuzz/corpus/<target>/seed-<name>.

Each seed is a meaningful input in the layout its fuzzer reads (fuzz/byte_reader.hpp reads
front to back): the README's examples, the quotas where rounding shows, the extremes of int64
time, reservations and cancels from the regression tests, malformed Redis replies, address
forms a proxy writes. Run it again after changing an input layout; it replaces the seed-* files
and writes the regression-* inputs listed in regressions(); other files stay.

    python3 fuzz/make_corpus.py
"""

import pathlib
import struct

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE / "corpus"

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
MAX_UNITS = 2**62
SECOND = 10**9
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE


# --- byte_reader ------------------------------------------------------------------------------


def byte(v):
    return bytes([v & 0xFF])


def sized(value, lo=0):
    """byte_reader::sized: a width byte, then that many bits, little-endian."""
    raw = value - lo
    assert raw >= 0
    width = raw.bit_length()
    return byte(width) + raw.to_bytes((width + 7) // 8, "little")


def signed(v):
    """byte_reader::signed_value: a sign byte (odd: negative), then the magnitude."""
    if v == INT64_MIN:
        return byte(1) + sized(INT64_MAX)
    return byte(1 if v < 0 else 0) + sized(abs(v))


def text(s):
    """byte_reader::text: a length byte, or 255 and two bytes of length."""
    if isinstance(s, str):
        s = s.encode("latin-1")
    if len(s) < 255:
        return byte(len(s)) + s
    return byte(255) + struct.pack("<H", len(s)) + s


# --- decision_fuzz ----------------------------------------------------------------------------

ALGORITHMS = ["token_bucket", "leaky_bucket", "fixed_window", "sliding_log", "sliding_window_counter"]


def quota(algorithm, limit, period, burst=None, start=0):
    out = byte(algorithm) + sized(limit, 1) + sized(period, 1)
    out += byte(0) if burst is None else byte(1) + sized(burst, 1)
    return out + signed(start)


def cost_any(c):
    return byte(3) + sized(c, 1)


def cost_small(c):
    assert 1 <= c <= 8
    return byte((c - 1) * 4)


def cost_near_capacity(offset):
    """The capacity plus offset, -3 to +1."""
    return byte(1 + 4 * (offset + 3))


def cost_remaining(plus=0):
    return byte(2 + 4 * plus)


def step(cost):
    return byte(0) + cost


def reserve(cost, wait):
    return byte(0x82) + cost + sized(wait)


def cancel(nth_latest=0):
    return byte(4) + byte(nth_latest)


def clock(back, mode, *extra):
    return byte(7 if back else 5) + byte(mode) + b"".join(extra)


def advance(ns):
    return clock(False, 6, sized(ns))


def back(ns):
    return clock(True, 6, sized(ns))


def advance_to(what, nudge=0):
    """To the instant the last decision named: retry_after, reset_after or delay."""
    mode = {"retry": 2, "reset": 3, "delay": 4, "period": 5}[what]
    return clock(False, mode + 8 * (nudge + 1))


def back_by(what, nudge=0):
    mode = {"retry": 2, "reset": 3, "delay": 4, "period": 5}[what]
    return clock(True, mode + 8 * (nudge + 1))


def intervals(n, nudge=0, backwards=False):
    return clock(backwards, 1 + 8 * (nudge + 1), byte(n - 1))


def decision_seeds():
    seeds = {}
    # The README's examples, for every algorithm.
    for a, name in enumerate(ALGORITHMS):
        seeds[f"{name}-readme-burst"] = quota(a, 10, SECOND, 3) + b"".join(
            [step(cost_small(1))] * 4) + advance_to("retry") + step(cost_small(1))
        seeds[f"{name}-readme-window-edge"] = quota(a, 100, MINUTE) + advance(59 * SECOND) + step(
            cost_any(100)) + advance(SECOND) + step(cost_any(100)) + advance(15 * SECOND) + step(
                cost_any(25)) + step(cost_small(1)) + advance_to("retry", -1) + step(
                    cost_small(1)) + advance(1) + step(cost_small(1))
        seeds[f"{name}-seven-per-minute"] = quota(a, 7, MINUTE) + b"".join(
            step(cost_small(1)) + intervals(1, -1) + step(cost_small(1)) + advance(1)
            for _ in range(4)) + advance_to("reset") + step(cost_near_capacity(0))
        seeds[f"{name}-one-per-ns"] = quota(a, 1, 1) + b"".join(
            [step(cost_small(1)), step(cost_small(2)), advance(1), step(cost_small(1))] * 3)
        seeds[f"{name}-clock-steps-back"] = quota(a, 10, 13 * SECOND, 25, start=10**12) + step(
            cost_near_capacity(0)) + back(20 * SECOND) + step(cost_small(1)) + advance(
                5 * SECOND) + step(cost_small(3)) + back_by("period") + step(
                    cost_remaining()) + step(cost_remaining(1)) + advance_to("retry")
        seeds[f"{name}-extreme-quota"] = quota(a, MAX_UNITS, INT64_MAX, MAX_UNITS) + step(
            cost_any(MAX_UNITS)) + step(cost_any(INT64_MAX)) + advance(INT64_MAX) + step(
                cost_small(1))
        seeds[f"{name}-near-int64-min"] = quota(a, 3, 10, 5, start=INT64_MIN) + step(
            cost_small(3)) + back(5) + step(cost_small(2)) + advance_to("reset", 1) + step(
                cost_near_capacity(0))
        seeds[f"{name}-near-int64-max"] = quota(a, 7, 1000003, 4, start=INT64_MAX - 10**6) + step(
            cost_small(4)) + advance(10**5) + step(cost_small(1)) + advance_to("retry") + step(
                cost_small(1))
        seeds[f"{name}-awkward-rate"] = quota(a, 1000003, HOUR, 100000) + step(
            cost_any(99999)) + intervals(3, 1) + step(cost_remaining(1)) + step(
                cost_remaining()) + advance_to("delay") + step(cost_near_capacity(-1))
    # Reservations and cancels (the buckets), from the regression tests.
    for a in (0, 1):
        name = ALGORITHMS[a]
        seeds[f"{name}-second-cancel"] = quota(a, 3, 3 * SECOND) + reserve(
            cost_small(1), 10 * SECOND) + reserve(cost_small(3), 10 * SECOND) + reserve(
                cost_small(1), 10 * SECOND) + cancel(1) + cancel(2) + advance(
                    2 * SECOND) + step(cost_small(3))
        seeds[f"{name}-rejection-then-cancel"] = quota(a, 3, 3 * SECOND) + reserve(
            cost_small(3), 10 * SECOND) + reserve(cost_small(1), 10 * SECOND) + advance(
                2 * SECOND) + step(cost_small(4)) + cancel(1) + step(cost_small(3))
        seeds[f"{name}-give-back-same-size"] = quota(a, 5, 5 * SECOND) + reserve(
            cost_small(5), 10 * SECOND) + reserve(cost_small(3), 10 * SECOND) + cancel(
                1) + advance(3500 * 10**6) + step(cost_small(2)) + advance(500 * 10**6) + cancel(
                    0) + step(cost_small(4))
        seeds[f"{name}-latest-first"] = quota(a, 3, 3 * SECOND) + step(cost_small(2)) + reserve(
            cost_small(3), 10 * SECOND) + reserve(cost_small(1), 10 * SECOND) + cancel(
                0) + cancel(0) + reserve(cost_small(1), 10 * SECOND)
        seeds[f"{name}-reserve-exact-wait"] = quota(a, 7, MINUTE, 1) + step(
            cost_small(1)) + reserve(cost_small(1), 0) + reserve(
                cost_small(1), 8571428571) + reserve(cost_small(1), 8571428572) + advance_to(
                    "retry") + cancel(0)
        seeds[f"{name}-crowded"] = quota(a, 10, 13 * SECOND, 3) + b"".join(
            reserve(cost_small(2), 60 * SECOND) + intervals(1, -1) for _ in range(6)) + cancel(
                3) + cancel(0) + back(SECOND) + reserve(cost_small(1), 60 * SECOND) + cancel(0)
        seeds[f"{name}-debt-then-back"] = quota(a, 1, 257, 1, start=-268) + back(198) + step(
            cost_small(1)) + reserve(cost_small(1), 31348) + reserve(
                cost_small(1), 11482) + advance(258) + reserve(cost_small(1), 11482) + cancel(0)
    return seeds


# --- quota_spec_fuzz --------------------------------------------------------------------------


def quota_spec_seeds():
    specs = [
        "100/s", "1000/min burst 50", "10 per 2s", "5000/h", "1/d", "7/min burst 3",
        " 7 / 2 min burst 3 ", "\t1\tper\t1ns", "4611686018427387904/ns", "1 per 9223372036854775807ns",
        "1/106751d", "3 per 10 ms", "1 per 1 us", "2/3sec", "5/seconds", "9/minute burst 1",
        "1/hr", "8 per 2 hours", "4/day", "4/days burst 4611686018427387904",
        # refused
        "100/fortnight", "0/s", "010/s", "100/S", "10per s", "10/sburst 5", "100/s burst",
        "-1/s", "1.5/s", "4611686018427387905/s", "1 per 9223372036854775808ns", "", "   ",
        "100/s\n", "100/s burst 0", "1 per 106752d", "100/ms burst 5 extra", "100 / / s",
        "1e3/s", "1_000/s", "100/s burst 010", "100 per", "100/0s", "\"100\"/s", "100/s\x00",
    ]
    return {f"{i:02d}": s.encode("latin-1") for i, s in enumerate(specs)}


# --- http_fuzz --------------------------------------------------------------------------------


def identity(api=None, peer="", xff=None, proxies=(), v4=32, v6=64):
    present = (1 if api is not None else 0) | (2 if xff is not None else 0)
    out = byte(0) + byte(v4) + byte(v6) + byte(len(proxies))
    out += b"".join(text(p) for p in proxies)
    return out + byte(present) + text(api or "") + text(peer) + text(xff or "")


def decision(allowed, limit, remaining, retry, reset, delay=0):
    return byte(1 if allowed else 0) + signed(limit) + signed(remaining) + signed(retry) + signed(
        reset) + signed(delay)


def headers(rules, now=1_700_000_000 * SECOND + 1, reset_delta=False, x=True, ietf=True,
            policies=()):
    """rules: one decision (and 0 or 1 policy), or a multi_decision's (allowed, index, [..])."""
    flags = (1 if reset_delta else 0) | (0 if x else 2) | (0 if ietf else 4)
    policy_bytes = b"".join(text(n) + signed(w) for n, w in policies)
    if isinstance(rules, tuple):
        allowed, most, decisions = rules
        shape = 2 if len(decisions) == 2 else 3
        body = byte(allowed) + byte(most) + b"".join(decisions) + policy_bytes
    else:
        shape = len(policies)
        body = rules + policy_bytes
    return byte(1) + byte(flags + 8 * shape) + signed(now) + body


def address(s, prefix=24):
    return byte(2) + byte(prefix + 5) + s.encode("latin-1")


def http_seeds():
    proxies = ["10.0.0.0/8", "2001:db8::/48", "192.0.2.1"]
    seeds = {
        "id-peer-v4": identity(peer="192.0.2.7", xff="1.2.3.4"),
        "id-peer-v6": identity(peer="2001:db8:1:2:3:4:5:6"),
        "id-peer-v6-bracket-port": identity(peer="[2001:db8::1]:443"),
        "id-peer-zone": identity(peer="fe80::1%eth0"),
        "id-peer-v4-port": identity(peer="192.0.2.1:8080"),
        "id-peer-mapped": identity(peer="::ffff:192.0.2.7", v4=24),
        "id-peer-garbage": identity(peer="unknown"),
        "id-api-key": identity(api="  secret  ", peer="192.0.2.7"),
        "id-api-key-too-long": identity(api="k" * 300, peer="192.0.2.7"),
        "id-api-key-blank": identity(api=" \t ", peer="10.1.2.3", xff="203.0.113.7",
                                     proxies=proxies),
        "id-trusted-chain": identity(peer="10.1.2.3", xff="198.51.100.1, 203.0.113.7, 10.0.0.2",
                                     proxies=proxies),
        "id-all-trusted": identity(peer="10.1.2.3", xff="10.9.9.9,10.0.0.2", proxies=proxies),
        "id-trusted-garbage": identity(peer="10.1.2.3", xff="203.0.113.7, unknown",
                                       proxies=proxies),
        "id-empty-elements": identity(peer="10.1.2.3", xff=" , ,", proxies=proxies),
        "id-untrusted-peer-xff": identity(peer="198.51.100.9", xff="10.0.0.1", proxies=proxies),
        "id-v6-chain": identity(peer="[2001:db8::5]:8443", xff="2001:db8:aaaa::1, [2001:db8::7]",
                                proxies=proxies, v6=48),
        "id-prefixes": identity(peer="192.0.2.77", v4=1, v6=128),
        "bad-proxy-host-bits": identity(peer="1.2.3.4", proxies=["10.0.0.1/8"]),
        "bad-proxy-all-v4": identity(peer="1.2.3.4", proxies=["0.0.0.0/0"]),
        "bad-proxy-all-v6": identity(peer="1.2.3.4", proxies=["::/0"]),
        "bad-proxy-mapped-all-v4": identity(peer="1.2.3.4", proxies=["::ffff:0:0/96"]),
        "bad-proxy-leading-zero": identity(peer="1.2.3.4", proxies=["10.0.0.0/08"]),
        "bad-prefix": identity(peer="1.2.3.4", v4=33, v6=0),
        "hdr-allowed": headers(decision(True, 100, 99, 0, 600 * 10**6)),
        "hdr-rejected": headers(decision(False, 100, 0, 1500 * 10**6, 60 * SECOND)),
        "hdr-rejected-1ns": headers(decision(False, 100, 0, 1, 1), reset_delta=True),
        "hdr-never": headers(decision(False, 10, 3, INT64_MAX, 10 * SECOND)),
        "hdr-negative": headers(decision(False, -5, -7, -1, -1, -1), now=-1),
        "hdr-huge": headers(decision(True, INT64_MAX, INT64_MAX, 0, INT64_MAX),
                            now=INT64_MAX, policies=[("burst", MINUTE)]),
        "hdr-before-1970": headers(decision(True, 1, 0, 0, SECOND), now=-SECOND - 1),
        "hdr-policy-quotes": headers(decision(False, 10, 0, 30 * SECOND, 30 * SECOND),
                                     policies=[('a "b" \\c', 1500 * 10**6)]),
        "hdr-policy-bad-name": headers(decision(True, 1, 1, 0, 0), policies=[("bad\nname", 0)]),
        "hdr-no-x": headers(decision(True, 5, 5, 0, 0), x=False, policies=[("p" * 64, HOUR)]),
        "hdr-multi-2": headers((0, 1, [decision(True, 10, 9, 0, SECOND),
                                       decision(False, 1000, 0, 5 * SECOND, HOUR)]),
                               policies=[("per-second", SECOND), ("per-hour", HOUR)]),
        "hdr-multi-3": headers((1, 2, [decision(True, 10, 9, 0, SECOND),
                                       decision(True, 1000, 5, 0, HOUR, 3),
                                       decision(True, 10**16, 10**16, 0, INT64_MAX)]),
                               policies=[("a", SECOND), ("b", HOUR), ("c", 86400 * SECOND)]),
    }
    for i, a in enumerate([
            "1.2.3.4", "0.0.0.0", "255.255.255.255", "01.2.3.4", "256.1.1.1", "1.2.3", "::",
            "::1", "2001:db8::1", "2001:DB8:0:0:1:0:0:1", "1:2:3:4:5:6:7::", "::1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:8::", "::ffff:1.2.3.4", "::1.2.3.4", "1:2:3:4:5:6:1.2.3.4",
            "00001::", ":::", "fe80::1%eth0", "10.0.0.0/8", "10.0.0.1/8", "2001:db8::/32",
            "::ffff:10.0.0.0/104", "1.2.3.4/33", "1.2.3.4/032", "::/0", "1.2.3.4/", "/8",
            "2001:0db8:0000:0000:0000:ff00:0042:8329", "0:0:1:0:0:1:0:0"]):
        seeds[f"addr-{i:02d}"] = address(a, prefix=[24, 64, 0, 128, 33][i % 5])
    return seeds


# --- redis_reply_fuzz -------------------------------------------------------------------------


def redis_header(function, resp=True, unit_index=0, limit=10, period_units=10**6, burst=None,
                 cost=1, max_wait=0):
    """function: 0 decode, 1 to 3 decode_all<N>, 4 token / 5 leaky reservation."""
    mode = function | (0x40 if resp else 0)
    out = byte(mode) + byte(unit_index)
    for _ in range(3):
        out += sized(limit, 1) + byte(1) + sized(period_units, 1)
        out += byte(0) if burst is None else byte(1) + sized(burst, 1)
    return out + sized(cost, 1) + signed(max_wait)


def resp(*values):
    """A RESP array of integers (str: an element as written)."""
    out = f"*{len(values)}\r\n"
    for v in values:
        out += v if isinstance(v, str) else f":{v}\r\n"
    return out.encode()


def tree_int(v):
    return byte(0) + byte(192) + signed(v)


def tree_array(*elements):
    n = len(elements)
    return byte(6) + byte(2 * n + 1) + b"".join(elements)


def redis_seeds():
    seeds = {
        "decode-admit": redis_header(0) + resp(1, 9, 0, 100000, 0),
        "decode-reject": redis_header(0) + resp(0, 0, 1500, 100000, 0),
        "decode-never": redis_header(0) + resp(0, 3, -1, -1, 0),
        "decode-delay": redis_header(0) + resp(1, 2, 0, 300, 200),
        "decode-allowed-2": redis_header(0) + resp(2, 9, 0, 0, 0),
        "decode-admit-with-retry": redis_header(0) + resp(1, 9, 5, 0, 0),
        "decode-retry-2": redis_header(0) + resp(0, 9, -2, 0, 0),
        "decode-negative-remaining": redis_header(0) + resp(1, -1, 0, 0, 0),
        "decode-remaining-2^62+1": redis_header(0) + resp(1, 2**62 + 1, 0, 0, 0),
        "decode-huge": redis_header(0) + resp(0, 2**62, INT64_MAX, INT64_MAX, INT64_MAX),
        "decode-min": redis_header(0) + resp(0, 0, INT64_MIN, INT64_MIN, INT64_MIN),
        "decode-four": redis_header(0) + resp(1, 9, 0, 0),
        "decode-six": redis_header(0) + resp(1, 9, 0, 0, 0, 0),
        "decode-string-element": redis_header(0) + resp(1, "$1\r\n9\r\n", 0, 0, 0),
        "decode-nil-element": redis_header(0) + resp(1, 9, "$-1\r\n", 0, 0),
        "decode-nested": redis_header(0) + resp(1, 9, "*1\r\n:0\r\n", 0, 0),
        "decode-noscript": redis_header(0) + b"-NOSCRIPT No matching script.\r\n",
        "decode-oom": redis_header(0) + b"-OOM command not allowed\r\n",
        "decode-nil": redis_header(0) + b"$-1\r\n",
        "decode-status": redis_header(0) + b"+OK\r\n",
        "decode-integer": redis_header(0) + b":1\r\n",
        "decode-empty-array": redis_header(0) + b"*0\r\n",
        "decode-null-array": redis_header(0) + b"*-1\r\n",
        "decode-unit-1ns": redis_header(0, unit_index=1) + resp(0, 0, 7, 9, 0),
        "decode-unit-1ms": redis_header(0, unit_index=6) + resp(0, 0, 2**53, 2**53, 0),
        "all-1": redis_header(1) + resp(1, 9, 0, 100, 0),
        "all-2": redis_header(2) + resp(1, 9, 0, 100, 0, 0, 0, 5, 100, 0),
        "all-2-second-bad": redis_header(2) + resp(1, 9, 0, 100, 0, 0, 0, -5, 100, 0),
        "all-3": redis_header(3) + resp(*([1, 1, 0, 1, 0] * 3)),
        "all-3-short": redis_header(3) + resp(*([1, 1, 0, 1, 0] * 2)),
        "all-noscript": redis_header(3) + b"-NOSCRIPT\r\n",
        "token-reserved": redis_header(4, limit=10, period_units=10**6, burst=5, cost=2,
                                       max_wait=10**9) + resp(1, 0, 0, 700000, 200000,
                                                              1700000000000000, 7000000),
        "token-rejected": redis_header(4, limit=10, period_units=10**6, burst=5, cost=2,
                                       max_wait=10**6) + resp(0, 0, 150000, 700000, 0,
                                                              1700000000000000, 7000000),
        "token-state-inexact": redis_header(4) + resp(1, 0, 0, 1, 1, 2**53, 0),
        "token-state-negative": redis_header(4) + resp(1, 0, 0, 1, 1, -5, -1),
        "token-state-far": redis_header(4, unit_index=6) + resp(1, 0, 0, 1, 1, 2**53 - 1, 3),
        "leaky-reserved": redis_header(5, limit=7, period_units=60 * 10**6, burst=3, cost=1,
                                       max_wait=60 * SECOND) + resp(1, 1, 0, 17142858, 8571429,
                                                                    1700000000000000, 3),
        "leaky-fraction-limit": redis_header(5, limit=7) + resp(1, 0, 0, 1, 1, 100, 7),
        "leaky-rejected": redis_header(5, limit=7, period_units=60 * 10**6, burst=3, cost=3,
                                       max_wait=0) + resp(0, 0, 8571429, 25714286, 0,
                                                          1700000025714285, 5),
        "reservation-six": redis_header(4) + resp(1, 0, 0, 1, 1, 5),
        "reservation-string-state": redis_header(5) + resp(1, 0, 0, 1, 1, 5, "+5\r\n"),
        "tree-decide": redis_header(0, resp=False) + tree_array(*(tree_int(v) for v in
                                                                  (1, 3, 0, 10, 0))),
        "tree-null-element": redis_header(0, resp=False) + tree_array(
            tree_int(1), byte(15), tree_int(0), tree_int(0), tree_int(0)),
        "tree-error": redis_header(0, resp=False) + byte(5) + byte(0) + text("No matching script"),
        "tree-nested": redis_header(2, resp=False) + tree_array(
            *(tree_array(tree_int(1)) for _ in range(10))),
        "tree-null-reply": byte(0x20) + b"\x00" * 40,
    }
    return seeds


# --- regressions ------------------------------------------------------------------------------
# Inputs that made a fuzzer fail on a library bug, kept while it is open and after it is fixed.
# (A fuzzer finding a new one writes its own crash-<sha1> file: copy it here as
# regression-<what>, or better, add the shortest sequence below.)


def regressions():
    return {
        "decision_fuzz": {
            # token_bucket::reserve: a rejection whose wait from `now` overflows int64 reports
            # retry_after = nanoseconds::max() ("never"), though the same reservation passes
            # after max_wait less: the wait, 2^63 ns, is saturated before max_wait is subtracted.
            "token-reserve-retry-after-never": quota(0, 1, 1) + step(cost_small(1)) + back(
                INT64_MAX) + reserve(cost_small(1), 243),
            # leaky_bucket::cancel: a reservation whose queue drains past INT64_MAX is stored as
            # (INT64_MAX, limit); its cancel subtracts cost * interval from that and casts a value
            # below INT64_MIN to int64: the queue then drains at 0 and 6 more units pass at once,
            # though the first request holds the queue until 2^62 ns.
            "leaky-cancel-of-a-saturated-queue": quota(1, 1, 2**62, 6) + step(cost_small(1)) +
            reserve(cost_small(6), 2**62) + cancel(0) + step(cost_small(6)),
            # leaky_bucket::step before the clock's epoch: a delay of 2^63 ns (the instant fits,
            # now + delay <= INT64_MAX) is cast to int64: an admission with delay INT64_MIN.
            "leaky-delay-beyond-int64": quota(1, 1, 2**62, 3, start=-1) + step(
                cost_small(1)) * 3,
        },
        "http_fuzz": {
            # detail::http::unix_seconds: `now` before 1677-09-21 (system_clock's minimum
            # second) overflows converting its whole seconds back to nanoseconds: UB.
            "x-ratelimit-reset-at-int64-min": headers(decision(True, 10, 9, 0, SECOND),
                                                      now=INT64_MIN),
        },
    }


def main():
    targets = {
        "decision_fuzz": decision_seeds(),
        "quota_spec_fuzz": quota_spec_seeds(),
        "http_fuzz": http_seeds(),
        "redis_reply_fuzz": redis_seeds(),
    }
    for target, seeds in targets.items():
        directory = CORPUS / target
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob("seed-*"):
            old.unlink()
        for name, data in seeds.items():
            (directory / f"seed-{name}").write_bytes(data)
        kept = regressions().get(target, {})
        for name, data in kept.items():
            (directory / f"regression-{name}").write_bytes(data)
        print(f"{target}: {len(seeds)} seeds, {len(kept)} regression inputs")


if __name__ == "__main__":
    main()
