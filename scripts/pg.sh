# Source me. pg_start: a throwaway PostgreSQL cluster on a free loopback port; exports
# CLAPBOARD_TEST_PG_URL (tests/pg_support.py gives each test its own schema in it).
# pg_stop: stop it and remove its folder.
#
# As root (CI: a fresh Debian machine) the cluster belongs to the `postgres` OS user,
# because initdb and pg_ctl refuse to run as root; as any other user it is yours.
# A failed start prints the server log and returns non-zero, so under `set -e` the
# test run stops there instead of reporting PostgreSQL tests as skipped.

pg_start() {
  local bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$bindir" ] || [ ! -x "$bindir/pg_ctl" ]; then
    echo "pg_start: no PostgreSQL server installed (apt-get install postgresql)" >&2
    return 1
  fi
  PG_DIR=$(mktemp -d /tmp/clapboard-pg.XXXXXX)
  local as_pg=()
  if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$PG_DIR"
    as_pg=(runuser -u postgres --)
  fi
  PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  if ! "${as_pg[@]}" "$bindir/initdb" -D "$PG_DIR/data" -U postgres -A trust --no-sync \
       >"$PG_DIR/initdb.log" 2>&1; then
    echo "pg_start: initdb failed:" >&2; cat "$PG_DIR/initdb.log" >&2
    return 1
  fi
  if ! "${as_pg[@]}" "$bindir/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 60 \
     -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$PG_DIR -c max_connections=200 -c fsync=on" \
     start >/dev/null; then
    echo "pg_start: the server did not start:" >&2; tail -n 30 "$PG_DIR/log" >&2
    return 1
  fi
  export CLAPBOARD_TEST_PG_URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
  export PG_DIR PG_BINDIR="$bindir"
  echo "== PostgreSQL on 127.0.0.1:$PG_PORT"
}

pg_stop() {
  if [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR/data" ]; then
    local as_pg=()
    if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); fi
    "${as_pg[@]}" "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
}
