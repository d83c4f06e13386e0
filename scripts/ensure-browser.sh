#!/usr/bin/env bash
# The browser test's needs: Debian's Chromium (a test tool's own browser download cannot
# work here) and the page's one test dependency, playwright-core.
set -euo pipefail
cd "$(dirname "$0")/.."
# CHROMIUM names another Chromium-based browser to use instead (CI's preinstalled Chrome).
if [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium from Debian's packages" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
  else
    echo "ensure-browser: install Chromium (Debian package 'chromium') first" >&2
    exit 1
  fi
fi
[ -d web/node_modules/playwright-core ] && [ -d web/node_modules/ai ] || (cd web && npm ci --no-audit --no-fund --loglevel=error)
