#!/usr/bin/env bash
# The one test command: installs what is missing, then checks formatting,
# runs clippy with -D warnings (host crates and the wasm UI), cross-builds the
# aarch64 and armv7 glibc and the x86_64 and aarch64 musl binaries, and runs every test (unit tests,
# then end-to-end tests against the real `hdp` binary, the ARM ones under
# qemu-user), a short run of every fuzz target, and the benchmark smoke.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

scripts/setup.sh --test

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== clippy (host crates)"
cargo clippy --locked --all-targets -- -D warnings

echo "== clippy (web UI, wasm32)"
cargo clippy --locked -p hdp-web-ui --target wasm32-unknown-unknown -- -D warnings

echo "== build hdp for the end-to-end tests"
cargo build --locked -p hdp-node --bin hdp

# The Pi/NAS binaries, built as packaging/build.sh ships them (zig, glibc
# floor checked), so the ARM and musl builds cannot rot; the cross e2e test
# runs them beside a native node, the ARM ones under qemu-user (the aarch64
# musl one proves LMDB opens there: packaging/README.md, musl). Their own
# dist dir, so a release build in dist/ is left alone.
echo "== cross builds (aarch64 and armv7 glibc, x86_64 and aarch64 musl) for the cross smoke test"
cross_dist="$CARGO_TARGET_DIR/hdp-test-dist"
HDP_DIST="$cross_dist" packaging/build.sh --targets aarch64-gnu,armv7-gnu,x86_64-musl,aarch64-musl --no-packages
# build.sh keeps only this version's binaries there.
HDP_CROSS_BINS=$(echo "$cross_dist"/bin/hdp-*)
export HDP_CROSS_BINS

echo "== tests"
cargo test --locked

# Every fuzz target for 20 s from the committed seeds (nightly, cargo-fuzz):
# a decoder that panics on what a peer, broker or browser can send fails CI.
echo "== fuzz smoke (scripts/fuzz.sh --smoke)"
scripts/fuzz.sh --smoke

# The benchmark suite at tiny sizes, with the debug binary built above: every
# scenario and baseline still runs and checks what it moved (a figure from
# here means nothing). Syncthing stays out: CI does not install it.
echo "== benchmark smoke (scripts/bench.sh --smoke)"
BENCH_HDP_BIN="$CARGO_TARGET_DIR/debug/hdp" BENCH_SYNCTHING=0 scripts/bench.sh --smoke
