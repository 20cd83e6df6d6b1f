#!/usr/bin/env bash
# The Redis benchmark in one run: a throwaway redis-server on 127.0.0.1, redis-benchmark's
# physical limit (EVALSHA of a trivial script, and PING), then redis_bench against the same
# server, so that every ratio comes from one run.
#
#   benchmarks/redis_run.sh [path/to/redis_bench] [redis_bench arguments...]
#
# The path defaults to build-bench/benchmarks/redis_bench. Arguments after it go to
# redis_bench, after the defaults, so they can override them: five repetitions, reported
# as aggregates (the tables take the medians), interleaved in random order so that a
# burst of load elsewhere on the host falls on every benchmark alike.
set -euo pipefail

bench=${1:-build-bench/benchmarks/redis_bench}
shift || true
requests=${REDIS_BENCHMARK_REQUESTS:-100000}

for tool in redis-server redis-cli redis-benchmark; do
  command -v "$tool" >/dev/null || { echo "redis_run.sh: $tool not found" >&2; exit 1; }
done
[[ -x $bench ]] || { echo "redis_run.sh: no executable at $bench (build redis_bench first)" >&2; exit 1; }

dir=$(mktemp -d)
pid=
stop() {
  if [[ -n $pid ]]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM

# A free port: try random ones until a server binds one and answers.
port=
for _ in $(seq 20); do
  candidate=$((20000 + RANDOM % 40000))
  redis-server --bind 127.0.0.1 --port "$candidate" --save '' --appendonly no \
    --dir "$dir" --logfile "$dir/redis.log" &
  pid=$!
  for _ in $(seq 50); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi  # it exited: the port was taken
    if [[ $(redis-cli -h 127.0.0.1 -p "$candidate" PING 2>/dev/null) == PONG ]]; then
      port=$candidate
      break 2
    fi
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
done
[[ -n $port ]] || { echo "redis_run.sh: could not start redis-server" >&2; exit 1; }

echo "# redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$port, no persistence"
echo "# machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, $(uname -sr)"
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

sha=$(redis-cli -h 127.0.0.1 -p "$port" SCRIPT LOAD 'return 1')
run_redis_benchmark() {  # label, redis-benchmark options...
  local label=$1
  shift
  echo "## redis-benchmark $label"
  redis-benchmark -h 127.0.0.1 -p "$port" -n "$requests" -q --csv "$@"
  echo
}
run_redis_benchmark "EVALSHA 'return 1', sequential (-c 1 -P 1)" -c 1 -P 1 EVALSHA "$sha" 0
run_redis_benchmark "PING, sequential (-c 1 -P 1)" -c 1 -P 1 PING
run_redis_benchmark "EVALSHA 'return 1', pipelined (-c 1 -P 16)" -c 1 -P 16 EVALSHA "$sha" 0
run_redis_benchmark "PING, pipelined (-c 1 -P 16)" -c 1 -P 16 PING
# The same 64 concurrent callers as concurrent/.../threads:64, each with its own connection.
run_redis_benchmark "EVALSHA 'return 1', 64 clients (-c 64 -P 1)" -c 64 -P 1 EVALSHA "$sha" 0

echo "## redis_bench"
RATELIMIT_REDIS_PORT=$port "$bench" --benchmark_repetitions=5 \
  --benchmark_report_aggregates_only=true --benchmark_enable_random_interleaving=true "$@"
