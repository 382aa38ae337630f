#!/usr/bin/env bash
# Fuzzes every decoder of outside input (tests/fuzz/fuzz_targets/, one
# cargo-fuzz target each) and prints executions and crashes per target.
#
#   scripts/fuzz.sh [--smoke] [--runs N | --seconds S] [TARGET...]
#
# --smoke: 20 s per target (what scripts/test.sh runs); --seconds S: S
# seconds per target; --runs N: N executions per target (the closing
# figures use --runs 10000000). Default: 60 s per target.
#
# Installs what it needs, idempotently: rustup's nightly toolchain (minimal
# profile), cargo-fuzz, and g++ for libFuzzer (through scripts/setup.sh --test). Builds without a sanitizer
# (`-s none`: our crates forbid `unsafe`, and it runs several times faster)
# but with debug assertions, so overflows panic. Fuzzing starts from a copy
# of the committed seed corpus (tests/fuzz/corpus/, written by
# `cargo run -p hdp-e2e --example fuzz_seeds`) in a scratch dir; a crash
# leaves its input in $HDP_FUZZ_WORK/artifacts/TARGET/: make it a unit test.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=(-max_total_time=60)
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) mode=(-max_total_time=20) ;;
    --seconds) mode=(-max_total_time="$2"); shift ;;
    --runs) mode=(-runs="$2"); shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) targets+=("$1") ;;
  esac
  shift
done

command -v rustup >/dev/null || { echo "fuzz: rustup is needed" >&2; exit 1; }
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v g++ >/dev/null 2>&1 || scripts/setup.sh --test
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked

export CARGO_TARGET_DIR="${HDP_FUZZ_TARGET_DIR:-$HOME/.cache/hdp-fuzz-target}"
cargo +nightly fuzz build --fuzz-dir tests/fuzz -s none
bin="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir tests/fuzz)

work="${HDP_FUZZ_WORK:-$(mktemp -d /tmp/hdp-fuzz.XXXXXX)}"
mkdir -p "$work"
failed=0
printf '%-14s %14s %8s %9s %s\n' TARGET EXECUTIONS SECONDS EXEC/S CRASHES
for t in "${targets[@]}"; do
  corpus="$work/corpus/$t"
  mkdir -p "$corpus" "$work/artifacts/$t"
  cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  log="$work/$t.log"
  start=$(date +%s.%N)
  set +e
  "$bin/$t" "$corpus" "${mode[@]}" -print_final_stats=1 -rss_limit_mb=1024 -timeout=10 \
    -artifact_prefix="$work/artifacts/$t/" >"$log" 2>&1
  rc=$?
  set -e
  secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  crashes=$(find "$work/artifacts/$t" -type f | wc -l)
  [ "$rc" -eq 0 ] || [ "$crashes" -gt 0 ] || crashes="exit $rc"
  rate=$(awk -v n="${execs:-0}" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
  printf '%-14s %14s %8.1f %9s %s\n' "$t" "${execs:-?}" "$secs" "$rate" "$crashes"
  if [ "$rc" -ne 0 ]; then
    failed=1
    echo "fuzz: $t failed; its log: $log" >&2
    grep -m5 -E 'panicked|ERROR|SUMMARY' "$log" >&2 || true
  fi
done
echo "scratch dir (corpus, logs, crash inputs): $work"
exit "$failed"
