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

if ! cargo mutants --version >/dev/null 2>&1; then
    cargo install --locked cargo-mutants
fi
exec cargo mutants "$@"
