#!/usr/bin/env bash
# Rotation beside a live application, on a throwaway PostgreSQL: pgbench plays
# the service (a fixed offered load of point reads and writes by primary key
# on the table being rotated) for LOAD_SECONDS without rekey, then again while
# `rekey rotate` runs at its default settings. Prints the application's
# latency p50/p99 for both, the ratio, and rekey's rate.
# Usage: bench/live_load_bench.sh [ROWS]   (default 1000000)
# Env: TPS (offered application load, default 400), CLIENTS (default 4), LOAD_SECONDS (default 20),
# REKEY_ARGS (extra rotate options, e.g. "--max-rate 20000").
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ROWS=${1:-1000000}
TPS=${TPS:-400}
CLIENTS=${CLIENTS:-4}
LOAD_SECONDS=${LOAD_SECONDS:-20}
bench_beside_app rekey-live accounts "$ROWS"

load() {  # $1: label; pgbench writes per-transaction latencies (µs) to $WORK/$1.*
  (cd "$WORK" && pgbench -n "$REKEY_TEST_DB" -f app.sql -c "$CLIENTS" -j 2 -R "$TPS" -T "$LOAD_SECONDS" \
    -l --log-prefix="$1" >/dev/null 2>"$WORK/$1.err") || { cat "$WORK/$1.err" >&2; return 1; }
}
percentiles() {
  cat "$WORK/$1".* | /usr/bin/python3 -c '
import sys
lat = sorted(int(line.split()[2]) for line in sys.stdin if line.strip())
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1000
print(f"{len(lat)} {p(0.50):.2f} {p(0.99):.2f}")'
}

load baseline
read -r base_n base_p50 base_p99 <<<"$(percentiles baseline)"

"$REKEY" -q rotate --db "$REKEY_TEST_DB" --column accounts.phone_enc --column accounts.account_enc \
  --report "$WORK/report.json" ${REKEY_ARGS:-} >/dev/null &
rekey_pid=$!
sleep 1
load during
wait "$rekey_pid"
read -r dur_n dur_p50 dur_p99 <<<"$(percentiles during)"
rate=$(/usr/bin/python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(round(r['rows_seen']/r['duration_seconds']))" "$WORK/report.json")

echo "| rows | app load | app p50 / p99 ms without rekey | app p50 / p99 ms with rekey | p99 ratio | rekey rows/s under load |"
echo "|---|---|---|---|---|---|"
/usr/bin/python3 - "$ROWS" "$TPS" "$base_p50" "$base_p99" "$dur_p50" "$dur_p99" "$rate" "$base_n" "$dur_n" <<'PY'
import sys
rows, tps, bp50, bp99, dp50, dp99, rate, bn, dn = sys.argv[1:]
print(f"| {int(rows):,} | {tps} tps ({bn} / {dn} tx) | {bp50} / {bp99} | {dp50} / {dp99} | "
      f"{float(dp99) / float(bp99):.2f}x | {int(rate):,} |")
PY
