#!/usr/bin/env bash
# Installs cargo-lambda (it ships on PyPI with zig for cross-compiling) when it is missing.
set -euo pipefail
if ! command -v cargo-lambda >/dev/null 2>&1; then
  echo "installing cargo-lambda with pip" >&2
  python3 -m pip install --quiet cargo-lambda >&2
fi
