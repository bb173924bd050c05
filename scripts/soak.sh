#!/usr/bin/env bash
# The soak run (issue 10): one manager shared by tokio, async-std, smol and
# plain threads for DURATION_SECONDS (default 180), with its guarantees
# checked throughout; see soak/src/main.rs.
#
#   scripts/soak.sh              three minutes
#   scripts/soak.sh 600          ten minutes
#   SOAK_SEED=42 scripts/soak.sh replay a seed's choices
#
# Prints one summary line and exits with status 1 on any violation.
set -euo pipefail
cd "$(dirname "$0")/.."

exec cargo run --release --quiet -p lock-manager-soak -- "${1:-180}"
