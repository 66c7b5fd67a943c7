# Source me. pg_start: a throwaway PostgreSQL cluster owned by the `postgres` OS user
# (initdb and pg_ctl refuse root) on a free loopback port; exports CLAPBOARD_TEST_PG_URL.
# pg_stop: stop it and remove its folder.

pg_start() {
  local bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  PG_DIR=$(mktemp -d /tmp/clapboard-pg.XXXXXX)
  chown postgres:postgres "$PG_DIR"
  PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  local as_pg=(runuser -u postgres --)
  if [ "$(id -u)" != 0 ]; then as_pg=(); fi
  "${as_pg[@]}" "$bindir/initdb" -D "$PG_DIR/data" -U postgres -A trust --no-sync >/dev/null
  "${as_pg[@]}" "$bindir/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
     -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$PG_DIR -c max_connections=200 -c fsync=on" start >/dev/null
  export CLAPBOARD_TEST_PG_URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
  export PG_DIR PG_BINDIR="$bindir"
  echo "== PostgreSQL on 127.0.0.1:$PG_PORT"
}

pg_stop() {
  if [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR/data" ]; then
    local as_pg=(runuser -u postgres --)
    if [ "$(id -u)" != 0 ]; then as_pg=(); fi
    "${as_pg[@]}" "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
}
