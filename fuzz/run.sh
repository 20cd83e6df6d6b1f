#!/usr/bin/env bash
# Builds the fuzzers (clang, -fsanitize=fuzzer,address,undefined) if needed, then runs each
# for FUZZ_SECONDS against a copy of its committed corpus (fuzz/corpus/<target>, seeds and
# regression inputs), FUZZ_JOBS targets at a time. Fails if any target finds a crash, a leak,
# undefined behaviour, a timeout or a failed check; its input is then in FUZZ_ARTIFACTS.
#
# Environment: FUZZ_SECONDS (60), FUZZ_JOBS (nproc), FUZZ_TARGETS (all four), BUILD_DIR
# (build/fuzz), FUZZ_ARTIFACTS ($BUILD_DIR/artifacts), CXX (clang++).
#
#   fuzz/run.sh                                  # the CI run: about a minute per target
#   FUZZ_SECONDS=600 FUZZ_TARGETS=decision_fuzz fuzz/run.sh
#
# New inputs found stay in the copy. To keep the interesting ones, merge them into the corpus:
#   $BUILD_DIR/fuzz/decision_fuzz -merge=1 fuzz/corpus/decision_fuzz <the copy's directory>
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-$(nproc)}
build_dir=${BUILD_DIR:-build/fuzz}
artifacts=${FUZZ_ARTIFACTS:-$build_dir/artifacts}
read -r -a targets <<<"${FUZZ_TARGETS:-quota_spec_fuzz decision_fuzz http_fuzz redis_reply_fuzz}"
if ! [[ $jobs =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz/run.sh: FUZZ_JOBS must be a whole number of at least 1, not '$jobs'" >&2
  exit 1
fi

# libFuzzer's runtime: Debian ships it in libclang-rt-14-dev.
if ! echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }' |
  "${CXX:-clang++}" -x c++ -fsanitize=fuzzer - -o /dev/null 2>/dev/null; then
  echo "fuzz/run.sh: ${CXX:-clang++} -fsanitize=fuzzer does not link;" \
    "install clang and libclang-rt-14-dev" >&2
  exit 1
fi

cmake -S . -B "$build_dir" -DCMAKE_CXX_COMPILER="${CXX:-clang++}" -DRATELIMIT_BUILD_FUZZERS=ON \
  -DRATELIMIT_BUILD_TESTS=OFF -DRATELIMIT_BUILD_BENCHMARKS=OFF -DRATELIMIT_BUILD_EXAMPLES=OFF \
  -DRATELIMIT_INSTALL=OFF >/dev/null
cmake --build "$build_dir" -j"$(nproc)" --target "${targets[@]}"

mkdir -p "$artifacts"
work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-run.XXXXXX")
# Interrupted, the fuzzers still running stop too, before their directory goes.
trap 'kill $(jobs -p) 2>/dev/null || true; wait; rm -rf "$work"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# One target: its corpus copied, then fuzzed; libFuzzer's exit status goes to <target>.rc.
run_one() {
  local target=$1 rc=0
  mkdir -p "$work/$target"
  if [ -d "fuzz/corpus/$target" ]; then cp -r "fuzz/corpus/$target/." "$work/$target/"; fi
  "$build_dir/fuzz/$target" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2560 \
    -print_final_stats=1 -print_funcs=0 -artifact_prefix="$artifacts/$target-" \
    "$work/$target" >"$work/$target.log" 2>&1 || rc=$?
  echo "$rc" >"$work/$target.rc"
}

for target in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  echo "fuzzing $target for ${seconds}s"
  run_one "$target" &
done
wait

failed=0
printf '\n%-18s %12s %8s %7s %7s  %s\n' target executions exec/s cov corpus result
for target in "${targets[@]}"; do
  log="$work/$target.log"
  # A target that failed on its corpus has no statistics: these may find nothing.
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$( (grep -o 'cov: [0-9]*' "$log" || true) | tail -1 | cut -d' ' -f2)
  corpus=$(find "$work/$target" -type f | wc -l)
  printf '%-18s %12s %8s %7s %7s  %s\n' "$target" "${runs:-?}" "${rate:-?}" "${cov:-?}" \
    "$corpus" "$(if [ "$(cat "$work/$target.rc")" = 0 ]; then echo ok; else echo FAILED; fi)"
  if [ "$(cat "$work/$target.rc")" != 0 ]; then
    failed=1
    echo "--- $target: the end of its log" >&2
    grep -v -E '^#[0-9]+.*(NEW|REDUCE|pulse)' "$log" | tail -40 >&2
  fi
done
if [ "$failed" -ne 0 ]; then
  echo "fuzz/run.sh: a fuzzer failed; reproduce with $build_dir/fuzz/<target> <artifact>," \
    "artifacts in $artifacts" >&2
  exit 1
fi
