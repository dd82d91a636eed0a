# A throwaway PostgreSQL cluster: temp dir, Unix socket, free port, run as the
# unprivileged `postgres` user (PostgreSQL refuses root). Sourced.
# PG_DURABLE=1 keeps PostgreSQL's durable defaults (fsync, full page writes).
# pg_start sets PG_TMP, PG_PORT, PG_BIN and REKEY_TEST_DB (a libpq conninfo);
# pg_stop stops the cluster and removes its directory.

pg_bin_dir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] || { echo "rekey: no PostgreSQL server installed" >&2; return 1; }
  echo "$d"
}

pg_free_port() {
  local port
  for port in $(shuf -i 20000-45000 -n 50); do
    if ! (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && [ ! -e "/tmp/.s.PGSQL.$port" ]; then
      echo "$port"; return 0
    fi
  done
  return 1
}

pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_start() {
  PG_BIN=$(pg_bin_dir) || return 1
  PG_TMP=$(mktemp -d /tmp/rekey-pg.XXXXXX)
  chmod 755 "$PG_TMP"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$PG_TMP"
  PG_PORT=$(pg_free_port) || { echo "rekey: no free port" >&2; return 1; }
  # Tests trade durability for speed; PG_DURABLE=1 (the benchmarks) keeps the server's defaults.
  local durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  [ "${PG_DURABLE:-0}" = 1 ] && durability=""
  pg_as_owner "$PG_BIN/initdb" -D "$PG_TMP/data" -U postgres -A trust --no-sync -E UTF8 >"$PG_TMP/initdb.log" 2>&1 \
    || { cat "$PG_TMP/initdb.log" >&2; return 1; }
  pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 start \
    -o "-k $PG_TMP -p $PG_PORT -c listen_addresses='' $durability -c max_connections=100" \
    >/dev/null || { cat "$PG_TMP/server.log" >&2; return 1; }
  REKEY_TEST_DB="host=$PG_TMP port=$PG_PORT user=postgres dbname=postgres"
  export PG_TMP PG_PORT PG_BIN REKEY_TEST_DB
}

pg_stop() {
  [ -n "${PG_TMP:-}" ] && [ -d "$PG_TMP" ] || return 0
  pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_TMP"
  PG_TMP=""
}

# pg_start_standby [PRIMARY_CONNINFO]: a streaming hot standby of the running
# throwaway cluster (or of the server PRIMARY_CONNINFO names, default
# $REKEY_TEST_DB; its role needs the REPLICATION attribute), made with
# pg_basebackup -R into a temp dir and started on its own socket directory and
# port. Sets PG_STANDBY_TMP, PG_STANDBY_PORT and REKEY_TEST_STANDBY_DB (a
# libpq conninfo); returns once the standby accepts connections.
# pg_standby_ctl stop|start stops (fast) or starts it again, the same one;
# pg_stop_standby stops it and removes its directory.
pg_start_standby() {
  local primary=${1:-${REKEY_TEST_DB:-}}
  [ -n "$primary" ] || { echo "rekey: pg_start_standby: no primary (REKEY_TEST_DB is unset)" >&2; return 1; }
  PG_BIN=${PG_BIN:-$(pg_bin_dir)} || return 1
  PG_STANDBY_TMP=$(mktemp -d /tmp/rekey-pg-standby.XXXXXX)
  chmod 755 "$PG_STANDBY_TMP"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$PG_STANDBY_TMP"
  PG_STANDBY_PORT=$(pg_free_port) || { echo "rekey: no free port" >&2; return 1; }
  pg_as_owner "$PG_BIN/pg_basebackup" -d "$primary" -D "$PG_STANDBY_TMP/data" -R -X stream --no-sync \
    --checkpoint=fast >"$PG_STANDBY_TMP/basebackup.log" 2>&1 \
    || { cat "$PG_STANDBY_TMP/basebackup.log" >&2; return 1; }
  export PG_BIN PG_STANDBY_TMP PG_STANDBY_PORT
  pg_standby_ctl start || return 1
  REKEY_TEST_STANDBY_DB="host=$PG_STANDBY_TMP port=$PG_STANDBY_PORT user=postgres dbname=postgres"
  export REKEY_TEST_STANDBY_DB
}

pg_standby_ctl() {
  [ -n "${PG_STANDBY_TMP:-}" ] && [ -d "$PG_STANDBY_TMP/data" ] || { echo "rekey: no standby" >&2; return 1; }
  PG_BIN=${PG_BIN:-$(pg_bin_dir)} || return 1
  case "$1" in
    start)
      # -w waits until it accepts connections, which a hot standby does once consistent.
      pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_STANDBY_TMP/data" -l "$PG_STANDBY_TMP/server.log" -w -t 60 start \
        -o "-k $PG_STANDBY_TMP -p $PG_STANDBY_PORT -c listen_addresses='' -c hot_standby=on" \
        >/dev/null || { cat "$PG_STANDBY_TMP/server.log" >&2; return 1; } ;;
    stop) pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_STANDBY_TMP/data" -m fast -w stop >/dev/null ;;
    *) echo "rekey: pg_standby_ctl stop|start" >&2; return 2 ;;
  esac
}

pg_stop_standby() {
  [ -n "${PG_STANDBY_TMP:-}" ] && [ -d "$PG_STANDBY_TMP" ] || return 0
  pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_STANDBY_TMP/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_STANDBY_TMP"
  PG_STANDBY_TMP=""
}
