#!/usr/bin/env bash
# `make dev`: a local Postgres (unless DATABASE_URL is set), migrations, and every function
# served by `cargo lambda watch` at its real path on http://localhost:$DEV_PORT.
set -euo pipefail
cd "$(dirname "$0")/.."

# Settings from .env (if any) never override what the caller already exported.
env_file=${DEV_ENV_FILE:-.env}
if [ -f "$env_file" ]; then
  while IFS='=' read -r key value; do
    case "$key" in ''|\#*) continue ;; esac
    [ -n "${!key:-}" ] || export "$key=$value"
  done < "$env_file"
fi
export BETTER_AUTH_SECRET=${BETTER_AUTH_SECRET:-dev-secret-change-me-dev-secret-change-me}
port=${DEV_PORT:-9000}
web_port=${WEB_PORT:-8080}
demo_port=${DEMO_LLM_PORT:-9100}
# Lambda scales out: each function may run this many instances, so two tabs or two users are
# never served one after another.
instances=${DEV_INSTANCES:-3}

if [ -z "${DATABASE_URL:-}" ]; then
  server=$(scripts/pg.sh start dev 54329)
  psql -q "$server" -tAc "SELECT 1 FROM pg_database WHERE datname = 'todo_chat'" | grep -q 1 \
    || psql -q "$server" -c "CREATE DATABASE todo_chat"
  export DATABASE_URL="${server%/postgres}/todo_chat"
  echo "dev: local Postgres at $DATABASE_URL (scripts/pg.sh stop dev stops it)"
fi

PATH="$(scripts/ensure-tools.sh):$PATH"
# The load test's driver is built by `make load` alone.
cargo build --quiet --workspace --bins --exclude load
# Through a transaction-mode pooler (Neon's pooled URL) migrations go over the direct URL.
DATABASE_URL=${MIGRATE_DATABASE_URL:-$DATABASE_URL} cargo run --quiet -p todo-chat --bin migrate

token=$(cargo run --quiet -p todo-chat --bin dev-token -- demo-user)
# Without a provider, the built-in demo model answers (DEMO_LLM=off: 503 llm_not_configured,
# exactly as a deployed function without one). It dies with this process group.
llm_banner=""
if [ -z "${LLM_API_KEY:-}${LLM_BASE_URL:-}" ]; then
  if [ "${DEMO_LLM:-on}" = off ]; then
    llm_banner="dev: no LLM configured and DEMO_LLM=off: chat turns answer 503 llm_not_configured"
  else
    # Paced like a model that writes, so streamed answers visibly stream.
    # A reasoning model, so the page shows its thoughts as a reasoning part.
    DEMO_LLM_PACE_MS=${DEMO_LLM_PACE_MS:-30} DEMO_LLM_REASONING=${DEMO_LLM_REASONING:-1} \
      target/debug/demo-llm "$demo_port" >/dev/null &
    export LLM_BASE_URL="http://127.0.0.1:$demo_port/v1" LLM_MODEL=demo
    llm_banner="dev: *** DEMO MODEL *** on $LLM_BASE_URL: it understands simple todo requests only.
dev: *** set LLM_API_KEY (in .env) for a real one; DEMO_LLM=off turns the demo model off ***"
  fi
fi
# CORS is answered by the functions, as deployed (a REST API passes it through): the page's
# origins and a local frontend dev server's (Vite's :5173) may call the API.
export ALLOWED_ORIGINS=${ALLOWED_ORIGINS:-http://localhost:5173,http://localhost:$web_port,http://127.0.0.1:$web_port}
# The web page: static files, no build step. It dies with this process group.
python3 -m http.server "$web_port" --bind 127.0.0.1 --directory web >/dev/null 2>&1 &

cat <<EOT

${llm_banner:+$llm_banner
}dev: serving on http://localhost:$port
dev: web page on http://localhost:$web_port/?api=http://localhost:$port
dev: token for user demo-user (24 h):
$token

Try:
curl -s http://localhost:$port/api/demo-user/chat \\
  -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \\
  -d '{"message": "Add a task to buy milk"}'

Streamed as it is written (the AI SDK's UI message stream):
curl -N http://localhost:$port/api/demo-user/chat \\
  -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \\
  -H 'Accept: text/event-stream' -d '{"message": "What is on my list?"}'

EOT
# --disable-cors: the emulator's own permissive CORS would hide what the functions answer.
exec cargo lambda watch --disable-cors --invoke-address 127.0.0.1 --invoke-port "$port" \
  --concurrency "$instances"
