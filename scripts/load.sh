#!/usr/bin/env bash
# `make load`: a few minutes of hundreds of simulated users against the product served as
# `make dev` serves it (its debug builds, up to 24 instances per function), its database behind
# a TLS PgBouncer in transaction mode as Neon's pooled endpoint is, its model the demo model
# told to take 1 to 3 s per answer and to fail or stall now and then. The driver (load/, on
# goose) kills Postgres' backends once and restarts the pooler once during the run, then
# checks the database's invariants, prints its figures and writes them to BENCHMARKS.md.
# Not part of `make test`. LOAD_USERS (200), LOAD_SECONDS (150), LOAD_INSTANCES (24).
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(scripts/ensure-tools.sh):$PATH"

pg_port=54361 pool_port=54362 model_port=54363 api_port=9410 web_port=9411
instances=${LOAD_INSTANCES:-24}
secret=load-secret-load-secret-load-secret-00

server=$(scripts/pg.sh start load "$pg_port")
psql -q "$server" -c "DROP DATABASE IF EXISTS todo_chat_load" -c "CREATE DATABASE todo_chat_load"
direct="${server%/postgres}/todo_chat_load"
pooled=$(scripts/pgbouncer.sh start load "$pool_port" "$pg_port")
ca=$(scripts/pgbouncer.sh ca load)

cleanup() {
  [ -n "${dev_pid:-}" ] && kill -- "-$dev_pid" 2>/dev/null || true
  [ -n "${model_pid:-}" ] && kill "$model_pid" 2>/dev/null || true
  scripts/pgbouncer.sh stop load || true
  scripts/pg.sh stop load >/dev/null || true
}
trap cleanup EXIT

cargo build --quiet --release -p load
cargo build --quiet -p demo-llm
DEMO_LLM_FAIL_EVERY=40 DEMO_LLM_STALL_EVERY=150 target/debug/demo-llm "$model_port" >/dev/null &
model_pid=$!

echo "load: serving the functions (up to $instances instances each); log in target/load-dev.log"
SSL_CERT_FILE=$ca DATABASE_URL="${pooled/\/\?//todo_chat_load?}" MIGRATE_DATABASE_URL=$direct \
  LLM_BASE_URL="http://127.0.0.1:$model_port/v1" LLM_MODEL=demo BETTER_AUTH_SECRET=$secret \
  DEV_PORT=$api_port WEB_PORT=$web_port DEV_INSTANCES=$instances \
  DEV_ENV_FILE=/dev/null setsid scripts/dev.sh > target/load-dev.log 2>&1 &
dev_pid=$!
for _ in $(seq 600); do
  curl -fs "http://127.0.0.1:$api_port/health" >/dev/null 2>&1 && break
  kill -0 "$dev_pid" 2>/dev/null || { echo "load: make dev stopped; see target/load-dev.log" >&2; exit 1; }
  sleep 1
done
# Every instance of the chat function started (each is a `cargo run`), and each other function
# the users call once, so that no instance starts during the run.
api="http://127.0.0.1:$api_port/api/load-warmup"
token=$(BETTER_AUTH_SECRET=$secret cargo run --quiet -p todo-chat --bin dev-token -- load-warmup)
warm() { curl -fs -o /dev/null --max-time 300 -H "Authorization: Bearer $token" "$@"; }
export -f warm; export token api
# (An instance that `cargo lambda watch` loses on the way is started again by the run.)
seq "$instances" | xargs -P "$instances" -I{} bash -c \
  'warm -H "Content-Type: application/json" -d "{\"message\": \"[think 3000] hello\"}" "$api/chat"' \
  || true
warm "$api/conversations" && warm "$api/tasks"
conversation=$(curl -fs -H "Authorization: Bearer $token" "$api/conversations" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["conversations"][0]["id"])')
warm "$api/conversations/$conversation"

API_URL="http://127.0.0.1:$api_port" BETTER_AUTH_SECRET=$secret DATABASE_URL=$direct \
  POOLER_ADMIN_URL="${pooled/\/\?//pgbouncer?}" POOLER_RESTART="scripts/pgbouncer.sh restart load" \
  SSL_CERT_FILE=$ca LOAD_INSTANCES=$instances target/release/load
