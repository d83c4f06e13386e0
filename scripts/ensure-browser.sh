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
# The npm packages exactly as web/package-lock.json pins them: installed again whenever any
# installed version differs from its pin, not only when the folder is missing.
matches_lock() {
  (cd web && node --input-type=module -e '
    import { readFileSync, existsSync } from "node:fs";
    const lock = JSON.parse(readFileSync("package-lock.json", "utf8"));
    const wrong = Object.entries(lock.packages).filter(([path, entry]) => {
      if (!path.startsWith("node_modules/")) return false;
      const manifest = `${path}/package.json`;
      if (!existsSync(manifest)) return !entry.optional;
      return JSON.parse(readFileSync(manifest, "utf8")).version !== entry.version;
    });
    if (wrong.length) { console.error(`ensure-browser: ${wrong.map(([p]) => p).join(", ")} differ from the lock`); process.exit(1); }
  ')
}
matches_lock 2>/dev/null || { (cd web && npm ci --no-audit --no-fund --loglevel=error) && matches_lock; }
