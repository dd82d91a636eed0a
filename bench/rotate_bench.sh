#!/usr/bin/env bash
# Rotation benchmark on a throwaway PostgreSQL, all contenders in one run on
# identical copies of one table built by Python's cryptography:
#   (a) the database's own rewrite: UPDATE t SET a = a || '', b = b || ''
#   (b) a batched Python peer (python_peer.py), on the first PEER_ROWS rows
#   (c) rekey rotate, under /usr/bin/time -v for peak RSS
#   (d) rekey verify --require-new of the rotated copy
# Usage: bench/rotate_bench.sh [ROWS ...]   (default: 1000000 3000000)
# Env: PEER_ROWS (default 100000; 0 skips the peer), THREADS (rekey --threads).
set -euo pipefail
REKEY_ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$REKEY_ROOT/scripts/lib/deps.sh"
source "$REKEY_ROOT/scripts/lib/pg.sh"
rekey_install_deps
rekey_build "$REKEY_ROOT/build" >/dev/null
REKEY="$REKEY_ROOT/build/rekey"
PEER_ROWS=${PEER_ROWS:-100000}
SIZES=("$@")
[ ${#SIZES[@]} -eq 0 ] && SIZES=(1000000 3000000)

trap pg_stop EXIT
PG_DURABLE=1 pg_start
export OLD_ENCRYPTION_KEY="bench-old-passphrase-0123456789abcdefghij"
export NEW_ENCRYPTION_KEY="bench-new-passphrase-0123456789abcdefghij"
export PGAPPNAME=rekey-bench
PSQL=(psql -X -q -v ON_ERROR_STOP=1 "$REKEY_TEST_DB")
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l | xargs printf '%.2f'; }
copy_of() {
  "${PSQL[@]}" -c "DROP TABLE IF EXISTS $1" -c "CREATE TABLE $1 (LIKE bench_src INCLUDING ALL)" \
    -c "INSERT INTO $1 SELECT * FROM bench_src" -c "VACUUM ANALYZE $1" -c "CHECKPOINT"
}
command -v bc >/dev/null || { apt-get install -y -qq bc >/dev/null; }

echo "| rows | bare UPDATE s | Python peer rows/s | rekey rotate s | rekey rows/s | rekey / UPDATE | rekey / Python | rekey peak RSS MB | verify s | verify / rotate |"
echo "|---|---|---|---|---|---|---|---|---|---|"
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

  verify_s="n/a"
  if "$REKEY" verify --help >/dev/null 2>&1; then
    t0=$(now)
    "$REKEY" -q verify --db "$REKEY_TEST_DB" --column t_rekey.phone_enc --column t_rekey.account_enc --require-new >/dev/null
    t1=$(now)
    verify_s=$(secs "$t0" "$t1")
  fi
  "${PSQL[@]}" -c "DROP TABLE t_rekey" -c "DROP SCHEMA bench_state CASCADE"

  /usr/bin/python3 - "$N" "$update_s" "$peer_rate" "$rotate_s" "$rss_mb" "$verify_s" <<'PY'
import sys
n, upd, peer, rot, rss, ver = sys.argv[1:]
n, upd, rot = int(n), float(upd), float(rot)
rate = n / rot
peer_ratio = f"{rate / float(peer):.1f}x faster" if peer != "n/a" else "n/a"
ver_ratio = f"{float(ver) / rot:.2f}" if ver != "n/a" else "n/a"
print(f"| {n:,} | {upd:.1f} | {peer} | {rot:.1f} | {rate:,.0f} | {rot / upd:.2f}x | {peer_ratio} | {rss} | {ver} | {ver_ratio} |")
PY
done
