#!/usr/bin/env bash
# Every benchmark in one command, then benchmarks/RESULTS.md from what they wrote.
#
#   benchmarks/run.sh
#
# Environment:
#   BUILD_DIR=dir   the Release build tree (default: build-bench, from the repository's root)
#   QUICK=1         1-2 repetitions and a short min_time: checks the pipeline, not the numbers
#   SKIP_PEERS=1    no Go / Guava comparison (benchmarks/peers/run.sh installs toolchains)
#   SKIP_REDIS=1    no redis-server run
#
# Everything lands in benchmarks/results/ (JSON, CSV, the machine's description, SVGs).
# A step that fails is recorded there and the run goes on, so that a half-hour run still
# ends with a report; the script then exits non-zero.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=${BUILD_DIR:-build-bench}
build=$(mkdir -p "$build" && cd "$build" && pwd)
results=$root/benchmarks/results
quick=${QUICK:-0}
[[ $quick == 1 ]] || quick=0

say() { printf '\n=== %s\n' "$*" >&2; }

# --- 1. What the build and the runs need -------------------------------------------------
# Debian package per command or file; apt-get update runs once, and only if one is missing.
need=()
for pair in cmake:cmake g++:g++ pkg-config:pkg-config redis-server:redis-server \
            redis-benchmark:redis-tools gnuplot:gnuplot-nox python3:python3; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
for pair in libbenchmark-dev:/usr/include/benchmark/benchmark.h \
            libhiredis-dev:/usr/include/hiredis/hiredis.h; do
  [[ -e ${pair#*:} ]] || need+=("${pair%%:*}")
done
if ((${#need[@]})); then
  say "installing ${need[*]}"
  sudo=
  [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" ||
    { echo "run.sh: could not install ${need[*]}" >&2; exit 1; }
fi

# --- 2. Release build --------------------------------------------------------------------
say "building in $build"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DRATELIMIT_BUILD_TESTS=OFF \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null || exit 1
# Build the targets this tree has: redis_bench exists only when hiredis was found.
targets=()
known=$(cmake --build "$build" --target help 2>/dev/null)
for t in decision_bench memory_bench redis_bench accuracy_sim; do
  if grep -qw -- "$t" <<<"$known"; then targets+=("$t"); else echo "run.sh: no target $t" >&2; fi
done
cmake --build "$build" --target "${targets[@]}" -j "$(nproc)" || exit 1
bin=$build/benchmarks
exe() {  # the path of an executable target, wherever its CMakeLists put it
  if [[ -x $bin/$1 ]]; then echo "$bin/$1"; else find "$build" -name "$1" -type f -perm -u+x | head -1; fi
}

# --- 3. The runs -------------------------------------------------------------------------
# Start from an empty set of results: a section skipped now must not show an older run.
mkdir -p "$results"
rm -f "$results"/*.json "$results"/*.csv "$results"/*.txt "$results"/*.dat "$results"/*.svg
info=$results/machine.txt
status=0
record() { printf '%s: %s\n' "$1" "$2" >>"$info"; }
# step NAME COMMAND...: runs it and records "ok", "failed (exit N)" or "skipped".
step() {
  local name=$1
  shift
  say "$name"
  local start=$SECONDS
  if "$@"; then
    record "step_$name" "ok ($((SECONDS - start)) s)"
  else
    local rc=$?
    record "step_$name" "failed (exit $rc)"
    status=1
  fi
}
skip() { say "$1: skipped ($2)"; record "step_$1" "skipped ($2)"; }

cache() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"; }
compiler=$(cache CMAKE_CXX_COMPILER)
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "quick: $quick"
  # The code measured: the library, the benchmarks' sources and build (not their results).
  measured=(include CMakeLists.txt benchmarks/CMakeLists.txt 'benchmarks/*.cpp' 'benchmarks/*.sh' benchmarks/peers)
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- "${measured[@]}" 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p')"
  echo "hypervisor: $(lscpu | sed -n 's/^Hypervisor vendor: *//p')"
  echo "nproc: $(nproc)"
  echo "kernel: $(uname -sr)"
  echo "compiler: $("$compiler" --version | head -1)"
  echo "build_type: $(cache CMAKE_BUILD_TYPE)"
  echo "cxx_flags: $(cache CMAKE_CXX_FLAGS) $(cache CMAKE_CXX_FLAGS_RELEASE)"
  # What decision_bench.cpp was really compiled with (the -std, the warnings), paths left out.
  echo "compile_flags: $(python3 - "$build/compile_commands.json" <<'EOF'
import json, shlex, sys
for entry in json.load(open(sys.argv[1])):
    if entry["file"].endswith("decision_bench.cpp"):
        words = shlex.split(entry["command"])[1:]
        keep, skip = [], False
        for w in words:
            if skip: skip = False; continue
            if w in ("-o", "-c", "-I", "-isystem", "-MF", "-MT"): skip = True; continue
            if w.startswith(("-I", "-isystem", "/", "CMakeFiles")) or w.endswith(".cpp"): continue
            keep.append(w)
        print(" ".join(keep)); break
EOF
)"
  echo "google_benchmark: $(dpkg-query -W -f='${Version}' libbenchmark-dev 2>/dev/null)"
  echo "hiredis: $(dpkg-query -W -f='${Version}' libhiredis-dev 2>/dev/null)"
  echo "redis_server: $(redis-server --version 2>/dev/null | sed -n 's/.*v=\([^ ]*\).*/\1/p')"
  echo "load_before: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$info"

# Full runs: 10 repetitions in random order, so that a burst of load elsewhere on a shared
# host falls on every row alike. Quick runs: enough to produce every row and every file.
if ((quick)); then
  reps=(--benchmark_repetitions=2 --benchmark_min_time=0.01)
  memory_reps=(--benchmark_repetitions=1)
  export REDIS_BENCHMARK_REQUESTS=${REDIS_BENCHMARK_REQUESTS:-2000}
else
  reps=(--benchmark_repetitions=10)
  memory_reps=(--benchmark_repetitions=3)
fi
export QUICK=$quick  # for benchmarks/peers/run.sh
aggregates=(--benchmark_report_aggregates_only=true)

if [[ -n $(exe decision_bench) ]]; then
  step decision "$(exe decision_bench)" "${reps[@]}" "${aggregates[@]}" \
    --benchmark_enable_random_interleaving=true \
    --benchmark_out="$results/decision.json" --benchmark_out_format=json
else skip decision "not built"; fi

if [[ -n $(exe memory_bench) ]]; then
  step memory "$(exe memory_bench)" "${memory_reps[@]}" "${aggregates[@]}" \
    --benchmark_out="$results/memory.json" --benchmark_out_format=json
else skip memory "not built"; fi

# redis_run.sh starts its own server and prints redis-benchmark's CSV before redis_bench's
# console output; report.py reads the raw round trips from that text.
redis_run() {
  local args=(--benchmark_out="$results/redis.json" --benchmark_out_format=json)
  ((quick)) && args+=("${reps[@]}")
  "$root/benchmarks/redis_run.sh" "$(exe redis_bench)" "${args[@]}" | tee "$results/redis_run.txt"
}
if [[ ${SKIP_REDIS:-0} == 1 ]]; then skip redis "SKIP_REDIS=1"
elif [[ -z $(exe redis_bench) ]]; then skip redis "redis_bench not built (no hiredis)"
else step redis redis_run; fi

if [[ -n $(exe accuracy_sim) ]]; then
  step accuracy "$(exe accuracy_sim)" --out-dir "$results"
else skip accuracy "accuracy_sim not built"; fi

if [[ ${SKIP_PEERS:-0} == 1 ]]; then skip peers "SKIP_PEERS=1"
elif [[ ! -x $root/benchmarks/peers/run.sh ]]; then skip peers "no benchmarks/peers/run.sh"
else step peers "$root/benchmarks/peers/run.sh" "$results/peers.csv"; fi

record load_after "$(cut -d' ' -f1-3 /proc/loadavg)"
# Google Benchmark records the executable's absolute path: keep only its name, so that the
# committed JSON names no directory of this machine.
sed -i 's|"executable": "[^"]*/|"executable": "|' "$results"/*.json 2>/dev/null
if [[ -s $results/peers.csv ]]; then
  # One line per peer: "Go x/time/rate v0.5.0", as the peers' own script found them.
  tail -n +2 "$results/peers.csv" | cut -d, -f1,2 | sort -u | while IFS=, read -r peer version; do
    record peer "$peer $version"
  done
fi

# --- 4. The report and its pictures ------------------------------------------------------
step report python3 "$root/benchmarks/report.py" "$results"
say "wrote benchmarks/RESULTS.md$( ((status)) && echo ', with failed steps (see benchmarks/results/machine.txt)')"
exit $status
