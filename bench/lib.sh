# Sourced by the benchmarks: installs what is missing, builds rekey (REKEY is
# its binary) and defines the helpers they share. The caller starts the
# throwaway PostgreSQL (pg_start from scripts/lib/pg.sh, sourced here).
REKEY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$REKEY_ROOT/scripts/lib/deps.sh"
source "$REKEY_ROOT/scripts/lib/pg.sh"
rekey_install_deps
rekey_build "$REKEY_ROOT/build" >/dev/null
REKEY="$REKEY_ROOT/build/rekey"
export OLD_ENCRYPTION_KEY="bench-old-passphrase-0123456789abcdefghij"
export NEW_ENCRYPTION_KEY="bench-new-passphrase-0123456789abcdefghij"
export PGAPPNAME=rekey-bench
command -v bc >/dev/null || { apt-get install -y -qq bc >/dev/null; }
now() { date +%s.%N; }
# psql on the throwaway database (after pg_start).
bench_psql() { psql -X -q -v ON_ERROR_STOP=1 "$REKEY_TEST_DB" "$@"; }
# A vacuumed, checkpointed copy $1 of table bench_src.
copy_of() {
  bench_psql -c "DROP TABLE IF EXISTS $1" -c "CREATE TABLE $1 (LIKE bench_src INCLUDING ALL)" \
    -c "INSERT INTO $1 SELECT * FROM bench_src" -c "VACUUM ANALYZE $1" -c "CHECKPOINT"
}
# The service's traffic for pgbench, into file $1 for a table `accounts` of $2
# rows: read a row, and one time in four rewrite its phone number (the same
# token: latency is what is measured).
bench_app_sql() {
  cat >"$1" <<SQL
\\set id random(1, $2)
SELECT phone_enc, account_enc FROM accounts WHERE id = :id;
\\set w random(1, 4)
UPDATE accounts SET phone_enc = phone_enc WHERE id = :id AND :w = 1;
SQL
}
# Beside an application: a work directory WORK (mktemp with prefix $1,
# writable by pgbench's logs), removed with the throwaway durable PostgreSQL
# on exit; a table $2 of $3 rows made by Python's cryptography, and the
# application's pgbench script in $WORK/app.sql.
bench_beside_app() {
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  chmod 777 "$WORK"
  trap 'pg_stop; rm -rf "$WORK"' EXIT
  PG_DURABLE=1 pg_start
  /usr/bin/python3 "$REKEY_ROOT/bench/make_table.py" "$REKEY_TEST_DB" "$2" "$3" >&2
  bench_app_sql "$WORK/app.sql" "$3"
}
