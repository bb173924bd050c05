#!/usr/bin/env bash
# Runs the hand-polled, runtime-free tests under miri with strict provenance:
# the lib's unit tests, tests/misuse.rs and tests/semantics.rs.
# The crate swaps parking_lot for std's Mutex under cfg(miri) (src/sync.rs).
#
# Usage: scripts/miri.sh [extra args for the test binaries, e.g. a filter]
# Install miri with: rustup component add miri --toolchain nightly
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "miri: skipped (cargo +nightly miri not available)"
    exit 0
fi

export MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/miri}"

targets=(--lib --test misuse --test semantics)

echo "miri: cargo +nightly miri test ${targets[*]} (MIRIFLAGS=$MIRIFLAGS)"
cargo +nightly miri test --no-fail-fast "${targets[@]}" -- "$@"
