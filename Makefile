# The two commands a newcomer needs: `make dev` and `make test`.
.PHONY: dev test bench load migrate package deploy-check fmt lint

## Serve every function on http://localhost:9000 (local Postgres unless DATABASE_URL is set).
dev:
	@scripts/dev.sh

## Everything CI checks: formatting, lints, unit and integration tests, the `make dev` smoke test.
test:
	@scripts/test.sh

## Speed, memory, round trips and sizes; prints a table and writes BENCHMARKS.md.
bench:
	@scripts/bench.sh

## A few minutes of hundreds of users, with faults, at the deployed shape; checks invariants
## afterwards and writes its figures to BENCHMARKS.md (not part of `make test`).
load:
	@scripts/load.sh

## Apply migrations to DATABASE_URL (use Neon's direct, non-pooler URL in production).
migrate:
	cargo run --quiet -p todo-chat --bin migrate

## The deploy proven offline: lints, `sam build` as an operator runs it, the built bootstraps checked.
deploy-check:
	@scripts/deploy-check.sh

## Release arm64 zips, one per function: target/lambda/<function>/bootstrap.zip.
package:
	PATH="$$(scripts/ensure-tools.sh):$$PATH" cargo lambda build --release --arm64 --output-format zip $(addprefix -p ,$(notdir $(wildcard functions/*)))
	@ls -l target/lambda/*/bootstrap.zip

fmt:
	cargo fmt --all

lint:
	cargo clippy --all-targets -- -D warnings
