#!/usr/bin/env bash
# Adaptive pace (--pace auto, the default) against --pace max, on a throwaway
# durable PostgreSQL, each rekey run on its own fresh copy of one 1M-row table
# made by Python's cryptography. pgbench plays the application (point reads by
# primary key, one in four a write of the same row, as live_load_bench.sh).
# Scenarios, each RUNS times (the README gives medians):
#   idle       --pace max, then --pace auto, on an idle database: rows/s
#   live       400 tps for LOAD_SECONDS without rekey (the baseline), then 400
#              tps while rekey rotates, then again once rekey is done (the
#              autovacuum of the rows it rewrote): app p99 each time, rekey's
#              rows/s while the load ran
#   peer       no rekey: a plain SQL UPDATE of the same two columns (random
#              ranges, a twentieth of a second's rows each, 20 a second on
#              average: pgbench -R spaces them at random) at a
#              quarter of the run's --pace max rate, beside 400 tps: the
#              application's p99 when the database alone writes that many
#              rows, the bound for the 25%-at-2x target
#   saturated  pgbench unthrottled, likewise: app tps each time, rekey's rows/s
#              under it, and that rekey finishes once the load stops
#   step       rekey starts on an idle database; 400 tps from STEP_AT s for
#              LOAD_SECONDS; idle again until rekey ends. How long the app's p99
#              takes to come within 2x of its baseline after the step, how long
#              rekey's pace takes to recover after it; the last run's chart is
#              bench/pace_step.svg.
# Usage: bench/pace_bench.sh   Env: ROWS (1000000), RUNS (3), LOAD_SECONDS (20), STEP_AT (4)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ROWS=${ROWS:-1000000}
RUNS=${RUNS:-3}
LOAD_SECONDS=${LOAD_SECONDS:-20}
STEP_AT=${STEP_AT:-4}
bench_beside_app rekey-pace bench_src "$ROWS"

fresh_accounts() { bench_psql -c "DROP SCHEMA IF EXISTS rekey CASCADE" >/dev/null 2>&1; copy_of accounts >/dev/null; }
# pgbench for $2 seconds at $3 tps (0: unthrottled), log prefix $1 (per-transaction lines, epoch seconds in field 5).
app() {
  local rate=()
  [ "$3" != 0 ] && rate=(-R "$3")
  (cd "$WORK" && pgbench -n "$REKEY_TEST_DB" -f app.sql -c 4 -j 2 "${rate[@]}" -T "$2" -l --log-prefix="$1" \
    >"$WORK/$1.out" 2>&1)
}
# The peer: UPDATE the same columns (same values) of $2 rows a second for $3 seconds, in 20 statements a second;
# its pgbench summary in $WORK/$1.out, its rows per statement in $WORK/$1.rows.
sql_writer() {
  local rows=$(($2 / 20))
  echo "$rows" >"$WORK/$1.rows"
  cat >"$WORK/$1.sql" <<SQL
\\set a random(1, $((ROWS - rows)))
UPDATE accounts SET phone_enc = phone_enc || '', account_enc = account_enc || '' WHERE id BETWEEN :a AND :a + $((rows - 1));
SQL
  (cd "$WORK" && pgbench -n "$REKEY_TEST_DB" -f "$1.sql" -c 1 -R 20 -T "$3" >"$WORK/$1.out" 2>&1)
}
# A quarter of the rows/s of run $1's rekey --pace max on the idle database.
quarter_of_max() {
  /usr/bin/python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print(int(r["rows_seen"] / r["duration_seconds"] / 4))' \
    "$WORK/max_idle.$1.json"
}
# rekey rotate with "$@"; its progress lines, stamped with the time they came, in $WORK/$name.progress.
rotate() {
  local name=$1
  shift
  date +%s.%N >"$WORK/$name.start"
  "$REKEY" rotate --db "$REKEY_TEST_DB" --column accounts.phone_enc --column accounts.account_enc \
    --report "$WORK/$name.json" "$@" 2>&1 >/dev/null |
    /usr/bin/python3 -u -c 'import sys, time
for line in sys.stdin: print(f"{time.time():.3f} {line}", end="")' >"$WORK/$name.progress"
}

for run in $(seq 1 "$RUNS"); do
  echo "run $run of $RUNS" >&2
  fresh_accounts && rotate "max_idle.$run" --pace max
  fresh_accounts && rotate "auto_idle.$run"
  fresh_accounts && app "live_base.$run" "$LOAD_SECONDS" 400
  date +%s.%N >"$WORK/live.$run.load"
  app "live_load.$run" "$LOAD_SECONDS" 400 &
  rotate "live.$run"
  wait
  app "live_after.$run" "$LOAD_SECONDS" 400
  fresh_accounts && app "peer_base.$run" "$LOAD_SECONDS" 400
  app "peer_load.$run" "$LOAD_SECONDS" 400 &
  sql_writer "peer.$run" "$(quarter_of_max "$run")" "$LOAD_SECONDS"
  wait
  fresh_accounts && app "sat_base.$run" "$LOAD_SECONDS" 0
  date +%s.%N >"$WORK/sat.$run.load"
  app "sat_load.$run" "$LOAD_SECONDS" 0 &
  rotate "sat.$run"
  wait
  app "sat_after.$run" "$LOAD_SECONDS" 0
  fresh_accounts && app "step_base.$run" "$LOAD_SECONDS" 400
  (sleep "$STEP_AT" && date +%s.%N >"$WORK/step.$run.load" && app "step_load.$run" "$LOAD_SECONDS" 400) &
  rotate "step.$run"
  wait
done
/usr/bin/python3 "$REKEY_ROOT/bench/pace_report.py" "$WORK" "$RUNS" "$LOAD_SECONDS" "$REKEY_ROOT/bench/pace_step.svg"
