#!/usr/bin/env bash
# Rollback against rotate, and keys from a command against keys from the
# environment, on a throwaway durable PostgreSQL, in one run:
#   (a) rekey rotate --pace max over a fresh copy of a table made by Python's cryptography
#   (b) rekey rollback --run N --pace max of that run: the same engine the other way
#   (c) rekey check-key, the key from the environment against the key from a command (a stand-in
#       of the AWS CLI, tests/stand_ins/aws: a Python start-up, as the real CLI has one too), the
#       median of 5 each: what a key command adds to a run's start
# Every run's median of RUNS is printed, with rollback's rate over rotate's.
# Usage: bench/rollback_bench.sh   Env: ROWS (1000000), RUNS (3)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ROWS=${ROWS:-1000000}
RUNS=${RUNS:-3}
trap 'pg_stop; rm -rf "$WORK"' EXIT
WORK=$(mktemp -d /tmp/rekey-rollback-bench.XXXXXX)
PG_DURABLE=1 pg_start
/usr/bin/python3 "$REKEY_ROOT/bench/make_table.py" "$REKEY_TEST_DB" bench_src "$ROWS" >&2
secs() { echo "$2 - $1" | bc -l | xargs printf '%.2f'; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

rotate_s=() rollback_s=()
for run in $(seq 1 "$RUNS"); do
  bench_psql -c "DROP SCHEMA IF EXISTS rekey CASCADE" >/dev/null 2>&1
  copy_of accounts >/dev/null
  cols=(--column accounts.phone_enc --column accounts.account_enc)
  t0=$(now); "$REKEY" -q rotate --db "$REKEY_TEST_DB" "${cols[@]}" --pace max >&2; t1=$(now)
  rotate_s+=("$(secs "$t0" "$t1")")
  n=$(bench_psql -Atc "SELECT max(id) FROM rekey.runs")
  t0=$(now); "$REKEY" -q rollback --db "$REKEY_TEST_DB" --run "$n" --pace max >&2; t1=$(now)
  rollback_s+=("$(secs "$t0" "$t1")")
done

printf '{"aws /bench/KEY": "%s"}' "$NEW_ENCRYPTION_KEY" >"$WORK/store.json"
env_s=() cmd_s=()
for i in 1 2 3 4 5; do
  t0=$(now); ENCRYPTION_KEY=$NEW_ENCRYPTION_KEY "$REKEY" check-key >/dev/null; t1=$(now)
  env_s+=("$(secs "$t0" "$t1")")
  t0=$(now)
  PATH="$REKEY_ROOT/tests/stand_ins:$PATH" REKEY_FAKE_STORE="$WORK/store.json" "$REKEY" check-key --key-command \
    'aws ssm get-parameter --name /bench/KEY --with-decryption --query Parameter.Value --output text' >/dev/null
  t1=$(now)
  cmd_s+=("$(secs "$t0" "$t1")")
done

rot=$(median "${rotate_s[@]}") back=$(median "${rollback_s[@]}")
echo "| rows | rotate s (each run) | rotate s | rollback s (each run) | rollback s | rollback / rotate | check-key, env s | check-key, key command s |"
echo "|---|---|---:|---|---:|---:|---:|---:|"
echo "| $ROWS | ${rotate_s[*]} | $rot | ${rollback_s[*]} | $back | $(echo "$back / $rot" | bc -l | xargs printf '%.2f') | $(median "${env_s[@]}") | $(median "${cmd_s[@]}") |"
