#!/usr/bin/env bash
# Runs the hand-polled, runtime-free tests under miri with strict provenance:
# the lib's unit tests, tests/semantics.rs, tests/many.rs and tests/misuse.rs.
# The crate swaps parking_lot for std's Mutex under cfg(miri) (src/sync.rs).
#
# tests/misuse.rs leaks on purpose (`mem::forget` on guards and futures,
# whose documented outcome it checks), so miri's leak check is off for it
# alone.
#
# Usage: scripts/miri.sh [extra args for the test binaries, e.g. a filter]
# Install miri with: rustup component add miri --toolchain nightly
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "miri: skipped (cargo +nightly miri not available)"
    exit 0
fi

flags="${MIRIFLAGS:--Zmiri-strict-provenance}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/miri}"

targets=(--lib --test semantics --test many)
echo "miri: cargo +nightly miri test ${targets[*]} (MIRIFLAGS=$flags)"
MIRIFLAGS="$flags" cargo +nightly miri test --no-fail-fast "${targets[@]}" -- "$@"

echo "miri: cargo +nightly miri test --test misuse (MIRIFLAGS=$flags -Zmiri-ignore-leaks)"
MIRIFLAGS="$flags -Zmiri-ignore-leaks" cargo +nightly miri test --no-fail-fast --test misuse -- "$@"
