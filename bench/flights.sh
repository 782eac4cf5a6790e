#!/usr/bin/env bash
# Flights benchmark: caudal vs the DuckDB / Polars / pandas peer scripts.
# Usage: bash bench/flights.sh [--quick] [--skip-x10] [other flights.py options]
# Env:   CAUDAL_BENCH_HOME (venv + data, default ~/.cache/caudal-bench)
#        CARGO_TARGET_DIR  (default ~/.cache/caudal/target)
set -euo pipefail

root=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
shared="$root/../shared/bench"
bench_home=${CAUDAL_BENCH_HOME:-$HOME/.cache/caudal-bench}

# 1. Python venv + data (idempotent; the data folder is the last line of stdout).
data=$(bash "$shared/get-data.sh" | tail -n 1)

# 2. Release build of caudal.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/caudal/target}
(cd "$root" && cargo build --release)

# 3. Measurements, checks and verification.
exec "$bench_home/venv/bin/python" "$root/bench/flights.py" \
  --caudal "$CARGO_TARGET_DIR/release/caudal" \
  --data "$data" \
  --peers "$shared/peers" \
  "$@"
