#!/usr/bin/env bash
# A local PostgreSQL cluster for development and tests (a stand-in for Neon).
#   scripts/pg.sh start NAME PORT   init (if needed) and start cluster NAME on 127.0.0.1:PORT; prints its URL
#   scripts/pg.sh stop NAME         stop it
#   scripts/pg.sh wipe NAME         stop it and delete its data
# initdb and postgres refuse to run as root, so as root they run as the `postgres` OS user.
set -euo pipefail
cmd=${1:?usage: pg.sh start|stop|wipe NAME [PORT]}
name=${2:?cluster name required}
root=$(cd "$(dirname "$0")/.." && pwd)

find_bin() {
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"; return
  fi
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$dir" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "pg.sh: installing PostgreSQL from Debian's packages" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  fi
  [ -n "$dir" ] || { echo "pg.sh: PostgreSQL server binaries not found; install PostgreSQL 15+" >&2; exit 1; }
  echo "$dir"
}

as_db_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

data_dir() {
  # Outside the checkout: tools that walk the source tree (`sam build` hashes it) cannot read
  # a server's socket, and the postgres OS user may not reach the project folder. One folder
  # per checkout, so two checkouts never share a cluster.
  echo "/var/tmp/todo-chat-pg-$(echo "$root" | cksum | cut -d' ' -f1)/$name"
}

bin=$(find_bin)
dir=$(data_dir)
case "$cmd" in
  start)
    port=${3:?port required}
    # Throwaway test clusters trade durability for speed.
    extra=""; [ "$name" = test ] && extra=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    extra="$extra ${PG_EXTRA:-}"
    if [ ! -f "$dir/PG_VERSION" ]; then
      mkdir -p "$dir"
      [ "$(id -u)" = 0 ] && chown -R postgres: "$(dirname "$dir")"
      as_db_user "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
    fi
    if ! as_db_user "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
      as_db_user "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 30 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200${extra}" \
        start >/dev/null
    fi
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    [ -d "$dir" ] && as_db_user "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
    ;;
  wipe)
    [ -d "$dir" ] && as_db_user "$bin/pg_ctl" -D "$dir" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *) echo "usage: pg.sh start|stop|wipe NAME [PORT]" >&2; exit 2 ;;
esac
