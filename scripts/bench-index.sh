#!/usr/bin/env bash
# Indexing benchmark: scans a generated tree with the release `hdp` and, in the
# same run, times `find DIR -printf '%s %T@ %p\n' > /dev/null` on the same tree
# (warm cache for both). Reports files/s for each, the ratio, the incremental
# rescan time of the unchanged tree, and the node's peak RSS (VmHWM).
#
#   scripts/bench-index.sh [FILES]      # default 200000
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-200000}
per_dir=1000
dirs=$(( (files + per_dir - 1) / per_dir ))

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hdp-target}"
cargo build --release --locked -p hdp-node --bin hdp >&2
hdp="$CARGO_TARGET_DIR/release/hdp"

work=$(mktemp -d /tmp/hdp-bench.XXXXXX)
node_pid=""
cleanup() {
  [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

tree="$work/tree"
echo "generating $files files in $dirs directories..." >&2
for ((d = 0; d < dirs; d++)); do
  dir="$tree/g$((d / 20))/d$d"
  mkdir -p "$dir"
  n=$(( files - d * per_dir )); (( n > per_dir )) && n=$per_dir
  (cd "$dir" && eval "touch f{1..$n}.dat")
done

now() { date +%s.%N; }
calc() { awk "BEGIN { print $1 }"; }
find "$tree" -printf '%s %T@ %p\n' > /dev/null   # warm the cache
best_find=""
for _ in 1 2 3; do
  t0=$(now); find "$tree" -printf '%s %T@ %p\n' > /dev/null; t1=$(now)
  t=$(calc "$t1 - $t0")
  if [ -z "$best_find" ] || [ "$(calc "$t < $best_find")" = 1 ]; then best_find=$t; fi
done

data="$work/data"
mkdir -p "$data"
"$hdp" start --data-dir "$data" --http 127.0.0.1:0 --listen 127.0.0.1:0 --mqtt off --no-mdns --share "$tree" > "$work/out" 2> "$work/log" &
node_pid=$!
for _ in $(seq 1 600); do grep -q 'web UI' "$work/out" 2>/dev/null && break; sleep 0.1; done
addr=$(grep -o 'http://[0-9.:]*' "$work/out" | head -1 | sed 's|http://||')
client=(--http "$addr" --data-dir "$data")

shares_json() { "$hdp" shares --json "${client[@]}"; }
wait_scan() {
  for _ in $(seq 1 6000); do
    case "$(shares_json)" in *'"scanning": true'*) sleep 0.05 ;; *) return 0 ;; esac
  done
  echo "scan did not finish" >&2; exit 1
}
field() {
  local json; json=$(shares_json)
  [[ $json =~ \"$1\":\ *([0-9]+) ]] && echo "${BASH_REMATCH[1]}"
}

wait_scan
scan_ms=$(field last_scan_ms)
indexed=$(field files)
"$hdp" shares rescan "${client[@]}" > /dev/null
sleep 0.2
wait_scan
rescan_ms=$(field last_scan_ms)
hwm_kb=$(grep VmHWM "/proc/$node_pid/status" | grep -o '[0-9]*')
kill -TERM "$node_pid"; wait "$node_pid" || true; node_pid=""

scan_s=$(calc "$scan_ms / 1000")
find_rate=$(calc "$files / $best_find")
hdp_rate=$(calc "$indexed / $scan_s")
printf 'files indexed        %d\n' "$indexed"
printf 'find                 %8.0f files/s  (%.3f s, best of 3)\n' "$find_rate" "$best_find"
printf 'hdp first scan       %8.0f files/s  (%.3f s)\n' "$hdp_rate" "$scan_s"
printf 'hdp/find ratio       %8.2f\n' "$(calc "$hdp_rate / $find_rate")"
printf 'hdp unchanged rescan %8.3f s (%.2fx find)\n' "$(calc "$rescan_ms / 1000")" "$(calc "$rescan_ms / 1000 / $best_find")"
printf 'hdp peak RSS         %8.1f MiB\n' "$(calc "$hwm_kb / 1024")"
