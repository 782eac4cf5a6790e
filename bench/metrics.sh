#!/usr/bin/env bash
# Metrics benchmark: a caudal metrics job (8 grouped metrics over the flights_x10 Parquet lake)
# vs the same SQL run by DuckDB over the same files. Bar: caudal wall <= 1.5 x DuckDB wall.
# Usage: bash bench/metrics.sh [--quick] [--reps N] [--rebuild-lake] [--keep] [--allow-busy]
# Exit:  0 PASS, 1 FAIL (run failed, bar failed or wrong results), 3 timings skewed by other load
# Env:   CAUDAL_BENCH_HOME (venv + data + the lake project, default ~/.cache/caudal-bench)
#        CARGO_TARGET_DIR  (default ~/.cache/caudal/target)
#        CAUDAL_BIN        path to a caudal binary to use as is: skips `cargo build --release`
#                          (for machines where someone else owns the builds), e.g.
#                          CAUDAL_BIN=~/.cache/caudal/target/release/caudal bash bench/metrics.sh
set -euo pipefail

root=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
shared="$root/../shared/bench"
bench_home=${CAUDAL_BENCH_HOME:-$HOME/.cache/caudal-bench}

# 1. Python venv + data (idempotent; the data folder is the last line of stdout).
data=$(bash "$shared/get-data.sh" | tail -n 1)

# 2. Release build of caudal, unless CAUDAL_BIN names the binary to use.
if [ -n "${CAUDAL_BIN:-}" ]; then
  caudal=$CAUDAL_BIN
  echo "using CAUDAL_BIN=$caudal (no cargo build)" >&2
else
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/caudal/target}
  (cd "$root" && cargo build --release)
  caudal=$CARGO_TARGET_DIR/release/caudal
fi

# 3. Lake (built once, reused), measurements, bar and verification.
exec "$bench_home/venv/bin/python" "$root/bench/metrics.py" \
  --caudal "$caudal" \
  --data "$data" \
  "$@"
