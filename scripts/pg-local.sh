#!/usr/bin/env bash
# A throw-away PostgreSQL for trying Marain on PostgreSQL, started from the
# installed server binaries (`initdb`, `pg_ctl`; Debian: postgresql). It listens
# on a Unix socket in its own directory only (no TCP port), trusts local users,
# and keeps its data in that directory until `stop`.
#
#   scripts/pg-local.sh start [DIR]   # prints the DATABASE_URL to use
#   scripts/pg-local.sh stop  [DIR]
#
# DIR defaults to data/pg. As root the cluster is owned by, and runs as, the
# `postgres` system user (PostgreSQL refuses to run as root).
set -euo pipefail

action="${1:-}"
dir="$(realpath -m "${2:-data/pg}")"
bin="${MARAIN_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}"
if [[ -z "$bin" || ! -x "$bin/initdb" ]]; then
  echo "error: no PostgreSQL server binaries under /usr/lib/postgresql/*/bin; install postgresql or set MARAIN_PG_BIN" >&2
  exit 2
fi

as_owner() {
  if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$action" in
  start)
    mkdir -p "$dir"
    if [[ "$(id -u)" == 0 ]]; then
      chown postgres "$dir"
      if ! runuser -u postgres -- test -w "$dir"; then
        echo "error: the postgres user cannot reach $dir (a parent directory is private); choose a DIR under /tmp or /var/lib" >&2
        exit 2
      fi
    fi
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
      as_owner "$bin/initdb" -D "$dir/data" -U marain -A trust -E UTF8 --locale=C >/dev/null
    fi
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-p 5432 -k $dir -c listen_addresses=''" start >/dev/null
    fi
    # The `marain` database, once.
    if ! as_owner "$bin/psql" -h "$dir" -U marain -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'marain'" | grep -q 1; then
      as_owner "$bin/createdb" -h "$dir" -U marain marain
    fi
    echo "postgres://marain@localhost:5432/marain?host=$dir"
    ;;
  stop)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    echo "stopped; the data stays in $dir (delete it to start afresh)"
    ;;
  *)
    echo "usage: $0 start|stop [DIR]" >&2
    exit 2
    ;;
esac
