#!/usr/bin/env bash
# Invokes one function under a running `make dev` with its sample event, after putting a
# fresh token for demo-user into it:  scripts/invoke.sh chat
set -euo pipefail
cd "$(dirname "$0")/.."
fn=${1:?usage: scripts/invoke.sh FUNCTION (one of: $(ls functions | tr '\n' ' '))}
[ -f .env ] && set -a && . ./.env && set +a
export BETTER_AUTH_SECRET=${BETTER_AUTH_SECRET:-dev-secret-change-me-dev-secret-change-me}
token=$(cargo run --quiet -p todo-chat --bin dev-token -- demo-user)
event=$(mktemp)
trap 'rm -f "$event"' EXIT
sed "s/REPLACE_WITH_A_TOKEN_FOR_demo-user/$token/" "events/$fn.json" > "$event"
cargo lambda invoke "$fn" --data-file "$event" --invoke-address 127.0.0.1 --invoke-port "${DEV_PORT:-9000}"
