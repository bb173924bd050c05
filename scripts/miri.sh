#!/usr/bin/env bash
# Runs the hand-polled, runtime-free tests under miri with strict provenance:
# the lib's unit tests and the suite's `semantics`, `many`, `extend` and
# `misuse` modules. The crate swaps parking_lot for std's Mutex under cfg(miri)
# (src/sync.rs).
#
# The `misuse` tests leak on purpose (`mem::forget` on guards and futures,
# whose documented outcome they check), so miri's leak check is off for
# them alone.
#
# Usage: scripts/miri.sh [test name filters within those modules, e.g. many::try]
# Install miri with: rustup component add miri rust-src --toolchain nightly
# Without it the script skips, saying so, unless MIRI_REQUIRED is set (as
# .ci/run, which installs it, sets it): then it fails.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "miri: skipped (cargo +nightly miri not available)"
    [ -z "${MIRI_REQUIRED:-}" ] || exit 1
    exit 0
fi

flags="${MIRIFLAGS:--Zmiri-strict-provenance}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/miri}"

# Filters given replace the default ones (libtest runs a test matching any).
filters=("$@")
run() {
    local extra_flags="$1"
    shift
    echo "miri: cargo +nightly miri test $* (MIRIFLAGS=$flags $extra_flags)"
    MIRIFLAGS="$flags $extra_flags" cargo +nightly miri test --no-fail-fast "$@"
}

# The shard spread and hash checks hash thousands of keys, and the room
# checks take and release thousands: safe arithmetic over the same code
# the other tests run, nothing new for miri to find, and two minutes
# under it.
run "" --lib -- "${filters[@]}" \
    --skip shards::tests::sequential_keys_spread \
    --skip shards::tests::keys_ \
    --skip shards::tests::the_shard_is_the_top_bits_of_the_hash \
    --skip hashed::tests:: \
    --skip state::tests::released_keys_give_their_room_back
# The tests on real runtimes and threads (random orders, stress), and a
# thousand keys taken in turn, take minutes under miri and reach no code
# the hand-polled ones do not.
skips=(--skip random_orders --skip threads_ --skip owned_guards
    --skip extends_in_one_global_order
    --skip semantics::a_released_key_leaves_no_entry_behind)
if [ ${#filters[@]} -eq 0 ]; then
    run "" --test suite -- semantics:: many:: extend:: "${skips[@]}"
    run "-Zmiri-ignore-leaks" --test suite -- misuse::
else
    run "-Zmiri-ignore-leaks" --test suite -- "${filters[@]}"
fi
