#!/usr/bin/env bash
# Runs the benchmark suite (benches/README.md), then `bench-report`, which
# writes benches/RESULTS.md and the charts in docs/charts/ (README.md shows
# one, and the published package holds docs/, not benches/).
#
#   scripts/bench.sh              run every bench, then the report
#   scripts/bench.sh --quick      shorter runs (a smoke test)
#   scripts/bench.sh --report     only the report, from the last run
#   scripts/bench.sh -o FILE      the report to FILE, its charts to charts/
#                                 beside it, benches/ and docs/ left alone
#
# About 10 minutes on 2 cores. The benches write to <target>/bench-results
# (criterion to <target>/criterion); this adds when and where they ran.
set -euo pipefail

cd "$(dirname "$0")/.."

out=benches/RESULTS.md
charts=docs/charts
quick=0
run=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --report) run=0 ;;
        -o) shift; out="$1"; charts="$(dirname "$1")/charts" ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
results="$target_dir/bench-results"
bench() { cargo bench -p lock-manager-benches "$@"; }

if [ "$run" = 1 ]; then
    rm -rf "$results" "$target_dir/criterion"
    mkdir -p "$results"
    export LOCK_MANAGER_BENCH_OUT="$results"
    date -u '+%Y-%m-%d %H:%M UTC' >"$results/date"
    commit=$(git rev-parse --short HEAD 2>/dev/null || echo '?')
    if [ -n "$(git status --porcelain -- src 2>/dev/null)" ]; then
        commit="$commit (src/ modified)"
    fi
    echo "$commit" >"$results/commit"
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
    echo "${cpu:-?}, $(nproc) hardware threads, $(uname -sr)" >"$results/machine"
    cat /proc/loadavg >"$results/load-before" 2>/dev/null || true

    criterion_args=()
    if [ "$quick" = 1 ]; then
        criterion_args=(--warm-up-time 0.2 --measurement-time 0.5 --sample-size 10)
        export FAIRNESS_OPS="${FAIRNESS_OPS:-1000}"
    fi
    bench --bench locks -- "${criterion_args[@]}"
    for name in queue memory scaling fairness; do
        bench --bench "$name"
    done

    cat /proc/loadavg >"$results/load-after" 2>/dev/null || true
fi

cargo run --release -p lock-manager-benches --bin bench-report -- "$target_dir" "$out" "$charts"
