#!/usr/bin/env bash
# Mutation testing of src/ with cargo-mutants; settings in .cargo/mutants.toml.
#
#   scripts/mutants.sh                    every mutant of src/
#   scripts/mutants.sh --shard 1/4        a quarter of them, to split a run
#   scripts/mutants.sh -f src/many.rs     the mutants of one file
#   scripts/mutants.sh --in-diff FILE     those on the lines a diff touches
#   scripts/mutants.sh --list             list the mutants, test nothing
#
# Arguments pass straight to `cargo mutants`. Results go to mutants.out/
# (caught.txt, missed.txt, timeout.txt, unviable.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

# Each mutant's tests run under cargo-nextest (see .cargo/mutants.toml).
for tool in mutants nextest; do
    if ! cargo "$tool" --version >/dev/null 2>&1; then
        cargo install --locked "cargo-$tool"
    fi
done
exec cargo mutants "$@"
