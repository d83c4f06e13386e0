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

scripts/pg.sh wipe bench
trap 'scripts/pg.sh wipe bench' EXIT
BENCH_DATABASE_URL=$(PG_EXTRA="-c shared_preload_libraries=pg_stat_statements \
  -c pg_stat_statements.track_planning=on ${BENCH_PG_EXTRA:-}" \
  scripts/pg.sh start bench "${BENCH_PG_PORT:-54333}")
export BENCH_DATABASE_URL

echo "== benchmarks"
cargo bench --quiet -p todo-chat --bench bench
