#!/usr/bin/env python3
"""Writes benchmarks/RESULTS.md from what benchmarks/run.sh left in benchmarks/results/.

    python3 benchmarks/report.py benchmarks/results [--out benchmarks/RESULTS.md]

Reads, each optional (a missing one makes its section say "not run"):
  machine.txt           "key: value" lines from run.sh (machine, compiler, versions, steps)
  decision.json         decision_bench, Google Benchmark JSON
  memory.json           memory_bench
  redis.json            redis_bench, and redis_run.txt: redis_run.sh's stdout, whose
                        "## redis-benchmark ..." sections hold redis-benchmark's CSV
  accuracy.csv, boundary.csv   accuracy_sim
  peers.csv             benchmarks/peers/run.sh
Writes the small tab-separated inputs of the plots (results/*.dat) and, when gnuplot is
installed, runs benchmarks/plots/*.gp to draw results/*.svg. Standard library only.
"""

import argparse
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ALGORITHMS = ["token_bucket", "leaky_bucket", "fixed_window", "sliding_log",
              "sliding_window_counter"]
CLOCKS = ["steady_clock", "coarse_clock", "manual_clock"]
LOADS = ["under_limit", "over_limit", "flood", "mostly_allowed", "mostly_denied"]
# Google Benchmark's own additions to a name, which say how it ran, not what it measures.
RUN_PARTS = re.compile(r"^(iterations|repeats|min_time|min_warmup_time|real_time|"
                       r"manual_time|process_time|threads:1$)")
STANDARD_FIELDS = {"name", "family_index", "per_family_instance_index", "run_name",
                   "run_type", "repetitions", "repetition_index", "threads", "iterations",
                   "real_time", "cpu_time", "time_unit", "aggregate_name", "aggregate_unit",
                   "error_occurred", "error_message", "label"}
TO_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}

# Targets, from the benchmarks issue.
HOT_KEY_NS = 40
HOT_KEY_VS_PEER = 1.8
TWO_THREADS_NS = 80
KEYS_1M_NS = 300
BYTES_PER_KEY = 64
REDIS_RATIO = 1.15
REDIS_BATCH_PER_S = 100_000
REDIS_P99_US = 1000


# ----------------------------------------------------------------------------------------
# Reading

class Bench:
    """One benchmark's median: time per iteration in ns and its counters."""

    def __init__(self, name, ns, counters, threads, error=None):
        self.name, self.ns, self.counters, self.threads, self.error = (
            name, ns, counters, threads, error)

    def get(self, counter):
        return self.counters.get(counter)


def short_name(run_name):
    """The name without Google Benchmark's run parameters; threads:N stays (Redis rows
    differ by it) unless the name already says two_threads."""
    parts = [p for p in run_name.split("/") if not RUN_PARTS.match(p)]
    if "two_threads" in parts:
        parts = [p for p in parts if not p.startswith("threads:")]
    return "/".join(parts)


def natural(name):
    """Sort key: known algorithms in their usual order, numbers by value."""
    key = []
    for part in name.split("/"):
        rank = ALGORITHMS.index(part) if part in ALGORITHMS else len(ALGORITHMS)
        key.append((rank, [(0, int(x), "") if x.isdigit() else (1, 0, x)
                           for x in re.split(r"(\d+)", part) if x]))
    return key


def load_gbench(path):
    """{short name: Bench}, or a string saying why there is none."""
    if not path.exists():
        return None
    try:
        rows = json.loads(path.read_text())["benchmarks"]
    except (ValueError, KeyError) as e:
        return f"unreadable ({e.__class__.__name__}: {e})"
    by_run = {}
    for r in rows:
        by_run.setdefault(r.get("run_name", r["name"]), []).append(r)
    out = {}
    for run_name, rs in by_run.items():
        name = short_name(run_name)
        threads = rs[0].get("threads", 1)
        # Wall time where threads share the work (and where the benchmark asked for it,
        # as every Redis row does); CPU time otherwise, as Google Benchmark reports.
        field = "real_time" if threads > 1 or "/real_time" in run_name else "cpu_time"
        errors = [r.get("error_message", "error") for r in rs if r.get("error_occurred")]
        medians = [r for r in rs if r.get("aggregate_name") == "median"]
        # Only one repetition (QUICK runs): no aggregates, so take the iterations' median.
        picked = medians or [r for r in rs if r.get("run_type", "iteration") == "iteration"]
        if not picked:
            out[name] = Bench(name, None, {}, threads, errors[0] if errors else "no rows")
            continue

        def median(key, scale=lambda r: 1.0):
            values = [r[key] * scale(r) for r in picked if isinstance(r.get(key), (int, float))]
            return statistics.median(values) if values else None

        ns = median(field, lambda r: TO_NS.get(r.get("time_unit", "ns"), 1.0))
        counters = {k: median(k) for k in picked[0] if k not in STANDARD_FIELDS}
        counters = {k: v for k, v in counters.items() if v is not None}
        out[name] = Bench(name, ns, counters, threads, errors[0] if errors else None)
    # Random interleaving writes rows in a random order: put them back in a stable one.
    return dict(sorted(out.items(), key=lambda item: natural(item[0])))


def load_csv(path):
    if not path.exists():
        return None
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def load_machine(path):
    info = {"peer": []}
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition(": ")
            if key == "peer":
                info["peer"].append(value)
            elif key:
                info[key] = value.strip()
    return info


def load_redis_benchmark(path):
    """[(section label, test, rps, avg ms, p50 ms, p99 ms)] from redis_run.sh's stdout."""
    if not path.exists():
        return None
    rows, label = [], None
    for line in path.read_text().splitlines():
        if line.startswith("## redis-benchmark "):
            label = line[len("## redis-benchmark "):]
        elif line.startswith("## "):
            label = None
        elif label and line.startswith('"') and not line.startswith('"test"'):
            cells = next(csv.reader([line]))
            # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",
            # "p95_latency_ms","p99_latency_ms","max_latency_ms"
            num = [float(c) if re.fullmatch(r"[0-9.]+", c) else None for c in cells]
            if len(cells) >= 7:
                rows.append((label, cells[0], num[1], num[2], num[4], num[6]))
            elif len(cells) >= 2:  # older redis-benchmark: test, rps
                rows.append((label, cells[0], num[1], None, None, None))
    return rows


# ----------------------------------------------------------------------------------------
# Formatting

def num(v, unit=""):
    """Three significant digits, without exponents."""
    if v is None:
        return "—"
    a = abs(v)
    text = f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}"
    return text + unit


def duration(ns):
    if ns is None:
        return "—"
    for limit, unit, scale in ((1e3, " ns", 1), (1e6, " µs", 1e3), (1e9, " ms", 1e6)):
        if ns < limit:
            return num(ns / scale, unit)
    return num(ns / 1e9, " s")


def rate(per_s):
    if per_s is None:
        return "—"
    return num(per_s / 1e3, " k/s") if per_s < 1e6 else num(per_s / 1e6, " M/s")


def percent(fraction, digits=0):
    return "—" if fraction is None else f"{100 * fraction:.{digits}f}%"


def verdict(ok):
    return "met" if ok else "**missed**"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def not_run(what, machine, step):
    """Why a section has no data, from the step's state run.sh recorded."""
    state = machine.get(f"step_{step}", "")
    if state.startswith("skipped ("):
        return f"_Not run: {state[len('skipped ('):-1]}._"
    if state.startswith("failed"):
        return f"_Not run: {what} {state}._"
    return f"_Not run: no output from {what}._"


def algorithms_in(names):
    """The known algorithms first, in their usual order, then any others found."""
    found = {n.split("/")[1] for n in names if n.count("/") >= 1 and
             not n.startswith(("baseline/", "bytes_per_key/baseline"))}
    return [a for a in ALGORITHMS if a in found] + sorted(found - set(ALGORITHMS))


def first(bench, candidates):
    for name in candidates:
        if bench and name in bench and bench[name].ns is not None:
            return bench[name]
    return None


def prefixed(bench, prefix):
    """The first row whose name starts with prefix, in load order."""
    if not bench:
        return None
    names = sorted((n for n in bench if n.startswith(prefix)), key=lambda n: sort_key(n))
    return bench[names[0]] if names else None


def sort_key(name):
    parts = name.split("/")

    def rank(options, default=99):
        return next((i for i, o in enumerate(options) if o in parts), default)

    return (rank(["math", "hot_key", "distinct_keys", "keys_1M"]), rank(LOADS),
            "no_lock" in parts, "two_threads" in parts, rank(CLOCKS), name)


# ----------------------------------------------------------------------------------------
# Sections

class Report:
    def __init__(self, results):
        self.dir = results
        self.machine = load_machine(results / "machine.txt")
        self.decision = load_gbench(results / "decision.json")
        self.memory = load_gbench(results / "memory.json")
        self.redis = load_gbench(results / "redis.json")
        self.redis_benchmark = load_redis_benchmark(results / "redis_run.txt")
        self.accuracy = load_csv(results / "accuracy.csv")
        self.boundary = load_csv(results / "boundary.csv")
        self.peers = load_csv(results / "peers.csv")
        self.targets = {}  # target -> [(subject, value, shown, met)], in the order found
        self.out = []

    def check(self, target, subject, value, shown, met):
        """Records one measurement against a target; the Targets table sums them up."""
        self.targets.setdefault(target, []).append((subject, value, shown, met))
        return verdict(met)

    def picture(self, alt, name):
        path = self.dir / name
        if not path.exists():
            return f"_No picture: {name} was not drawn (is gnuplot installed?)._"
        return f"![{alt}]({os.path.relpath(path, self.out_path.parent)})"

    def ok(self, data):
        return isinstance(data, dict)

    def emit(self, *blocks):
        self.out.extend(blocks)

    # -- headline -------------------------------------------------------------------------

    def headline_rows(self, algorithm, coarse=True):
        """Our rows for each headline scenario, with the peer scenario each is judged by;
        `coarse`: also the columns on coarse_steady_clock (two scenarios a second time)."""
        d = self.decision if self.ok(self.decision) else {}
        hot = f"hot_key/{algorithm}/steady_clock/"
        return [
            ("hot key, admitted (`under_limit`)", "hot_key_allow",
             first(d, [hot + "under_limit"])),
            ("hot key, rejected (`flood`)", "hot_key_reject", first(d, [hot + "flood"])),
            ("2 threads, one key", "two_threads_one_key",
             first(d, [hot + load + "/two_threads" for load in LOADS])),
            ("2 threads, distinct keys", "two_threads_distinct_keys",
             prefixed(d, f"distinct_keys/{algorithm}/steady_clock")),
            ("10^6 keys", "keys_1M", first(d, [f"keys_1M/{algorithm}/steady_clock/{load}"
                                               for load in LOADS])),
        ] + ([
            # The same two hot paths with the clock a user can choose to make them cheap.
            ("hot key, admitted, `coarse_steady_clock`", "hot_key_allow",
             first(d, [f"hot_key/{algorithm}/coarse_clock/under_limit"])),
            ("10^6 keys, `coarse_steady_clock`", "keys_1M",
             first(d, [f"keys_1M/{algorithm}/coarse_clock/{load}" for load in LOADS])),
        ] if coarse else [])

    def best_peer(self, scenario):
        rows = [r for r in (self.peers or []) if r.get("scenario") == scenario]
        rows = [r for r in rows if _float(r.get("ns_per_decision")) is not None]
        return min(rows, key=lambda r: float(r["ns_per_decision"]), default=None)

    def headline(self):
        self.emit("## Headline", "")
        if not self.ok(self.decision):
            self.emit(not_run("decision_bench", self.machine, "decision"), "")
            return
        algorithms = algorithms_in(self.decision)
        scenarios = [s for s, _, _ in self.headline_rows(algorithms[0])] + ["bytes per key"]
        target_of = {
            "hot_key_allow": f"<= {HOT_KEY_NS} ns, >= {HOT_KEY_VS_PEER}x faster than the best peer",
            "hot_key_reject": f"<= {HOT_KEY_NS} ns, >= {HOT_KEY_VS_PEER}x faster than the best peer",
            "two_threads_one_key": f"<= {TWO_THREADS_NS} ns (wall, both threads)",
            "two_threads_distinct_keys": "",
            "keys_1M": f"<= {KEYS_1M_NS} ns",
        }
        targets = [target_of[s] for _, s, _ in self.headline_rows(algorithms[0])]
        targets.append(f"<= {BYTES_PER_KEY} B")
        peers = []
        for _, scenario, _ in self.headline_rows(algorithms[0]):
            p = self.best_peer(scenario)
            peers.append(f"{num(float(p['ns_per_decision']))} ({p['peer']})" if p else "—")
        rows = [["target"] + targets, ["best peer, ns"] + peers + ["—"]]
        for a in algorithms:
            row = [f"`{a}`"]
            for label, scenario, b in self.headline_rows(a):
                if b is None:
                    row.append("—")
                    continue
                cell = num(b.ns)
                p = self.best_peer(scenario)
                ratio = float(p["ns_per_decision"]) / b.ns if p and b.ns else None
                if ratio is not None:
                    cell += f" ({ratio:.2f}x)"
                shown = f"{num(b.ns)} ns" + (f" ({ratio:.2f}x)" if ratio else "")
                if scenario.startswith("hot_key"):
                    # Without a peer measured, only the time half of the target is judged.
                    met = b.ns <= HOT_KEY_NS and (ratio is None or ratio >= HOT_KEY_VS_PEER)
                    cell += ": " + self.check(f"{label}: {target_of[scenario]}", a, b.ns, shown,
                                              met)
                elif scenario == "two_threads_one_key":
                    cell += ": " + self.check(f"{label}: {target_of[scenario]}", a, b.ns, shown,
                                              b.ns <= TWO_THREADS_NS)
                elif scenario == "keys_1M":
                    cell += ": " + self.check(f"{label}: {target_of[scenario]}", a, b.ns, shown,
                                              b.ns <= KEYS_1M_NS)
                row.append(cell)
            row.append(self.bytes_cell(a))
            rows.append(row)
        self.emit("Nanoseconds per decision: medians, `steady_clock` unless a column names "
                  "another clock, the default sharded "
                  "storage; CPU time, wall time for two threads (the time per decision of "
                  "both together). In brackets, the best peer's time over ours: above 1, ours is faster.",
                  "", table([""] + scenarios, rows), "")

    def bytes_cell(self, algorithm):
        if not self.ok(self.memory):
            return "—"
        b = self.memory.get(f"bytes_per_key/{algorithm}")
        value = b.get("bytes_per_key") if b else None
        if value is None:
            return "—"
        if algorithm == "sliding_log":  # O(limit) by design: the target is for O(1) state
            return f"{num(value)} (O(limit))"
        return f"{num(value)}: " + self.check(f"bytes per key at 10^6 keys: <= {BYTES_PER_KEY}",
                                              algorithm, value, f"{num(value)} B",
                                              value <= BYTES_PER_KEY)

    def target_list(self):
        self.emit("### Targets", "")
        if not self.targets:
            self.emit("_None measured._", "")
            return
        rows = []
        for target, results in self.targets.items():
            met = [r for r in results if r[3]]
            # The best is the lowest, except for throughput.
            best = (max if "decisions/s" in target else min)(results, key=lambda r: r[1])
            rows.append([target, f"{len(met)} of {len(results)}",
                         f"`{best[0]}`: {best[2]}",
                         ", ".join(f"`{r[0]}`" for r in met) or "none"])
        self.emit("Each target, over every row it applies to (in-memory rows: one per "
                  "algorithm; for the hot key, `(Nx)` is the best peer's time over ours).", "",
                  table(["target", "met", "best", "met by"], rows), "")

    # -- speed matrix ---------------------------------------------------------------------

    def matrix(self):
        self.emit("## Speed, every row", "")
        if not self.ok(self.decision):
            self.emit(not_run("decision_bench", self.machine, "decision"), "")
            return
        algorithms = algorithms_in(self.decision)
        rows = {}  # (scenario, storage, threads, clock) -> {algorithm: cell}
        order = []

        def add(key, algorithm, cell, rank):
            if key not in rows:
                rows[key] = {}
                order.append((rank, key))
            rows[key][algorithm] = cell

        for name, b in self.decision.items():
            parts = name.split("/")
            if len(parts) < 3 or parts[1] not in algorithms:
                continue
            clock = next((p for p in parts if p in CLOCKS), "supplied")
            storage = "no_lock" if "no_lock" in parts else "—" if parts[0] == "math" else "sharded"
            threads = "2" if "two_threads" in parts else "1"
            load = "/".join(p for p in parts[2:] if p not in CLOCKS + ["no_lock", "two_threads"])
            scenario = f"`{parts[0]}`" + (f" `{load}`" if load else "")
            cell = num(b.ns) if not b.error else f"error: {b.error}"
            if clock != "manual_clock" and clock != "supplied" and b.get("allowed") is not None:
                cell += f" ({percent(b.get('allowed'))})"
            add((scenario, storage, threads, clock), parts[1], cell, sort_key(name))
        if self.ok(self.redis):
            for name, b in self.redis.items():
                parts = name.split("/")
                if len(parts) < 3 or parts[1] not in algorithms or parts[0] in (
                        "paired", "batch", "concurrent"):
                    continue
                clock = next((p for p in parts if p.endswith("_time")), "—")
                load = "/".join(p for p in parts[2:] if p != clock and
                                not p.startswith("threads:"))
                add((f"`{parts[0]}`" + (f" `{load}`" if load else ""), "Redis",
                     str(b.threads), clock), parts[1], duration(b.ns), (9, name))
        body = [list(k) + [rows[k].get(a, "") for a in algorithms] for _, k in sorted(order)]
        self.emit("Medians, ns per decision (Redis rows with their unit). In brackets, the "
                  "fraction admitted: an admission and a rejection take different paths. "
                  "`no_lock` is `in_memory_storage_st`; `supplied`: the time is passed in.",
                  "", table(["scenario", "storage", "threads", "clock"] +
                            [f"`{a}`" for a in algorithms], body), "")
        baselines = [[f"`{n}`", num(b.ns)] for n, b in self.decision.items()
                     if n.startswith("baseline/")]
        if baselines:
            self.emit("Baselines, same run:", "", table(["baseline", "ns"], baselines), "")
        self.emit(self.picture("ns per decision", "latency.svg"), "")

    # -- memory ---------------------------------------------------------------------------

    def memory_section(self):
        self.emit("## Memory", "")
        if not self.ok(self.memory):
            self.emit(not_run("memory_bench", self.machine, "memory"), "")
            return
        rows, floods = [], []
        for name, b in self.memory.items():
            if b.get("peak_heap_bytes") is not None:
                floods.append(b)
            elif b.get("bytes_per_key") is not None:
                label = name.removeprefix("bytes_per_key/")
                target = "(O(limit))" if label == "sliding_log" else "" if "baseline" in label \
                    else f"<= {BYTES_PER_KEY}"
                rows.append([f"`{label}`", target, num(b.get("bytes_per_key")),
                             num(b.get("rss_bytes_per_key")), num(b.get("keys"))])
        self.emit("Bytes per key at 10^6 keys, one request per key (median). Heap bytes as "
                  "`malloc_usable_size` counts them; RSS growth adds malloc's headers and "
                  "whole pages.", "",
                  table(["table", "target", "heap B/key", "RSS B/key", "keys"], rows), "",
                  self.picture("bytes per key", "bytes_per_key.svg"), "")
        if floods:
            self.emit("Under a flood of distinct keys (`max_keys` bounds the table):", "")
            extra = sorted({k for b in floods for k in b.counters} -
                           {"peak_heap_bytes", "peak_rss_bytes", "keys_after"})
            self.emit(table(["row", "peak heap", "peak RSS", "keys after"] + extra,
                            [[f"`{b.name}`", mib(b.get("peak_heap_bytes")),
                              mib(b.get("peak_rss_bytes")), num(b.get("keys_after"))] +
                             [num(b.get(k)) for k in extra] for b in floods]), "")

    # -- accuracy -------------------------------------------------------------------------

    def accuracy_section(self):
        self.emit("## Accuracy", "")
        if self.boundary:
            self.emit("The `window_boundary` attack (idle, then ten times the rate over the "
                      "last 10% of a window and the first 10% of the next) through each "
                      "algorithm. Top: admitted per second in bins of 1/20 period. Bottom: "
                      "admitted since the plot's start, one period before its end, so the "
                      "last value is what one window of one period let through: the fixed "
                      "window admits twice the limit across the edge, the sliding log exactly "
                      "the limit, the buckets their burst plus what refills meanwhile.", "",
                      self.picture("admitted rate around a window boundary", "boundary.svg"), "")
        if self.accuracy is None:
            self.emit(not_run("accuracy_sim", self.machine, "accuracy"), "")
            return
        rows = []
        for r in self.accuracy:
            vs_log = lambda d, a, b: "" if not r.get(d) else (
                f"{percent(_float(r[d]), 1)} ({r.get(a, '?')} / {r.get(b, '?')})")
            rows.append([r.get("pattern", ""), f"`{r.get('algorithm', '')}`",
                         f"{r.get('limit', '')} / {r.get('period_ms', '')} ms",
                         r.get("offered", ""), r.get("admitted", ""), r.get("ideal", ""),
                         num(_float(r.get("admitted_over_ideal"))),
                         r.get("max_in_any_window", ""),
                         vs_log("differs_from_log", "swc_allows_log_rejects",
                                "swc_rejects_log_allows"),
                         vs_log("differs_from_log_lockstep", "lockstep_swc_allows_log_rejects",
                                "lockstep_swc_rejects_log_allows")])
        self.emit("Every algorithm on the same simulated arrivals (`accuracy_sim`). "
                  "`ideal`: what an exact sliding window admits (the sliding log's count); "
                  "`max in any window`: the most admitted in any window of one period. For "
                  "the sliding window counter, the share of arrivals decided unlike the "
                  "sliding log (admitted where the log rejects / rejected where it admits): "
                  "run freely, and `lockstep`, on the log's own history each time (the "
                  "approximation alone).", "",
                  table(["pattern", "algorithm", "limit", "offered", "admitted", "ideal",
                         "admitted / ideal", "max in any window", "differs from log",
                         "differs, lockstep"], rows), "")

    # -- Redis ----------------------------------------------------------------------------

    def redis_section(self):
        self.emit("## Redis", "")
        if self.redis_benchmark:
            self.emit("The physical limit, `redis-benchmark` against the same server:", "",
                      table(["run", "test", "requests/s", "mean ms", "p50 ms", "p99 ms"],
                            [[label, test, rate(rps), num(avg), num(p50), num(p99)]
                             for label, test, rps, avg, p50, p99 in self.redis_benchmark]), "")
        if not self.ok(self.redis):
            self.emit(not_run("redis_bench", self.machine, "redis"), "")
            return
        r = self.redis
        used = set()
        rows = []
        for name, b in r.items():
            parts = name.split("/")
            if parts[0] != "paired":
                continue
            seq = r.get(name.replace("paired/", "sequential/", 1))
            used.update({name, seq.name if seq else ""})
            ratio = b.get("ratio_p50")
            rows.append([f"`{parts[1]}`", parts[2], num(b.get("round_trip_p50_us")),
                         num(b.get("script_p50_us")), num(b.get("decision_p50_us")),
                         "—" if ratio is None else f"{ratio:.2f}: " + self.check(
                             f"Redis sequential decision, p50: <= {REDIS_RATIO}x a raw "
                             "EVALSHA round trip", f"{parts[1]}/{parts[2]}", ratio,
                             f"{ratio:.2f}x", ratio <= REDIS_RATIO),
                         f"{num(seq.get('p50_us'))} / {num(seq.get('p99_us'))}" if seq else "—"])
        self.emit("Sequential decisions, µs: p50 of each kind of call in the same iterations "
                  "(`paired`), and `sequential`'s own p50 / p99.", "",
                  table(["algorithm", "time", "round trip", "raw script", "decision",
                         f"decision / round trip (<= {REDIS_RATIO})", "sequential p50 / p99"],
                        rows), "")
        batches = [(n, b) for n, b in r.items() if n.startswith(("batch/", "baseline/pipelined/"))]
        if batches:
            best = max((b.get("decisions_per_s") or 0 for n, b in batches
                        if n.startswith("batch/")), default=0)
            best_name = next(n for n, b in batches if (b.get("decisions_per_s") or 0) == best)
            if best:
                self.check(f"Redis batch, one client: >= {REDIS_BATCH_PER_S // 1000} k "
                           "decisions/s", best_name, best, rate(best), best >= REDIS_BATCH_PER_S)
            used.update(n for n, _ in batches)
            self.emit(f"Batches, one client (target >= {REDIS_BATCH_PER_S // 1000} k "
                      f"decisions/s: {verdict(best >= REDIS_BATCH_PER_S)}):", "",
                      table(["row", "per batch", "decisions (or commands) per s"],
                            [[f"`{n}`", duration(b.ns),
                              rate(b.get("decisions_per_s") or b.get("commands_per_s"))]
                             for n, b in batches]), "")
        loaded = [(n, b) for n, b in r.items()
                  if n.startswith("concurrent/") or (n.startswith("baseline/evalsha") and
                                                     b.threads > 1)]
        if loaded:
            used.update(n for n, _ in loaded)
            crows = []
            for n, b in loaded:
                p99 = b.get("p99_us")
                cell = "—" if p99 is None else f"{num(p99 / 1000)}"
                if p99 is not None and n.startswith("concurrent/"):
                    cell += ": " + self.check("Redis p99 under load: < 1 ms", n, p99,
                                              f"{num(p99 / 1000)} ms", p99 < REDIS_P99_US)
                crows.append([f"`{n}`", b.threads,
                              rate(b.get("decisions_per_s") or b.get("commands_per_s")),
                              num((b.get("p50_us") or 0) / 1000), cell,
                              f"{num(b.get('thread_mean_min_us'))} / "
                              f"{num(b.get('thread_mean_max_us'))}"])
            self.emit("Under load (p99 target < 1 ms):", "",
                      table(["row", "callers", "decisions/s", "p50 ms", "p99 ms",
                             "thread mean µs, min / max"], crows), "")
        rest = [(n, b) for n, b in r.items() if n not in used]
        if rest:
            self.emit("Every other row, wall time per call:", "",
                      table(["row", "threads", "time", "p50 µs", "p99 µs", "per s"],
                            [[f"`{n}`", b.threads, duration(b.ns), num(b.get("p50_us")),
                              num(b.get("p99_us")),
                              rate(b.get("decisions_per_s") or b.get("commands_per_s"))]
                             for n, b in rest]), "")

    # -- peers ----------------------------------------------------------------------------

    def peers_section(self):
        self.emit("## Peers", "")
        if self.peers is None:
            self.emit(not_run("benchmarks/peers/run.sh", self.machine, "peers"), "")
            return
        ours = {s: b for _, s, b in self.headline_rows("token_bucket", coarse=False)}
        rows = []
        for p in self.peers:
            ns = _float(p.get("ns_per_decision"))
            b = ours.get(p.get("scenario"))
            rows.append([p.get("peer", ""), p.get("version", ""), f"`{p.get('scenario', '')}`",
                         num(ns), percent(_float(p.get("allowed_fraction"))),
                         p.get("repetitions", ""), num(b.ns) if b else "—",
                         f"{ns / b.ns:.2f}x" if b and ns and b.ns else "—"])
        self.emit("The same scenarios in other languages' token buckets (ns per decision, "
                  "medians), beside our `token_bucket`:", "",
                  table(["peer", "version", "scenario", "ns", "admitted", "repetitions",
                         "ours", "peer / ours"], rows), "")

    # -- header ---------------------------------------------------------------------------

    def header(self):
        m = self.machine
        self.emit("# Benchmark results", "")
        if m.get("quick") == "1":
            self.emit("> **QUICK RUN: 1-2 repetitions with a short minimum time, to check "
                      "the pipeline. These numbers are not results; run "
                      "`benchmarks/run.sh` without QUICK=1 for those.**", "")
        self.emit("Generated by `benchmarks/run.sh` (then `python3 benchmarks/report.py "
                  "benchmarks/results`); the raw data is in [results/](results/). Compare rows "
                  "of one run, not runs: the host is shared.", "")
        steps = {k[5:]: v for k, v in m.items() if k.startswith("step_")}
        facts = [
            ("date", m.get("date")), ("commit", m.get("commit")),
            ("machine", ", ".join(x for x in [m.get("cpu"), m.get("nproc") and
                                               f"{m['nproc']} CPUs", m.get("hypervisor") and
                                               f"under {m['hypervisor']}", m.get("kernel")]
                                  if x)),
            ("compiler", m.get("compiler")),
            ("flags", " ".join(f"`{x}`" for x in [m.get("compile_flags") or
                                                   m.get("cxx_flags")] if x)),
            ("Google Benchmark", m.get("google_benchmark")),
            ("redis-server / hiredis", " / ".join(
                x for x in [m.get("redis_server"), m.get("hiredis")] if x)),
            ("peers", ", ".join(m.get("peer", [])) or None),
            ("load average (1, 5, 15 min)", m.get("load_before") and
             f"{m['load_before']} before, {m.get('load_after', '?')} after"),
            ("steps", ", ".join(f"{k}: {v}" for k, v in steps.items()) or None),
        ]
        facts = [[k, v] for k, v in facts if v]
        self.emit(table(["", ""], facts) if facts else "_No machine.txt: machine not recorded._",
                  "")

    def write(self, out):
        self.out_path = out
        self.header()
        self.headline()
        # Each section checks its rows against the targets as it renders them; the summary
        # of every target goes right after the headline, so render the rest first.
        top, self.out = self.out, []
        for section in (self.matrix, self.memory_section, self.accuracy_section,
                        self.redis_section, self.peers_section):
            section()
        rest, self.out = self.out, top
        self.target_list()
        out.write_text("\n".join(self.out + rest).rstrip() + "\n")


def mib(v):
    return "—" if v is None else f"{v / 2**20:.1f} MiB"


def _float(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------------------
# Plots: tab-separated inputs, then gnuplot.

def write_plot_inputs(report):
    d = report.dir
    written = {}
    # latency.dat: one line per algorithm (and peer), one column per scenario.
    if report.ok(report.decision):
        peer_scenarios = [s for _, s, _ in report.headline_rows("token_bucket", coarse=False)]
        scenarios = ["hot key, admitted", "hot key, rejected", "2 threads, one key",
                     "2 threads, distinct keys", "10⁶ keys", "Redis, sequential"]
        lines = ["\t".join(["who"] + scenarios)]
        for a in algorithms_in(report.decision):
            values = [b.ns if b else None for _, _, b in report.headline_rows(a, coarse=False)]
            seq = None
            if report.ok(report.redis) and f"sequential/{a}/server_time" in report.redis:
                seq = report.redis[f"sequential/{a}/server_time"].ns
            lines.append("\t".join([plot_label(a)] + [_dat(v) for v in values + [seq]]))
        for peer in sorted({p["peer"] for p in report.peers or []}):
            by = {p["scenario"]: _float(p["ns_per_decision"]) for p in report.peers
                  if p["peer"] == peer}
            lines.append("\t".join([plot_label(peer)] + [_dat(by.get(s)) for s in peer_scenarios]
                                   + ["-"]))
        (d / "latency.dat").write_text("\n".join(lines) + "\n")
        written["latency"] = {"columns": str(len(scenarios) + 1)}
    if report.ok(report.memory):
        lines = ["who\theap\tRSS"]
        for name, b in report.memory.items():
            if b.get("bytes_per_key") is not None:
                label = name.removeprefix("bytes_per_key/").replace("baseline/", "")
                lines.append("\t".join([plot_label(label), _dat(b.get("bytes_per_key")),
                                        _dat(b.get("rss_bytes_per_key"))]))
        (d / "bytes_per_key.dat").write_text("\n".join(lines) + "\n")
        written["bytes_per_key"] = {"target": str(BYTES_PER_KEY)}
    if report.boundary:
        written["boundary"] = write_boundary(report)
    return written


def write_boundary(report):
    """boundary.dat: the first attacked edge only (accuracy_sim repeats the same attack at
    a few edges), one block per algorithm, two blank lines apart for gnuplot's `index`:
    bin start (ms), admitted per second in the bin, and admitted since the data began at
    the bin's end. The data spans one period around the edge and starts idle, so the last
    column is what one window of one period admits."""
    series = {}
    for r in report.boundary:
        series.setdefault(r["algorithm"], []).append(
            (float(r["t_ms"]), float(r["admitted_rate_per_s"]), float(r["admitted_in_bin"])))
    blocks = []
    bin_ms = None
    for points in series.values():
        points.sort()
        steps = [b[0] - a[0] for a, b in zip(points, points[1:])]
        bin_ms = min(steps) if steps else 1.0
        # The first run of consecutive bins: one attacked edge.
        end = next((i + 1 for i, step in enumerate(steps) if step > bin_ms), len(points))
        total, lines = 0.0, []
        for t, per_s, n in points[:end]:
            total += n
            lines.append(f"{t:g}\t{per_s:g}\t{t + bin_ms:g}\t{total:g}")
        blocks.append("\n".join(lines))
    (report.dir / "boundary.dat").write_text("\n\n\n".join(blocks) + "\n")
    variables = {"algorithms": " ".join(series)}
    limit, period = boundary_quota(report)
    if limit is not None:
        variables["limit"] = f"{limit:g}"
        variables["limit_rate"] = f"{limit * 1000 / period:g}"
        first = min(t for t, _, _ in next(iter(series.values())))
        edge = -(-first // period) * period  # the first window edge at or after the data
        variables["edge"] = f"{edge:g}"
    return variables


def boundary_quota(report):
    """(limit, period in ms) of the run boundary.csv comes from: the accuracy rows whose
    pattern names a boundary, else the only quota accuracy.csv uses."""
    rows = report.accuracy or []
    candidates = [r for r in rows if "boundary" in r.get("pattern", "")] or rows
    quotas = {(r.get("limit"), r.get("period_ms")) for r in candidates}
    if len(quotas) != 1:
        return None, None
    limit, period = (_float(x) for x in quotas.pop())
    if not limit or not period:
        return None, None
    return limit, period


def plot_label(name):
    """A name on two balanced lines, so that bars' labels fit beside each other; gnuplot
    reads the \\n in a quoted string as a line break."""
    words = name.replace('"', "'").replace("/", "_").split("_")
    if len(words) < 2:
        return f'"{name}"'
    cut = min(range(1, len(words)), key=lambda i: max(len(" ".join(words[:i])),
                                                        len(" ".join(words[i:]))))
    return f'"{" ".join(words[:cut])}\\n{" ".join(words[cut:])}"'


def _dat(v):
    return "-" if v is None else f"{v:.6g}"


def draw(report, plots_dir, written):
    if not written:
        return
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("report.py: gnuplot not found, so no SVGs", file=sys.stderr)
        return
    for name, variables in written.items():
        script = plots_dir / f"{name}.gp"
        args = [gnuplot, "-e", f"plots='{plots_dir}'; dir='{report.dir.resolve()}'"]
        for k, v in variables.items():  # numbers as numbers, the rest as strings
            args += ["-e", f"{k}='{v}'" if _float(v) is None else f"{k}={v}"]
        result = subprocess.run(args + [str(script)], capture_output=True, text=True)
        if result.returncode != 0:
            print(f"report.py: {script.name} failed:\n{result.stderr}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the results folder (benchmarks/results)")
    parser.add_argument("--out", type=Path, help="default: RESULTS.md beside the folder")
    args = parser.parse_args()
    report = Report(args.results)
    out = args.out or args.results.resolve().parent / "RESULTS.md"
    draw(report, Path(__file__).resolve().parent / "plots", write_plot_inputs(report))
    report.write(out)
    print(f"report.py: wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
