#!/usr/bin/env bash
# `make test`: formatting, lints and every test, against a throwaway Postgres unless
# TEST_DATABASE_URL (or DATABASE_URL) names a server the tests may create databases on.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (every target, the benchmark included: make bench runs it)"
cargo clippy --quiet --all-targets -- -D warnings
# The pinned tools (cargo-lambda, cfn-lint, schemathesis, actionlint, ...) first on PATH,
# for this script and every test it starts.
PATH="$(scripts/ensure-tools.sh):$PATH"
echo "== template.yaml: cfn-lint and route agreement; shared/src layers; vendor/ against crates.io; workflows: actionlint"
cfn-lint template.yaml
python3 scripts/check_routes.py
python3 scripts/check_layers.py
scripts/check_vendor.sh
actionlint

if [ -z "${TEST_DATABASE_URL:-}" ]; then
  if [ -n "${DATABASE_URL:-}" ]; then
    export TEST_DATABASE_URL=$DATABASE_URL
  else
    scripts/pg.sh wipe test
    trap 'scripts/pg.sh wipe test' EXIT
    TEST_DATABASE_URL=$(scripts/pg.sh start test "${TEST_PG_PORT:-54330}")
    export TEST_DATABASE_URL
  fi
fi

echo "== cargo test"
cargo test --workspace
echo "== one at a time: make dev over HTTP (direct and through PgBouncer), outages, the page in Chromium, captured logs"
scripts/ensure-browser.sh
scripts/pgbouncer.sh install
cargo test -p todo-chat --test api -- --ignored --test-threads=1
echo "== the deploy, proven offline: make deploy-check"
make --no-print-directory deploy-check
