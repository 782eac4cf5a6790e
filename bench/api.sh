#!/usr/bin/env bash
# API benchmark: GET /api/v1/deliveries?limit=50 with 100,000 deliveries in the ledger, at about
# 500 requests/s from wrk in a second process. Bar: p99 <= 20 ms at >= 500 requests/s.
# Usage: bash bench/api.sh [seconds]           (default 30)
# Env:   CAUDAL_BIN (a caudal binary to use as is; default: cargo build --release)
#        CARGO_TARGET_DIR (default ~/.cache/caudal/target)
# Peer:  the same wrk run against GET /api/v1/health (no database work) shows what the HTTP
#        stack alone costs on this machine.
set -euo pipefail
root=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
seconds=${1:-30}
if [ -n "${CAUDAL_BIN:-}" ]; then
  caudal=$CAUDAL_BIN
else
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/caudal/target}
  (cd "$root" && cargo build --release >&2)
  caudal=$CARGO_TARGET_DIR/release/caudal
fi
if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >&2 \
    || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >&2; }
fi
command -v sqlite3 >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q sqlite3 >&2

work=$(mktemp -d)
daemon=
cleanup() { [ -n "$daemon" ] && kill -INT "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
"$caudal" demo --once >/dev/null
project=$work/caudal-demo
# 100,000 deliveries in the ledger (as after months of running), spread over pipelines and statuses.
sqlite3 "$project/.caudal/ledger.db" <<'SQL'
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
INSERT INTO deliveries (load_id, pipeline, source, content_hash, size, status, rows_read, rows_loaded,
  rows_rejected, started_at, finished_at, duration_ms)
SELECT printf('bench%019d', i), CASE i % 3 WHEN 0 THEN 'sales' WHEN 1 THEN 'orders' ELSE 'events' END,
  printf('incoming/file_%06d.csv', i), printf('%064x', i), 1000 + i % 5000,
  CASE WHEN i % 50 = 0 THEN 'failed' WHEN i % 10 = 0 THEN 'duplicate' ELSE 'loaded' END,
  1000, 990, 10, strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('-%d seconds', 100000 - i)),
  strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('-%d seconds', 100000 - i)), 40 + i % 60
FROM n;
SQL
export CAUDAL_TOKEN
CAUDAL_TOKEN=$("$caudal" -C "$project" token create --name bench --role viewer 2>/dev/null)
CAUDAL_LISTEN=127.0.0.1:0 "$caudal" -C "$project" run >/dev/null 2>"$work/daemon.err" &
daemon=$!
for _ in $(seq 100); do grep -q "^serving http" "$work/daemon.err" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's#^serving http://\([^/]*\)/.*#\1#p' "$work/daemon.err")
[ -n "$addr" ] || { cat "$work/daemon.err"; echo "the daemon did not start serving" >&2; exit 1; }
count=$(sqlite3 "$project/.caudal/ledger.db" "SELECT count(*) FROM deliveries")
echo "caudal $("$caudal" --version | cut -d' ' -f2) at $addr, $count deliveries in the ledger; $(nproc) cores"

measure() { # path -> prints "rps p50 p99" (ms)
  wrk -t2 -c10 -d"${seconds}s" --latency -s "$root/bench/api.lua" "http://$addr$1" > "$work/wrk.out"
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
  p50=$(awk '$1 == "50%" {print $2}' "$work/wrk.out")
  p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/wrk.out")
  [ -z "$non2xx" ] || { cat "$work/wrk.out"; echo "non-2xx responses" >&2; exit 1; }
  echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}
to_ms() { # wrk prints 1.23ms, 456.00us or 1.20s
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /s$/ && v !~ /ms$/) n *= 1000; printf "%.2f", n }'
}
read -r peer_rps peer_p50 peer_p99 < <(measure "/api/v1/health")
read -r rps p50 p99 < <(measure "/api/v1/deliveries?limit=50")
printf '\n%-36s %10s %9s %9s\n' "endpoint (wrk -t2 -c10, ${seconds}s)" "req/s" "p50 ms" "p99 ms"
printf '%-36s %10s %9s %9s\n' "GET /api/v1/health (peer: no DB)" "$peer_rps" "$peer_p50" "$peer_p99"
printf '%-36s %10s %9s %9s\n' "GET /api/v1/deliveries?limit=50" "$rps" "$p50" "$p99"
ratio=$(awk -v a="$p99" -v b="$peer_p99" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
echo "p99 deliveries / p99 health: ${ratio}x"
verdict=$(awk -v p="$p99" -v r="$rps" 'BEGIN { print (p <= 20 && r >= 500) ? "PASS" : "FAIL" }')
echo "bar: p99 <= 20 ms at >= 500 req/s: $verdict"
echo "reproduce: bash bench/api.sh $seconds"
[ "$verdict" = PASS ]
