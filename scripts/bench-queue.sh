#!/usr/bin/env bash
# The download queue at scale and under kills: runs the queue end-to-end
# tests with their figures printed:
#   queue_100k   a 100,000-file request: how long listing it into the queue
#                takes, small files per second after resume, and the
#                downloading node's peak RSS against its own idle RSS
#                (the baseline, measured in the same run)
#   kill -9 #N   for each of five kills: how soon new bytes reach the disk
#                after the restart, and where the queue was when killed
# Needs what scripts/setup.sh --test installs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hdp-target}"
cargo build --locked -q -p hdp-node --bin hdp
cargo test --locked -q -p hdp-e2e --test e2e queue:: -- --nocapture --test-threads 1 2>&1 \
  | grep -E '^(queue_100k|kill -9)|queue_100k:|kill -9 #|test result' | sed -E 's/^test queue::[a-z0-9_]+ \.\.\. //'
