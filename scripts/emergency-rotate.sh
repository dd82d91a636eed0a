#!/usr/bin/env bash
# Emergency key rotation, for a suspected compromise of ENCRYPTION_KEY:
#
#   export DATABASE_URL=<conninfo or postgresql:// URI>   # or PGHOST/PGDATABASE/PGSERVICE, ~/.pgpass
#   ENCRYPTION_KEY=<current key> scripts/emergency-rotate.sh --state-dir DIR
#       [--column [SCHEMA.]TABLE.COLUMN ...] [--exclude SCHEMA.TABLE[.COLUMN] ...] [--deploy-hook CMD]
#       [--store-new-key-command CMD [--read-new-key-command CMD]] [--rekey PATH] [--rotate-arg ARG ...]
#
#   1. DIR/NEW_ENCRYPTION_KEY: a new key from `rekey keygen`, saved (mode 600, fsynced, never
#      overwritten) BEFORE any data is touched; an existing one is reused, so rerunning the script
#      after an interruption continues the same rotation with the same key. With
#      --store-new-key-command, CMD then gets the key on its standard input (e.g. `aws ssm
#      put-parameter … --value file:///dev/stdin`) and must succeed before any data is touched; with
#      --read-new-key-command the store is read back (stored only if it lacks the key, checked after),
#      without it a rerun does not store the same key with the same command again.
#   2. `rekey check-key` on both keys, `rekey rotate` old -> new (resumable; exit 75: rerun this
#      script), then the gate: `rekey verify --discover --require-new`, over the whole database
#      (and the named columns), whatever was rotated.
#   3. Exit 0 only when the gate passed; then the optional --deploy-hook runs (with
#      REKEY_NEW_KEY_FILE=DIR/NEW_ENCRYPTION_KEY) and the next steps are printed.
#
# Without --column, every column holding a token is rotated. --exclude leaves objects out of both
# steps by name (the reports list them): only what is re-encrypted by other means belongs there.
# Keys and the database password travel only through the environment and the key file: never on a
# command line (where `ps` shows them to every local user), never printed.
# Exit codes: 0 rotated and verified; 1 failure; 2 usage or configuration; 3 values that are not under
# the new key (undecryptable, or written under the old key meanwhile); 75 stopped, rerun to continue.
set -euo pipefail

PROG=emergency-rotate
REKEY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
  cat <<'EOF'
usage: DATABASE_URL=<conninfo> ENCRYPTION_KEY=<current key> emergency-rotate.sh --state-dir DIR [options]

  --state-dir DIR      where the new key is kept (DIR/NEW_ENCRYPTION_KEY, mode 600) and the reports;
                       created (mode 700) if missing. Rerun with the same DIR to continue a rotation.
  --column SPEC        [SCHEMA.]TABLE.COLUMN to rotate (repeatable); default: every column holding
                       a token. The gate after it always checks the whole database.
  --exclude SPEC       SCHEMA.TABLE[.COLUMN] to leave out of discovery and the gate (repeatable),
                       for data you re-encrypt by other means
  --deploy-hook CMD    run CMD (bash -c) after verification passed, with REKEY_NEW_KEY_FILE set
  --store-new-key-command CMD
                       store the new key in your secret store before any data is touched: CMD runs
                       (bash -c, at most 2 minutes, its output discarded) with the key alone on its
                       standard input (no newline) and must exit 0, e.g. 'aws ssm put-parameter
                       --name /prod/app/ENCRYPTION_KEY --type SecureString --overwrite --value
                       file:///dev/stdin'
  --old-key-command CMD
                       read the current key from your secret store instead of ENCRYPTION_KEY (as rekey
                       --old-key-command: no shell), e.g. 'aws ssm get-parameter --name
                       /prod/app/ENCRYPTION_KEY --with-decryption --query Parameter.Value --output text'
  --read-new-key-command CMD
                       read the key back from the store (as rekey --new-key-command: no shell), e.g.
                       'aws ssm get-parameter --name /prod/app/ENCRYPTION_KEY --with-decryption
                       --query Parameter.Value --output text': stored only when the store does not
                       hold it, and checked after; without --store-new-key-command, the store must
                       already hold it. Without it, a rerun does not store the same key twice.
  --rekey PATH         the rekey binary (default: $REKEY_BUILD_DIR/rekey, build/rekey, the installed
                       one next to this script, then rekey on PATH)
  --rotate-arg ARG     pass ARG on to `rekey rotate` (repeatable), e.g. --rotate-arg=--max-rate=5000;
                       rotate yields to live traffic by default, --rotate-arg=--pace=max does not
  --db CONNINFO        the database, instead of DATABASE_URL; avoid: every local user sees it in ps
  -h, --help           this help

The current (compromised) key is read from the environment variable ENCRYPTION_KEY (or
--old-key-command), the database from
DATABASE_URL (a libpq connection string or postgresql:// URI), else from libpq's PGHOST, PGDATABASE or
PGSERVICE (the password then from PGPASSWORD or ~/.pgpass). Neither ever goes on a command line.
EOF
}

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
usage_error() {
  say "$*"
  echo "run '$0 --help' for usage" >&2
  exit 2
}

# ---------------------------------------------------------------- arguments

db="" state_dir="" deploy_hook="" store_command="" read_command="" old_command="" rekey_bin=""
columns=() rotate_args=() excludes=()
need_value() { [ "$2" -ge 2 ] || usage_error "$1 needs a value"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --db) need_value "$1" $#; db=$2; shift 2 ;;
    --db=*) db=${1#*=}; shift ;;
    --state-dir) need_value "$1" $#; state_dir=$2; shift 2 ;;
    --state-dir=*) state_dir=${1#*=}; shift ;;
    --column) need_value "$1" $#; columns+=("$2"); shift 2 ;;
    --column=*) columns+=("${1#*=}"); shift ;;
    --exclude) need_value "$1" $#; excludes+=(--exclude "$2"); shift 2 ;;
    --exclude=*) excludes+=(--exclude "${1#*=}"); shift ;;
    --deploy-hook) need_value "$1" $#; deploy_hook=$2; shift 2 ;;
    --deploy-hook=*) deploy_hook=${1#*=}; shift ;;
    --store-new-key-command) need_value "$1" $#; store_command=$2; shift 2 ;;
    --store-new-key-command=*) store_command=${1#*=}; shift ;;
    --read-new-key-command) need_value "$1" $#; read_command=$2; shift 2 ;;
    --read-new-key-command=*) read_command=${1#*=}; shift ;;
    --old-key-command) need_value "$1" $#; old_command=$2; shift 2 ;;
    --old-key-command=*) old_command=${1#*=}; shift ;;
    --rekey) need_value "$1" $#; rekey_bin=$2; shift 2 ;;
    --rekey=*) rekey_bin=${1#*=}; shift ;;
    --rotate-arg) need_value "$1" $#; rotate_args+=("$2"); shift 2 ;;
    --rotate-arg=*) rotate_args+=("${1#*=}"); shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
if [ -n "$db" ]; then
  say "warning: --db puts the connection string on this script's command line, where ps shows it;" \
    "export DATABASE_URL instead"
  DATABASE_URL=$db
fi
if [ -z "${DATABASE_URL:-}${PGHOST:-}${PGDATABASE:-}${PGSERVICE:-}" ]; then
  usage_error "no database: export DATABASE_URL (a connection string or postgresql:// URI; or PGHOST/PGDATABASE/PGSERVICE)"
fi
# rekey reads it from the environment, so it never appears on rekey's command line.
[ -z "${DATABASE_URL:-}" ] || export DATABASE_URL
if [ -z "$state_dir" ]; then
  usage_error "--state-dir DIR is required (where the new key is saved; reuse it to continue a rotation)"
fi
# The current (old) key: ENCRYPTION_KEY, or what --old-key-command prints (rekey runs it, no shell).
if [ -n "$old_command" ]; then
  [ -z "${ENCRYPTION_KEY:-}" ] || usage_error "ENCRYPTION_KEY and --old-key-command both give the current key: give one"
  old_label="the current key (--old-key-command)"
  old_key=(--old-key-command "$old_command") check_old=(--key-command "$old_command")
else
  [ -n "${ENCRYPTION_KEY:-}" ] ||
    usage_error "ENCRYPTION_KEY is not set or empty: export the current (old) key in it, or pass --old-key-command"
  export ENCRYPTION_KEY
  old_label="ENCRYPTION_KEY"
  old_key=(--old-key-env ENCRYPTION_KEY) check_old=(--key-env ENCRYPTION_KEY)
fi
for c in ${columns[@]+"${columns[@]}"}; do
  [ -n "$c" ] || usage_error "--column needs a non-empty [SCHEMA.]TABLE.COLUMN"
done

if [ -z "$rekey_bin" ]; then
  # A build tree's rekey, or the one installed with this script (PREFIX/share/rekey/scripts -> PREFIX/bin).
  for candidate in ${REKEY_BUILD_DIR:+"$REKEY_BUILD_DIR/rekey"} "$REKEY_ROOT/build/rekey" "$REKEY_ROOT/../../bin/rekey"; do
    if [ -x "$candidate" ]; then rekey_bin=$candidate; break; fi
  done
  [ -n "$rekey_bin" ] || rekey_bin=$(command -v rekey || true)
  [ -n "$rekey_bin" ] || usage_error "no rekey binary: build it (cmake) or pass --rekey PATH"
fi
if [ ! -f "$rekey_bin" ] || [ ! -x "$rekey_bin" ]; then usage_error "--rekey $rekey_bin is not an executable file"; fi

# What rotate rewrites: the named columns, or every column holding a token. The gate always
# checks the whole database as well: retiring the old key loses whatever it still opens anywhere.
targets=() gate=(--discover)
if [ ${#columns[@]} -eq 0 ]; then
  targets=(--discover)
else
  for c in "${columns[@]}"; do targets+=(--column "$c"); gate+=(--column "$c"); done
fi
[ ${#excludes[@]} -eq 0 ] || targets+=("${excludes[@]}") gate+=("${excludes[@]}")

# ---------------------------------------------------------------- running rekey

# Runs rekey with "$@" and sets `rc` to its exit code. SIGTERM/SIGHUP sent to this script are passed
# on to rekey, which then stops after the batch in flight (progress saved, exit 75). SIGINT from the
# terminal reaches rekey directly (same process group), so it is not sent twice.
child=""
interrupted=0
default_traps() {
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  trap 'exit 130' INT
}
run_rekey() {
  "$rekey_bin" "$@" &
  child=$!
  trap 'interrupted=1; kill -TERM "$child" 2>/dev/null || true' TERM HUP
  trap 'interrupted=1' INT
  while :; do
    interrupted=0
    rc=0
    wait "$child" || rc=$?
    if [ "$interrupted" -eq 1 ] && [ "$rc" -gt 128 ]; then
      # wait returned early because a signal arrived: wait again while rekey still runs, else
      # take its exit code if the shell still holds it.
      if kill -0 "$child" 2>/dev/null; then continue; fi
      local again=0
      wait "$child" 2>/dev/null || again=$?
      [ "$again" -eq 127 ] || rc=$again
    fi
    break
  done
  child=""
  default_traps
}
default_traps

# ---------------------------------------------------------------- 1. the new key, saved first

umask 077
key_file="$state_dir/NEW_ENCRYPTION_KEY"
tmp_key=""
store_pid=""
cleanup() {
  if [ -n "$tmp_key" ]; then rm -f -- "$tmp_key"; fi
  if [ -n "$store_pid" ]; then kill -KILL -- "-$store_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

say "checking $old_label"
old_check=$("$rekey_bin" check-key "${check_old[@]}") && rc=0 || rc=$?
old_fingerprint=""
[ "$rc" -ne 0 ] || { old_fingerprint=${old_check##*fingerprint }; say "$old_check"; }
if [ "$rc" -ne 0 ] && [ -n "$old_command" ]; then
  say "--old-key-command did not give the current key (see above); nothing was changed"
  exit 2
fi
if [ "$rc" -ne 0 ]; then
  # Not fatal: rotate accepts a short old key (with a warning), and a value no key decrypts is never
  # changed (it is counted as undecryptable and the script stops with exit 3).
  say "warning: rekey check-key did not accept $old_label (see above); rotating anyway, as the data is under it"
fi

if [ ! -d "$state_dir" ]; then
  mkdir -p -- "$(dirname -- "$state_dir")"
  mkdir -m 0700 -- "$state_dir"
  sync -- "$(dirname -- "$state_dir")"
  say "created $state_dir (mode 700)"
fi
dir_mode=$(stat -c %a -- "$state_dir")
if (((8#$dir_mode & 8#077) != 0)); then
  say "warning: $state_dir is accessible by group or others (mode $dir_mode); chmod 700 it"
fi

if [ -e "$key_file" ] || [ -L "$key_file" ]; then
  say "reusing the new key in $key_file: continuing the same rotation"
else
  # Written under a temporary name, fsynced, then linked into place: `ln` fails rather than replace
  # a key file (one another run may have created meanwhile), and the key is on disk before any row
  # is re-encrypted under it. SECRET_KEY from keygen's output is not kept.
  tmp_key=$(mktemp -- "$state_dir/.NEW_ENCRYPTION_KEY.tmp.XXXXXX")
  "$rekey_bin" keygen | sed -n 's/^ENCRYPTION_KEY=//p' >"$tmp_key"
  if [ "$(wc -l <"$tmp_key")" -ne 1 ] || ! "$rekey_bin" check-key --key-file "$tmp_key" >/dev/null; then
    say "rekey keygen did not give a usable ENCRYPTION_KEY line; nothing was changed"
    exit 1
  fi
  sync -- "$tmp_key"
  if ! ln -- "$tmp_key" "$key_file" 2>/dev/null; then
    if [ -e "$key_file" ] || [ -L "$key_file" ]; then
      say "$key_file appeared meanwhile (another run?): using that one"
    else
      mv -n -- "$tmp_key" "$key_file"  # a file system without hard links
      [ ! -e "$tmp_key" ] || { say "cannot create $key_file"; exit 1; }
    fi
  fi
  rm -f -- "$tmp_key"
  tmp_key=""
  sync -- "$state_dir"
  say "new key generated and saved to $key_file (mode 600) before any data is touched"
fi

if [ -L "$key_file" ] || [ ! -f "$key_file" ]; then
  say "$key_file is not a regular file: refusing (it is never replaced; move it away yourself if it is wrong)"
  exit 2
fi
key_mode=$(stat -c %a -- "$key_file")
if (((8#$key_mode & 8#077) != 0)); then
  say "$key_file is readable by group or others (mode $key_mode): refusing; chmod 600 it and rerun"
  exit 2
fi

say "checking the new key ($key_file)"
check_out=$("$rekey_bin" check-key --key-file "$key_file") && rc=0 || rc=$?
[ "$rc" -eq 0 ] || { say "the new key in $key_file is not usable (see above); nothing was changed"; exit 2; }
say "${check_out}"
new_fingerprint=${check_out##*fingerprint }

# ---------------------------------------------------------------- 1b. the new key, stored

# The fingerprint of the key `rekey check-key ARGS` reads (a key command runs there: no shell, output
# in wiped memory); fails, printing nothing, when it cannot read one.
key_fingerprint() {
  local out
  out=$("$rekey_bin" check-key "$@") || return 1
  printf '%s' "${out##*fingerprint }"
}
# The fingerprint of the key --read-new-key-command reads from the store, or "".
stored_fingerprint() { key_fingerprint --key-command "$read_command" || true; }

# Hands the key alone (no newline: a stored newline would be part of the key) to CMD on its standard
# input, never on a command line or in a file. CMD runs with bash -c in a session of its own (no
# terminal: a store CLI that would prompt fails at once), at most 2 minutes, inheriting neither a key
# nor the database's password; its output is discarded (a store may echo what it stored). A signal to
# this script kills it (cleanup).
store_key() {
  printf '%s' "$(<"$key_file")" |
    env -u ENCRYPTION_KEY -u NEW_ENCRYPTION_KEY -u OLD_ENCRYPTION_KEY -u SECRET_KEY -u DATABASE_URL -u PGPASSWORD \
      setsid timeout -k 5 120 bash -c "$store_command" >/dev/null &
  store_pid=$!
  local rc=0
  wait "$store_pid" || rc=$?
  store_pid=""
  return "$rc"
}

# With --read-new-key-command, the store is read back: stored only when it does not already hold the
# new key, and checked after. Without, DIR/NEW_ENCRYPTION_KEY.stored (the key's fingerprint and a hash
# of the command, never the command: it may hold a token) keeps a rerun from storing it again.
if [ -n "$store_command" ] || [ -n "$read_command" ]; then
  stored_mark="$state_dir/NEW_ENCRYPTION_KEY.stored"
  mark="fingerprint $new_fingerprint command-sha256 $(printf '%s' "$store_command" | sha256sum | cut -d' ' -f1)"
  if [ -n "$read_command" ] && [ "$(stored_fingerprint)" = "$new_fingerprint" ]; then
    say "the secret store holds the new key ($new_fingerprint, read back with --read-new-key-command)"
  elif [ -n "$store_command" ] && [ -z "$read_command" ] && [ -f "$stored_mark" ] &&
    grep -qxF -- "$mark" "$stored_mark"; then
    say "the new key ($new_fingerprint) was stored by an earlier run with this --store-new-key-command: not again"
    say "(not read back: pass --read-new-key-command to check what the store holds)"
  elif [ -z "$store_command" ]; then
    say "the secret store does not hold the new key ($new_fingerprint): --read-new-key-command read" \
      "'$(stored_fingerprint)'. No data was touched; store it, or pass --store-new-key-command."
    exit 1
  else
    say "storing the new key ($new_fingerprint) with --store-new-key-command"
    store_rc=0
    store_key || store_rc=$?
    if [ "$store_rc" -ne 0 ]; then
      [ "$store_rc" -ne 124 ] && [ "$store_rc" -ne 137 ] || store_rc="$store_rc: it did not finish within 2 minutes"
      say "--store-new-key-command failed (exit $store_rc): no data was touched. The new key is in $key_file;"
      say "fix the command (or the store) and rerun with the same --state-dir: the same key is stored then."
      exit 1
    fi
    if [ -n "$read_command" ]; then
      read_back=$(stored_fingerprint)
      if [ "$read_back" != "$new_fingerprint" ]; then
        say "the store does not hold the new key after --store-new-key-command: read back '$read_back', not" \
          "$new_fingerprint. No data was touched; fix the commands and rerun with the same --state-dir."
        exit 1
      fi
    fi
    printf '%s\n' "$mark" >>"$stored_mark"
    sync -- "$stored_mark" "$state_dir"
    say "the new key ($new_fingerprint) is stored${read_command:+ and read back}; $key_file keeps a copy"
  fi
fi

# A store read by --old-key-command that was just overwritten with the new key (the same secret, its
# latest version) would give the new key as the old one: refused before any data is touched.
if [ -n "$old_command" ]; then
  old_now=$(key_fingerprint --key-command "$old_command") ||
    { say "--old-key-command cannot be read again (see above); no data was touched"; exit 2; }
  if [ "$old_now" != "$old_fingerprint" ] || [ "$old_now" = "$new_fingerprint" ]; then
    say "--old-key-command reads the new key or another one now ($old_now; the current key was $old_fingerprint,"
    say "the new one is $new_fingerprint): storing the new key changed what it reads. Pin the current key's"
    say "version in it (e.g. NAME:VERSION) and rerun with the same --state-dir; no data was touched."
    exit 2
  fi
fi

# ---------------------------------------------------------------- 2. rotate, then verify

say "rotating ${targets[*]} from $old_label to the new key"
run_rekey rotate "${targets[@]}" --new-key-file "$key_file" "${old_key[@]}" \
  --report "$state_dir/rotate-report.json" ${rotate_args[@]+"${rotate_args[@]}"}
case "$rc" in
  0) say "rotation finished" ;;
  75)
    say "rotation stopped before the end; its progress is saved."
    say "rerun this script to continue (same --state-dir: it reuses the same new key)"
    exit 75
    ;;
  3)
    say "rotation finished, but some data is NOT under the new key, and was left exactly as it was:"
    say "values no key decrypts (primary keys in 'rekey status', below), columns rekey cannot rewrite"
    say "('NOT ROTATED' above), or objects it could not read ('NOT CHECKED' above); all of it is in"
    say "$state_dir/rotate-report.json. Do NOT retire the old key: it still opens that data."
    "$rekey_bin" status --limit 1 >&2 || true
    exit 3
    ;;
  2)
    say "rekey rotate refused to run (see its message above); nothing more was changed."
    say "if an earlier emergency rotation used another --state-dir, rerun with that one to use its key;"
    say "if $old_label already is the key in $key_file (that rotation is done), a new rotation needs a"
    say "new --state-dir."
    exit 2
    ;;
  *)
    say "rekey rotate failed (exit $rc). Batches already written are saved with their checkpoint:"
    say "fix the cause and rerun this script to continue (same --state-dir)."
    exit 1
    ;;
esac

say "the gate: checking every value of the database for tokens not under the new key"
run_rekey verify "${gate[@]}" --new-key-file "$key_file" "${old_key[@]}" \
  --require-new --report "$state_dir/verify-report.json"
case "$rc" in
  0) say "the gate passed: no value anywhere holds a token that is not under the new key" ;;
  3)
    say "the gate FAILED: the old key still opens data, or something could not be checked (see the"
    say "columns and 'NOT CHECKED' lines above, and $state_dir/verify-report.json)."
    say "Do NOT retire the old key. Values the service wrote with the old key meanwhile: rerun this script."
    exit 3
    ;;
  2) say "rekey verify refused to run (see its message above)"; exit 2 ;;
  *) say "rekey verify failed (exit $rc); rerun this script"; exit 1 ;;
esac

# ---------------------------------------------------------------- 3. deploy hook, next steps

# The store read back once more before the hook (which may deploy from it).
if [ -n "$read_command" ]; then
  read_back=$(stored_fingerprint)
  if [ "$read_back" != "$new_fingerprint" ]; then
    if [ -z "$read_back" ]; then
      say "WARNING: --read-new-key-command cannot read the store now: check that it holds the new key"
    else
      say "WARNING: the secret store holds another key now ($read_back, not $new_fingerprint): do NOT deploy from it"
    fi
    say "The data IS rotated and verified; the new key is in $key_file. The deploy hook was not run."
    exit 1
  fi
fi

hook_rc=0
if [ -n "$deploy_hook" ]; then
  say "running the deploy hook"
  REKEY_NEW_KEY_FILE=$key_file bash -c "$deploy_hook" || hook_rc=$?
  if [ "$hook_rc" -ne 0 ]; then
    say "the deploy hook failed (exit $hook_rc). The data IS rotated and verified: deploy by hand (below)."
  fi
fi

where_kept="Copy it into your secret store now; this script never prints it."
[ -z "$store_command" ] || where_kept="It was stored with --store-new-key-command (not read back: check the store)."
[ -z "$read_command" ] || where_kept="It is also in your secret store (read back with --read-new-key-command)."
cat <<EOF

Emergency rotation done: every encrypted value is under the new key (verified).
The new key is in $key_file (mode 600). $where_kept

Next steps:
  1. Deploy the service with the new key first and the old key second (new key for encryption,
     old key still accepted for reading), so instances not yet restarted keep working.
  2. Rerun this script with the same --state-dir: it reuses the key and re-encrypts anything the
     service wrote with the old key in the meantime. It must exit 0 again.
  3. Deploy the service with the new key alone.
  4. Retire the old key: remove it from every secret store, .env file, CI variable and backup of
     them. Treat data encrypted under it (old backups, exports) as exposed.
EOF
[ "$hook_rc" -eq 0 ] || exit 1
