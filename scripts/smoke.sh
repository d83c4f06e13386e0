#!/usr/bin/env bash
# Post-deploy smoke test: [SMOKE_ORIGIN=<an allowed origin>] scripts/smoke.sh <ApiUrl> <token>
# Checks health, a chat turn that calls a tool (add_task), the conversation listed, read and
# deleted, a streamed turn in it (the REST API's response streaming), the chat's stream and
# stop routes (nothing running: 204), a CORS preflight (and,
# with SMOKE_ORIGIN, its grant), and the task it made in the tasks API; removes what it
# created, pass or fail.
# Ends with "smoke: N passed, M failed" and exits non-zero on any failure. `make test` runs
# it against `make dev` (on the demo model), so the script an operator runs after
# `sam deploy` is itself tested.
set -uo pipefail
api=${1:?usage: scripts/smoke.sh <ApiUrl> <token>}
api=${api%/}
token=${2:?usage: scripts/smoke.sh <ApiUrl> <token>}
passed=0 failed=0 conversation="" task=""
body=$(mktemp)
trap 'cleanup; rm -f "$body" "$body.headers"' EXIT

json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {'d': d}))" "$body" "$1" 2>/dev/null; }
# call METHOD PATH [JSON]: the status code; the body is left in $body.
call() {
  local args=(-s -o "$body" -w '%{http_code}' -X "$1" "$api$2" -H "Authorization: Bearer $token")
  [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' -H "Idempotency-Key: smoke-$$-$RANDOM" -d "$3")
  curl "${args[@]}" --max-time 60 || echo 000
}
check() { # check NAME CONDITION-EXIT-STATUS
  if [ "$2" = 0 ]; then passed=$((passed + 1)); echo "smoke: ok   $1"
  else failed=$((failed + 1)); echo "smoke: FAIL $1: $(head -c 300 "$body")"; fi
  return "$2"
}
expect() { # expect NAME WANTED-STATUS GOT-STATUS
  [ "$3" = "$2" ]; check "$1 ($3)" $?
}
cleanup() {
  [ -n "$task" ] && call DELETE "/api/$user/tasks/$task" >/dev/null
  [ -n "$conversation" ] && call DELETE "/api/$user/conversations/$conversation" >/dev/null
}

# The user the token is for: its `sub` (the API checks the signature; this only builds paths).
user=$(python3 -c "import base64,json,sys; p=sys.argv[1].split('.')[1]; print(json.loads(base64.urlsafe_b64decode(p+'='*(-len(p)%4)))['sub'])" "$token") \
  || { echo "smoke: the token is not a JWT with a sub"; exit 2; }
title="smoke test $(date +%s)-$$"

expect "GET /health" 200 "$(curl -s -o "$body" -w '%{http_code}' --max-time 30 "$api/health" || echo 000)"

status=$(call POST "/api/$user/chat" "{\"message\": \"Add a task to $title\"}")
expect "POST chat" 200 "$status"
conversation=$(json "d['conversation_id']")
task=$(json "[c['result']['task']['id'] for c in d['tool_calls'] if c['name'] == 'add_task' and c['result']['success']][0]")
[ -n "$task" ]; check "the turn called add_task" $?

expect "GET conversations" 200 "$(call GET "/api/$user/conversations?limit=100")"
[ "$(json "any(c['id'] == '$conversation' for c in d['conversations'])")" = True ]
check "the conversation is listed" $?

expect "GET the conversation" 200 "$(call GET "/api/$user/conversations/$conversation")"
[ "$(json "[m['role'] for m in d['messages']]")" = "['user', 'assistant']" ]
check "it holds the user message and the reply" $?

# The same conversation, streamed: the chat route's response streaming works end to end.
status=$(curl -s -N -D "$body.headers" -o "$body" -w '%{http_code}' --max-time 60 -X POST \
  "$api/api/$user/chat" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -H 'Accept: text/event-stream' -H "Idempotency-Key: smoke-$$-$RANDOM" \
  -d "{\"message\": \"What is on my list?\", \"conversation_id\": \"$conversation\"}" || echo 000)
expect "POST chat, streamed" 200 "$status"
grep -qi '^x-vercel-ai-ui-message-stream: v1' "$body.headers" && grep -q '"type":"finish"' "$body" \
  && [ "$(tail -c 14 "$body")" = "data: [DONE]" ]
check "it is a UI message stream that ends with finish and [DONE]" $?

# The chat's controls are deployed and routed: with the turn over, nothing runs to follow or
# stop.
expect "GET the chat's stream after its turn" 204 "$(call GET "/api/$user/chat/$conversation/stream")"
expect "POST stop with nothing running" 204 "$(call POST "/api/$user/chat/$conversation/stop")"

status=$(curl -s -D "$body.headers" -o "$body" -w '%{http_code}' --max-time 30 -X OPTIONS \
  "$api/api/$user/chat" -H "Origin: ${SMOKE_ORIGIN:-https://origin.invalid}" \
  -H 'Access-Control-Request-Method: POST' -H 'Access-Control-Request-Headers: authorization' || echo 000)
expect "OPTIONS chat (preflight)" 204 "$status"
if [ -n "${SMOKE_ORIGIN:-}" ]; then
  tr -d '\r' < "$body.headers" | grep -qixF "access-control-allow-origin: $SMOKE_ORIGIN"
  check "the preflight grants $SMOKE_ORIGIN" $?
fi

expect "GET tasks" 200 "$(call GET "/api/$user/tasks?status=pending&limit=100")"
[ "$(json "any(t['id'] == $task for t in d['tasks'])")" = True ]
check "the task the turn made is in the tasks API" $?

expect "DELETE the task" 204 "$(call DELETE "/api/$user/tasks/$task")" && task=""
expect "DELETE the conversation" 204 "$(call DELETE "/api/$user/conversations/$conversation")" && conversation=""

echo "smoke: $passed passed, $failed failed"
[ "$failed" = 0 ]
