#!/usr/bin/env bash
# Two peer libraries measured on the scenarios of benchmarks/peers/README.md, in one run,
# so that their ratios to ours hold: golang.org/x/time/rate and Guava's RateLimiter,
# both from Debian's packages.
#
#   benchmarks/peers/run.sh [out.csv]     (no argument: the CSV goes to stdout)
#
# Installs what is missing (apt-get), builds both into a temporary directory, runs each
# (peer, scenario) in a process of its own, and writes one CSV row per pair. A table for
# people goes to stderr, with each row's fastest and slowest repetition beside the median
# and "cores": the deciding threads' CPU time over the wall time. Well below 1 (one
# thread) or 2 (two threads) means other processes had the cores for part of the run;
# for a two-thread row, that its threads overlapped less than the row claims.
set -euo pipefail

out=${1:-}
here=$(cd "$(dirname "$0")" && pwd)
scenarios=(hot_key_allow hot_key_reject two_threads_one_key two_threads_distinct_keys keys_1M)
packages=(golang-go golang-golang-x-time-dev default-jdk-headless libguava-java)

log() { echo "run.sh: $*" >&2; }

# --- Packages: apt-get update and install only if something is missing. -------------
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=
  ((EUID == 0)) || sudo=sudo
  log "installing ${missing[*]}"
  # apt's chatter goes to stderr: stdout may be the CSV.
  $sudo apt-get update >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2
fi

# --- Build, outside the source tree. -------------------------------------------------
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# GOPATH mode against Debian's source of x/time: no module download. GOFLAGS is cleared
# so that a -mod=... in the environment cannot switch it back.
(cd "$here/go" &&
  GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS='' GOCACHE="$dir/gocache" \
    go build -o "$dir/peers-go" .)

guava_cp=/usr/share/java/guava.jar
javac -cp "$guava_cp" -d "$dir/classes" "$here/guava/Main.java"

go_version="$(dpkg-query -W -f='${Version}' golang-golang-x-time-dev) ($("$dir/peers-go" -version))"
guava_version="$(dpkg-query -W -f='${Version}' libguava-java) ($(java -cp "$dir/classes:$guava_cp" Main -version))"
# The CSV is not quoted: a comma inside a field would shift the columns.
go_version=${go_version//,/;}
guava_version=${guava_version//,/;}

# --- Run. -----------------------------------------------------------------------------
log "$(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg)"
# Rows: peer,version,scenario,median,allowed,repetitions,min,max,clock,cores. Scenario by
# scenario, the two peers one after the other, so that a burst of load elsewhere on the
# host falls on both peers' rows of that scenario rather than on one peer.
rows=$dir/rows
: >"$rows"
for s in "${scenarios[@]}"; do
  log "$s: go_x_time_rate"
  line=$("$dir/peers-go" "$s")
  echo "go_x_time_rate,$go_version,$line" >>"$rows"
  log "$s: guava_ratelimiter"
  line=$(java -cp "$dir/classes:$guava_cp" Main "$s")
  echo "guava_ratelimiter,$guava_version,$line" >>"$rows"
done

csv() {
  echo 'peer,version,scenario,ns_per_decision,allowed_fraction,repetitions'
  cut -d, -f1-6 "$rows"
}
if [[ -n $out ]]; then csv >"$out"; else csv; fi

{
  echo
  printf '%-18s %-26s %10s %10s %10s %5s %5s %10s\n' \
    peer scenario 'ns median' min max clock cores allowed
  awk -F, '{ printf "%-18s %-26s %10s %10s %10s %5s %5s %10s\n", $1, $3, $4, $7, $8, $9, $10, $5 }' "$rows"
  echo
  echo "go_x_time_rate: x/time $go_version; guava_ratelimiter: Guava $guava_version"
  echo "ns per decision: median of 10 repetitions; clock cpu = the thread's CPU time, wall = wall time over both threads' decisions"
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
} >&2
