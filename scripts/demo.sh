#!/usr/bin/env bash
# The main job end to end on a throwaway PostgreSQL: a realistic database made
# by Python's cryptography under the current key, then
#   rekey keygen -> discover -> rotate -> verify --discover --require-new
# and the service reading everything back with the new key alone.
# Exits non-zero if any step fails.
set -euo pipefail
REKEY_ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$REKEY_ROOT/scripts/lib/deps.sh"
source "$REKEY_ROOT/scripts/lib/pg.sh"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ -f "$REKEY_ROOT/CMakeLists.txt" ]; then
  step "install what is missing and build"
  rekey_install_deps
  rekey_build "${REKEY_BUILD_DIR:-$REKEY_ROOT/build}" >/dev/null
  REKEY="${REKEY_BUILD_DIR:-$REKEY_ROOT/build}/rekey"
else  # the installed copy (share/rekey/scripts): the installed rekey, and what the demo itself needs
  step "install what is missing"
  rekey_install_packages postgresql python3-cryptography python3-psycopg2
  REKEY="$REKEY_ROOT/../../bin/rekey"
  [ -x "$REKEY" ] || REKEY=$(command -v rekey)
fi

step "start a throwaway PostgreSQL"
WORK=$(mktemp -d /tmp/rekey-demo.XXXXXX)
trap 'pg_stop; rm -rf "$WORK"' EXIT
pg_start
DB="$REKEY_TEST_DB"
# rekey reads the database from DATABASE_URL: a password in it never shows in ps, as --db would.
export DATABASE_URL="$DB"
echo "PostgreSQL on port $PG_PORT, socket in $PG_TMP"

step "the service's database, encrypted under its current ENCRYPTION_KEY"
export ENCRYPTION_KEY="demo-current-key-from-the-services-dotenv-0001"
/usr/bin/python3 "$REKEY_ROOT/scripts/lib/demo_data.py" create "$DB" "${DEMO_USERS:-2000}"
psql -X -q "$DB" -c "SELECT count(*) AS users, count(phone_enc) AS phones FROM users" \
  -c "SELECT count(*) AS bank_accounts FROM bank_accounts" \
  -c "SELECT left(phone_enc, 24) || '...' AS phone_enc, left(account_number_enc, 24) || '...' AS account_number_enc FROM users JOIN bank_accounts ON user_id = users.id LIMIT 2"
"$REKEY" check-key --key-env ENCRYPTION_KEY

step "rekey keygen: a new key, saved (mode 600) before any data is touched"
umask 077
"$REKEY" keygen > "$WORK/new.env"
NEW_ENCRYPTION_KEY=$(sed -n 's/^ENCRYPTION_KEY=//p' "$WORK/new.env")
export NEW_ENCRYPTION_KEY OLD_ENCRYPTION_KEY="$ENCRYPTION_KEY"
echo "new keys written to $WORK/new.env ($(stat -c %a "$WORK/new.env"))"
"$REKEY" check-key --key-env NEW_ENCRYPTION_KEY

step "rekey discover: which columns hold Fernet tokens (found from the data)"
"$REKEY" discover

step "rekey rotate --discover"
"$REKEY" rotate --discover --report "$WORK/report.json"

step "rekey verify --discover --require-new: the gate before the old key is retired"
"$REKEY" verify --discover --require-new

step "the report (no keys, no values)"
/usr/bin/python3 - "$WORK/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"run {r['run_id']}: {r['status']}, exit {r['exit_code']}, {r['rows_seen']} rows in {r['duration_seconds']:.2f}s, "
      f"new key {r['new_key_fingerprint']}, old keys {', '.join(r['old_key_fingerprints'])}")
for t in r["tables"]:
    for c in t["columns"]:
        print(f"  {t['table']}.{c['column']}: rotated {c['rotated']}, already new {c['already_new']}, null {c['null']}, "
              f"undecryptable {c['undecryptable']}")
PY

step "the service, deployed with the new key only, reads every value"
/usr/bin/python3 "$REKEY_ROOT/scripts/lib/demo_data.py" check "$DB"

step "demo finished: every encrypted value is under the new key"
