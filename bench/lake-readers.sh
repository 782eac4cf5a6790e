#!/usr/bin/env bash
# Checks that Spark reads caudal's lake as a Hive-partitioned dataset (DuckDB and pyarrow are
# checked by flights.sh). Installs pyspark into the bench venv (needs a Java 17 runtime).
# Usage: bash bench/lake-readers.sh
set -euo pipefail
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
bench_home=${CAUDAL_BENCH_HOME:-$HOME/.cache/caudal-bench}
data=$(bash "$root/../shared/bench/get-data.sh" | tail -n 1)
py="$bench_home/venv/bin/python"
"$py" -c "import pyspark" 2>/dev/null || "$bench_home/venv/bin/pip" install -q pyspark >&2
command -v java >/dev/null || { echo "Spark needs Java: apt-get install -y openjdk-17-jre-headless" >&2; exit 2; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/caudal/target}
cargo build --release --manifest-path "$root/Cargo.toml" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The same project the flights benchmark loads.
"$py" -c "import sys, pathlib; sys.path.insert(0, '$root/bench'); import flights; flights.make_caudal_project(pathlib.Path('$work/flights'))"
"$CARGO_TARGET_DIR/release/caudal" -C "$work/flights" load "$data/flights.csv" -p flights
"$py" "$root/bench/spark_read.py" "$work/flights/lake/flights" dep_date 336776
