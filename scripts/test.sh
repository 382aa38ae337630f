#!/usr/bin/env bash
# The one test command: installs what is missing, then checks formatting,
# runs clippy with -D warnings (host crates and the wasm UI), and runs every
# test (unit tests, then end-to-end tests against the real `hdp` binary).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --test

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== clippy (host crates)"
cargo clippy --locked --all-targets -- -D warnings

echo "== clippy (web UI, wasm32)"
cargo clippy --locked -p hdp-web-ui --target wasm32-unknown-unknown -- -D warnings

echo "== build hdp for the end-to-end tests"
cargo build --locked -p hdp-node --bin hdp

echo "== tests"
cargo test --locked
