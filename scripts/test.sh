#!/usr/bin/env bash
# The one test command: installs what is missing, then checks formatting,
# runs clippy with -D warnings (host crates and the wasm UI), cross-builds the
# aarch64 and armv7 binaries, and runs every test (unit tests, then
# end-to-end tests against the real `hdp` binary, the ARM ones under qemu-user).
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

# The Pi/NAS binaries, built as packaging/build.sh ships them (zig, glibc
# floor checked), so the ARM builds cannot rot; the cross e2e test runs them
# under qemu-user beside a native node.
echo "== cross builds (aarch64, armv7) for the qemu smoke test"
packaging/build.sh --targets aarch64-gnu,armv7-gnu --no-packages
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
export HDP_CROSS_BINS="$PWD/dist/bin/hdp-$version-aarch64-gnu $PWD/dist/bin/hdp-$version-armv7-gnu"

echo "== tests"
cargo test --locked
