#!/usr/bin/env bash
# How long discovery takes: runs the discovery end-to-end tests RUNS times
# (default 5) and prints the median and range of each measured case:
#   mqtt-three-nodes           three nodes started on one topic and a local mosquitto, until all are connected
#   mqtt-after-broker-restart  a node started after the broker restarted, until it is connected to the other two
#   mqtt-runtime-join          `hdp topics join` on a running node, until the two nodes are connected
#   mdns-two-nodes             two nodes in network namespaces on one bridge (MQTT off), until connected
#   broker-reconnect-time      restarted broker until both nodes report "connected" again
# Times start once the last node has printed its banner. Needs what
# scripts/setup.sh --test installs; the mDNS case needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hdp-target}"
cargo build --locked -q -p hdp-node --bin hdp
cargo test --locked -q -p hdp-e2e --test e2e --no-run
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for i in $(seq "$runs"); do
  echo "run $i/$runs" >&2
  cargo test --locked -q -p hdp-e2e --test e2e discovery:: -- --nocapture --test-threads 1 2>&1 \
    | grep -oE '(discovery-time [a-z-]+|broker-reconnect-time) [0-9.]+' >>"$out" || true
done
python3 - "$out" <<'PY'
import sys, statistics, collections
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    parts = line.split()
    key = parts[1] if parts[0] == "discovery-time" else parts[0]
    d[key].append(float(parts[-1]))
print(f"{'case':<28} {'runs':>4} {'median s':>9} {'min s':>7} {'max s':>7}")
for k in sorted(d):
    v = d[k]
    print(f"{k:<28} {len(v):>4} {statistics.median(v):>9.3f} {min(v):>7.3f} {max(v):>7.3f}")
PY
