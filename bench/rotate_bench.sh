#!/usr/bin/env bash
# Rotation benchmark on a throwaway PostgreSQL, all contenders in one run on
# identical copies of one table built by Python's cryptography:
#   (a) the database's own rewrite: UPDATE t SET a = a || '', b = b || ''
#   (b) a batched Python peer (python_peer.py), on the first PEER_ROWS rows
#   (c) rekey rotate, under /usr/bin/time -v for peak RSS
#   (d) the gate, rekey verify --discover --require-new, over the database holding the rotated copy
#   (e) the same gate over a table of the same size whose text columns hold no token: its scan rate
#   (f) with BASELINE_BIN set, that rekey binary (an earlier build) on its own copy: before and after in
#       one run
# Usage: bench/rotate_bench.sh [ROWS ...]   (default: 1000000 3000000)
# Env: PEER_ROWS (default 100000; 0 skips the peer), THREADS (rekey --threads), BASELINE_BIN.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
PEER_ROWS=${PEER_ROWS:-100000}
SIZES=("$@")
[ ${#SIZES[@]} -eq 0 ] && SIZES=(1000000 3000000)

trap pg_stop EXIT
PG_DURABLE=1 pg_start
PSQL=(bench_psql)
secs() { echo "$2 - $1" | bc -l | xargs printf '%.2f'; }

echo "| rows | bare UPDATE s | Python peer rows/s | rekey rotate s | rekey rows/s | rekey / UPDATE | rekey / Python | rekey peak RSS MB | gate s | gate / rotate | no-token scan MB/s | baseline rotate s |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for N in "${SIZES[@]}"; do
  /usr/bin/python3 "$REKEY_ROOT/bench/make_table.py" "$REKEY_TEST_DB" bench_src "$N" >&2

  copy_of t_update
  t0=$(now); "${PSQL[@]}" -c "UPDATE t_update SET phone_enc = phone_enc || '', account_enc = account_enc || ''"; t1=$(now)
  update_s=$(secs "$t0" "$t1")
  "${PSQL[@]}" -c "DROP TABLE t_update"

  peer_rate="n/a"
  if [ "$PEER_ROWS" -gt 0 ]; then
    copy_of t_python
    peer=$(cd "$REKEY_ROOT/bench" && /usr/bin/python3 python_peer.py "$REKEY_TEST_DB" t_python "$PEER_ROWS")
    peer_rate=$(/usr/bin/python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(round(d['rows']/d['seconds']))" "$peer")
    "${PSQL[@]}" -c "DROP TABLE t_python"
  fi

  copy_of t_rekey
  t0=$(now)
  /usr/bin/time -v -o /tmp/rekey-bench-time.txt "$REKEY" -q rotate --db "$REKEY_TEST_DB" \
    --column t_rekey.phone_enc --column t_rekey.account_enc --state-schema bench_state ${THREADS:+--threads $THREADS} >&2
  t1=$(now)
  rotate_s=$(secs "$t0" "$t1")
  rss_mb=$(awk '/Maximum resident set size/ {printf "%.0f", $6/1024}' /tmp/rekey-bench-time.txt)

  base_s="n/a"
  if [ -n "${BASELINE_BIN:-}" ]; then
    copy_of t_base
    t0=$(now)
    "$BASELINE_BIN" -q rotate --db "$REKEY_TEST_DB" --column t_base.phone_enc --column t_base.account_enc \
      --state-schema bench_base ${THREADS:+--threads $THREADS} >&2
    t1=$(now)
    base_s=$(secs "$t0" "$t1")
    "${PSQL[@]}" -c "DROP TABLE t_base" -c "DROP SCHEMA bench_base CASCADE"
  fi

  # The gate over the whole database: only the rotated copy holds tokens now (it must pass).
  "${PSQL[@]}" -c "DROP TABLE bench_src"
  t0=$(now)
  "$REKEY" -q verify --db "$REKEY_TEST_DB" --discover --require-new --state-schema bench_state >/dev/null
  t1=$(now)
  gate_s=$(secs "$t0" "$t1")
  "${PSQL[@]}" -c "DROP TABLE t_rekey" -c "DROP SCHEMA bench_state CASCADE"

  # The same gate over a table of the same size whose text columns hold no token at all.
  "${PSQL[@]}" -c "CREATE TABLE t_plain AS SELECT g AS id, md5(g::text) || md5((g + 1)::text) || md5((g + 2)::text) AS phone,
    repeat(md5(g::text), 4) AS account, 'note ' || g AS note FROM generate_series(1, $N) g" \
    -c "ALTER TABLE t_plain ADD PRIMARY KEY (id)" -c "VACUUM ANALYZE t_plain" -c "CHECKPOINT"
  plain_mb=$("${PSQL[@]}" -Atc "SELECT sum(pg_column_size(phone) + pg_column_size(account) + pg_column_size(note)) / 1e6 FROM t_plain")
  t0=$(now)
  "$REKEY" -q verify --db "$REKEY_TEST_DB" --discover --require-new --allow-no-tokens >/dev/null
  t1=$(now)
  plain_s=$(secs "$t0" "$t1")
  "${PSQL[@]}" -c "DROP TABLE t_plain"

  /usr/bin/python3 - "$N" "$update_s" "$peer_rate" "$rotate_s" "$rss_mb" "$gate_s" "$plain_mb" "$plain_s" "$base_s" <<'PY'
import sys
n, upd, peer, rot, rss, gate, plain_mb, plain_s, base = sys.argv[1:]
n, upd, rot, gate = int(n), float(upd), float(rot), float(gate)
rate = n / rot
peer_ratio = f"{rate / float(peer):.1f}x faster" if peer != "n/a" else "n/a"
scan = float(plain_mb) / float(plain_s)
print(f"| {n:,} | {upd:.1f} | {peer} | {rot:.1f} | {rate:,.0f} | {rot / upd:.2f}x | {peer_ratio} | {rss} | {gate:.1f} | "
      f"{gate / rot:.2f} | {scan:,.0f} ({float(plain_mb):,.0f} MB in {float(plain_s):.1f} s) | "
      f"{base if base == 'n/a' else f'{float(base):.1f} (rekey / baseline {rot / float(base):.2f}x)'} |")
PY
done
