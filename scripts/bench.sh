#!/usr/bin/env bash
# `make bench`: release builds, a fresh Postgres with pg_stat_statements, then the benchmark
# binary (shared/benches/bench), which prints the table and writes BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# The pinned cargo-lambda, for the arm64 packages and `cargo lambda watch`.
PATH="$(scripts/ensure-tools.sh):$PATH"

functions=$(ls functions)
echo "== release builds of the functions (x86_64, for cold start and memory)"
cargo build --release --quiet $(printf -- '-p %s ' $functions)
echo "== arm64 packages (for sizes; incremental after the first run)"
make --no-print-directory package >/dev/null

pg_port=${BENCH_PG_PORT:-54333}
scripts/pg.sh wipe bench
scripts/pgbouncer.sh install
bundle=$(mktemp)
trap 'scripts/pgbouncer.sh stop bench; scripts/pg.sh wipe bench; rm -f "$bundle"' EXIT
BENCH_DATABASE_URL=$(PG_EXTRA="-c shared_preload_libraries=pg_stat_statements \
  -c pg_stat_statements.track_planning=on ${BENCH_PG_EXTRA:-}" \
  scripts/pg.sh start bench "$pg_port")
# Cold starts are judged as deployed: through a TLS PgBouncer in transaction mode (Neon's
# pooled endpoint). The functions trust its throwaway CA on top of the system's roots, so they
# load as many certificates at cold start as they do on Lambda.
BENCH_POOLER_URL=$(scripts/pgbouncer.sh start bench "${BENCH_POOL_PORT:-54334}" "$pg_port")
cat "$(openssl version -d | sed 's/^OPENSSLDIR: "\(.*\)"$/\1/')/cert.pem" \
  "$(scripts/pgbouncer.sh ca bench)" > "$bundle"
BENCH_POOLER_CA=$bundle
export BENCH_DATABASE_URL BENCH_POOLER_URL BENCH_POOLER_CA

echo "== benchmarks"
cargo bench --quiet -p todo-chat --bench bench
