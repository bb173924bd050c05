#!/usr/bin/env bash
# Interleaved runs of several builds of the bench binaries, to decide
# whether a change pays (ARCHITECTURE.md quotes its figures).
#
#   scripts/compare.sh fairness ROUNDS DIR...
#       Runs DIR/fairness once per DIR per round, the order rotating from
#       round to round, with only lock-manager and one tokio mutex; prints
#       per DIR the median over the rounds of lock-manager's ratio to the
#       tokio mutex in the `yield` and `tight` sections (lower is faster).
#   scripts/compare.sh locks ROUNDS FILTER DIR...
#       The same for DIR/locks, the criterion benches whose names match
#       FILTER (e.g. '^(uncontended|churn-u64)/(lock-manager|floor)$');
#       prints per DIR and bench the median time per iteration in ns.
#   scripts/compare.sh walltime ROUNDS DIR...
#       Times DIR/instructions (benches/instructions.rs) on one thread, a
#       million operations of each pair scenario, both forms: prints per
#       DIR and scenario the median wall time in ms, and every run's (the
#       least is the least disturbed). Catches what instruction counts
#       miss: a mispredicted branch, a store that stalls a load.
#
# A DIR per build: `cargo bench -p lock-manager-benches --no-run`, then
# copy target/release/deps/fairness-<hash>, locks-<hash> and
# instructions-<hash> into DIR as `fairness`, `locks` and `instructions`.
set -euo pipefail

usage() { sed -n '2,24p' "$0" >&2; exit 2; }
[ $# -ge 3 ] || usage
kind=$1 rounds=$2
shift 2
filter=
if [ "$kind" = locks ]; then
    filter=$1
    shift
elif [ "$kind" != fairness ] && [ "$kind" != walltime ]; then
    usage
fi
dirs=("$@")
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

# One run of DIR: lines "NAME VALUE".
run() {
    local dir=$1
    if [ "$kind" = fairness ]; then
        LOCK_MANAGER_BENCH_OUT="$results/out" \
            LOCK_MANAGER_BENCH_PEERS=lock-manager,ref-tokio-mutex \
            "$dir/fairness" --bench 2>/dev/null |
            awk -F'|' '/^\| lock-manager /{ sub(/x/, "", $6); n++; print (n == 1 ? "yield" : "tight"), $6 + 0 }'
    elif [ "$kind" = walltime ]; then
        for scenario in pairs pairs-1by1 pairs-16 pairs-16-1by1; do
            local start
            start=$(date +%s%N)
            "$dir/instructions" "$scenario" 1000000 >/dev/null
            echo "$scenario $((($(date +%s%N) - start) / 1000000))"
        done
    else
        "$dir/locks" --bench --output-format bencher --warm-up-time 1 \
            --measurement-time 2 "$filter" 2>/dev/null |
            awk '/^test /{ sub(/^test /, ""); sub(/ \.\.\. bench: +/, "\t"); split($0, f, "\t");
                          gsub(/,/, "", f[2]); split(f[2], v, " "); gsub(/ /, "_", f[1]); print f[1], v[1] }'
    fi
}

for ((round = 0; round < rounds; round++)); do
    for ((i = 0; i < ${#dirs[@]}; i++)); do
        n=$(((i + round) % ${#dirs[@]}))
        run "${dirs[$n]}" >>"$results/$n"
    done
done

for ((n = 0; n < ${#dirs[@]}; n++)); do
    echo "${dirs[$n]}"
    sort -k1,1 -k2,2n "$results/$n" | awk '
        { v[$1] = v[$1] " " $2; c[$1]++ }
        END { for (k in v) { split(substr(v[k], 2), a, " "); m = c[k];
              med = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2;
              printf "    %s: median %s over %d runs (%s)\n", k, med, m, substr(v[k], 2) } }' | sort
done
