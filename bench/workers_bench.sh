#!/usr/bin/env bash
# Writer lanes and joined workers, side by side in one run on a throwaway
# PostgreSQL, each contender on its own identical copy of one table built by
# Python's cryptography:
#   the database's own rewrite (UPDATE t SET a = a || '', b = b || ''), a
#   batched Python peer (python_peer.py, on the first PEER_ROWS rows), rekey
#   rotate with --workers 1, 2 and 4, and two rekey processes (--workers 2
#   each) on one run, the second with --join.
# For each: wall time, rows/s, ratios to UPDATE and to Python, peak RSS of each
# rekey process, and the per-row costs the README's sizing is computed from:
# the server's CPU (its backends and background processes), rekey's CPU, and
# WAL bytes.
# Usage: bench/workers_bench.sh [ROWS ...]   (default: 1000000 3000000)
# Env: PEER_ROWS (default 100000; 0 skips the peer).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
PEER_ROWS=${PEER_ROWS:-100000}
SIZES=("$@")
[ ${#SIZES[@]} -eq 0 ] && SIZES=(1000000 3000000)

trap pg_stop EXIT
PG_DURABLE=1 pg_start
PSQL=(bench_psql)
OUT=$(mktemp -d)
TICKS=$(getconf CLK_TCK)
POSTMASTER=$(head -1 "$PG_TMP/data/postmaster.pid")

# CPU seconds the server has used: the postmaster, its reaped children
# (backends that ended) and its live ones.
server_cpu() {
  local total=0 pid fields
  read -r -a fields <"/proc/$POSTMASTER/stat"
  total=$((fields[13] + fields[14] + fields[15] + fields[16]))
  for pid in $(pgrep -P "$POSTMASTER"); do
    read -r -a fields <"/proc/$pid/stat" 2>/dev/null || continue
    total=$((total + fields[13] + fields[14]))
  done
  echo "scale=3; $total / $TICKS" | bc
}
wal_lsn() { "${PSQL[@]}" -Atc "SELECT pg_current_wal_lsn()"; }
wal_bytes() { "${PSQL[@]}" -Atc "SELECT pg_wal_lsn_diff('$2', '$1')"; }
# rekey rotate on table $1 with the remaining options; its /usr/bin/time output in $OUT/$1.<n>.time
rekey_rotate() {
  local table=$1 n=$2
  shift 2
  /usr/bin/time -v -o "$OUT/$table.$n.time" "$REKEY" -q rotate --db "$REKEY_TEST_DB" --column "$table.phone_enc" \
    --column "$table.account_enc" --state-schema "state_$table" "$@" >&2
}
rss_mb() { awk '/Maximum resident set size/ {printf "%.0f", $6/1024}' "$1"; }
cpu_s() { awk '/User time|System time/ {s += $4} END {printf "%.2f", s}' "$1"; }

# One contender: runs "$@" (a shell function), records wall s, server CPU s, WAL bytes.
measure() {
  local name=$1
  shift
  local c0 w0 t0 t1 c1 w1
  c0=$(server_cpu); w0=$(wal_lsn); t0=$(now)
  "$@"
  t1=$(now); c1=$(server_cpu); w1=$(wal_lsn)
  echo "$name $(echo "$t1 - $t0" | bc -l) $(echo "$c1 - $c0" | bc -l) $(wal_bytes "$w0" "$w1")" >>"$OUT/results"
}

run_update() { "${PSQL[@]}" -c "UPDATE t_update SET phone_enc = phone_enc || '', account_enc = account_enc || ''"; }
run_lanes() { rekey_rotate "$1" 1 --workers "$2"; }
run_joined() {
  rekey_rotate t_join 1 --workers 2 --worker-name first &
  local first=$!
  # The second joins once the first has opened the run.
  until "${PSQL[@]}" -Atc "SELECT count(*) FROM pg_namespace WHERE nspname = 'state_t_join'" | grep -q 1; do sleep 0.05; done
  until [ "$("${PSQL[@]}" -Atc "SELECT count(*) FROM state_t_join.chunks" 2>/dev/null || echo 0)" -gt 0 ]; do sleep 0.05; done
  rekey_rotate t_join 2 --workers 2 --worker-name second --join
  wait "$first"
}

echo "| rows | contender | wall s | rows/s | / UPDATE | x Python | peak RSS MB | rekey CPU µs/row | server CPU µs/row | WAL B/row |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for N in "${SIZES[@]}"; do
  : >"$OUT/results"
  /usr/bin/python3 "$REKEY_ROOT/bench/make_table.py" "$REKEY_TEST_DB" bench_src "$N" >&2
  copy_of t_update
  measure update run_update
  "${PSQL[@]}" -c "DROP TABLE t_update"
  peer_rate=0
  if [ "$PEER_ROWS" -gt 0 ]; then
    copy_of t_python
    peer=$(cd "$REKEY_ROOT/bench" && /usr/bin/python3 python_peer.py "$REKEY_TEST_DB" t_python "$PEER_ROWS")
    peer_rate=$(/usr/bin/python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d['rows']/d['seconds'])" "$peer")
    "${PSQL[@]}" -c "DROP TABLE t_python"
  fi
  for lanes in 1 2 4; do
    copy_of "t_w$lanes"
    measure "workers_$lanes" run_lanes "t_w$lanes" "$lanes"
    "${PSQL[@]}" -c "DROP TABLE t_w$lanes" -c "DROP SCHEMA state_t_w$lanes CASCADE"
  done
  copy_of t_join
  measure "join_2x2" run_joined
  "${PSQL[@]}" -c "DROP TABLE t_join" -c "DROP SCHEMA state_t_join CASCADE" -c "DROP TABLE bench_src"

  /usr/bin/python3 - "$N" "$peer_rate" "$OUT" <<'PY'
import os, re, sys
n, peer, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
runs = {}
for line in open(os.path.join(out, "results")):
    name, wall, cpu, wal = line.split()
    runs[name] = (float(wall), float(cpu), int(float(wal)))
def time_file(table, i):
    p = os.path.join(out, f"{table}.{i}.time")
    if not os.path.exists(p):
        return None
    text = open(p).read()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", text))
    return rss, cpu
update_wall = runs["update"][0]
peer_text = f"{peer:,.0f}" if peer > 0 else "n/a"
def row(label, name, tables):
    wall, server_cpu, wal = runs[name]
    stats = [time_file(t, i) for t, i in tables]
    stats = [s for s in stats if s]
    rss = " + ".join(f"{s[0]:.0f}" for s in stats) if stats else "-"
    rekey_cpu = f"{sum(s[1] for s in stats) / n * 1e6:.1f}" if stats else "-"
    rate = n / wall
    ratio_peer = f"{rate / peer:.1f}x" if peer > 0 and stats else "-"
    print(f"| {n:,} | {label} | {wall:.1f} | {rate:,.0f} | {wall / update_wall:.2f}x | {ratio_peer} | {rss} | "
          f"{rekey_cpu} | {server_cpu / n * 1e6:.1f} | {wal / n:.0f} |")
print(f"| {n:,} | bare UPDATE | {update_wall:.1f} | {n / update_wall:,.0f} | 1.00x | - | - | - | "
      f"{runs['update'][1] / n * 1e6:.1f} | {runs['update'][2] / n:.0f} |")
print(f"| {n:,} | Python peer (first {min(n, 100000):,} rows) | - | {peer_text} | - | 1.0x | - | - | - | - |")
for lanes in (1, 2, 4):
    row(f"rekey --workers {lanes}", f"workers_{lanes}", [(f"t_w{lanes}", 1)])
row("rekey 2 processes x --workers 2 (--join)", "join_2x2", [("t_join", 1), ("t_join", 2)])
PY
done
rm -rf "$OUT"
