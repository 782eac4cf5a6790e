#!/usr/bin/env bash
# Builds caudal (release) and runs the `caudal run` benchmarks: bash bench/watch.sh [--quick]
set -euo pipefail
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/caudal/target}
cargo build --release --manifest-path "$root/Cargo.toml" >&2
exec python3 "$root/bench/watch.py" --caudal "$CARGO_TARGET_DIR/release/caudal" "$@"
