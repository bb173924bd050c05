#!/usr/bin/env bash
# Instructions per operation of the single-thread paths (benches/instructions.rs),
# counted by valgrind: exact, where timings on a shared machine wander.
#
#   scripts/instructions.sh DIR...
#       DIR/instructions for each DIR (one build each:
#       `CARGO_PROFILE_BENCH_CODEGEN_UNITS=1 cargo bench -p
#       lock-manager-benches --no-run --bench instructions`, then copy
#       target/release/deps/instructions-<hash> into DIR as `instructions`).
#   scripts/instructions.sh
#       builds the current tree and counts it alone.
#
# Builds use one codegen unit: with the default sixteen, whether the map's
# removal was inlined into a release depended on which unit rustc put each
# function in, which moved with unrelated changes (40 to 70 instructions
# appearing and vanishing between builds of one path).
#
# Prints, per scenario, each build's instructions per operation: the count
# at 200,000 operations less the count at 100,000, over 100,000.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "instructions.sh: needs valgrind" >&2; exit 2; }
bins=()
if [ $# -eq 0 ]; then
    bin=$(CARGO_PROFILE_BENCH_CODEGEN_UNITS=1 CARGO_TARGET_DIR=target/one-unit \
        cargo bench -p lock-manager-benches --no-run --bench instructions 2>&1 |
        sed -n 's/.*Executable.*(\(.*\))/\1/p')
    bins=("$bin")
else
    for dir in "$@"; do bins+=("$dir/instructions"); done
fi

count() {
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$@" 2>&1 |
        sed -n 's/.*I *refs: *//p' | tr -d ,
}

for scenario in uncontended churn owned try pairs pairs-1by1 handoff pairs-16 pairs-16-1by1; do
    line="$scenario:"
    for bin in "${bins[@]}"; do
        a=$(count "$bin" "$scenario" 100000)
        b=$(count "$bin" "$scenario" 200000)
        line="$line $(((b - a) / 100000))"
    done
    echo "$line"
done
