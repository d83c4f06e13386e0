#!/usr/bin/env bash
# Installs the named pip-distributed tools when they are missing:
#   cargo-lambda (ships with zig for cross-compiling), cfn-lint (validates template.yaml).
set -euo pipefail
for tool in "$@"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "installing $tool with pip" >&2
    python3 -m pip install --quiet --disable-pip-version-check "$tool" >&2
  fi
done
