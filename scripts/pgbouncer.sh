#!/usr/bin/env bash
# A PgBouncer in front of a local Postgres, configured as Neon's pooled endpoint is:
# transaction mode, query_wait_timeout 120 s, SCRAM authentication, TLS required (a throwaway
# CA; clients trust it through SSL_CERT_FILE, never the system store). For tests.
#   scripts/pgbouncer.sh start NAME PORT UPSTREAM_PORT [notls]   prints the pooled URL (no database)
#   scripts/pgbouncer.sh ca NAME                                 prints the CA file clients must trust
#   scripts/pgbouncer.sh restart NAME                            stops it and starts it again, same config and CA
#   scripts/pgbouncer.sh stop NAME
#   scripts/pgbouncer.sh install                                 installs it (Debian's package) if missing
# PgBouncer refuses to run as root, so as root it runs as the `postgres` OS user.
set -euo pipefail
cmd=${1:?usage: pgbouncer.sh start|ca|stop|install NAME ...}
name=${2:-}
[ "$cmd" = install ] || [ -n "$name" ] || { echo "pgbouncer.sh: name required" >&2; exit 2; }
dir=/tmp/todo-chat-pgbouncer-$(id -u)-$name
user=app
password=app-password

as_db_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ensure_installed() {
  command -v pgbouncer >/dev/null 2>&1 && return
  PATH=$PATH:/usr/sbin
  command -v pgbouncer >/dev/null 2>&1 && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "pgbouncer.sh: installing PgBouncer from Debian's packages" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >&2
    systemctl disable --now pgbouncer >/dev/null 2>&1 || service pgbouncer stop >/dev/null 2>&1 || true
  else
    echo "pgbouncer.sh: install PgBouncer (Debian package 'pgbouncer') first" >&2; exit 1
  fi
}

throwaway_ca() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=todo-chat test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
    > "$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 2 -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null
}

stop() {
  [ -f "$dir/pgbouncer.pid" ] && kill "$(cat "$dir/pgbouncer.pid")" 2>/dev/null || true
  for _ in $(seq 50); do [ -f "$dir/pgbouncer.pid" ] || break; sleep 0.1; done
}

case "$cmd" in
  start)
    port=${3:?port required}
    upstream=${4:?upstream port required}
    tls=${5:-tls}
    ensure_installed
    stop
    rm -rf "$dir" && mkdir -p "$dir"
    sslmode=disable
    if [ "$tls" = tls ]; then throwaway_ca; sslmode=require; fi
    # SCRAM from a plain-text secret: PgBouncer derives the verifier itself.
    printf '"%s" "%s"\n' "$user" "$password" > "$dir/userlist.txt"
    cat > "$dir/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$upstream user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = transaction
query_wait_timeout = 120
server_login_retry = 1
max_client_conn = 500
default_pool_size = 20
client_tls_sslmode = $sslmode
client_tls_key_file = $dir/server.key
client_tls_cert_file = $dir/server.crt
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
admin_users = $user
INI
    [ "$tls" = tls ] || sed -i '/client_tls_\(key\|cert\)_file/d' "$dir/pgbouncer.ini"
    [ "$(id -u)" = 0 ] && chown -R postgres: "$dir"
    as_db_user pgbouncer -d -q "$dir/pgbouncer.ini"
    for _ in $(seq 50); do
      (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
      sleep 0.1
    done
    echo "postgres://$user:$password@localhost:$port/?sslmode=$sslmode"
    ;;
  ca) echo "$dir/ca.crt" ;;
  restart)
    stop
    as_db_user pgbouncer -d -q "$dir/pgbouncer.ini"
    port=$(sed -n 's/^listen_port = //p' "$dir/pgbouncer.ini")
    for _ in $(seq 50); do
      (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
      sleep 0.1
    done
    ;;
  install) ensure_installed ;;
  stop) stop; rm -rf "$dir" ;;
  *) echo "usage: pgbouncer.sh start|ca|restart|stop NAME ..." >&2; exit 2 ;;
esac
