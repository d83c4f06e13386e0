#!/usr/bin/env bash
# Makes .venv hold exactly the tool versions pinned in scripts/tools/requirements.txt
# (cfn-lint, aws-sam-translator, the SAM CLI, schemathesis, actionlint, cargo-lambda) and
# prints its bin folder. Callers put that first on PATH:
#   PATH="$(scripts/ensure-tools.sh):$PATH"
# Every call checks the installed versions against the pins, not only that a command exists,
# so an older copy on the machine (or in .venv) never decides a result.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$root/.venv
pins=$root/scripts/tools/requirements.txt

# Exits non-zero, naming what differs, unless every pinned distribution is installed at its pin.
matches_pins() {
  "$venv/bin/python" - "$pins" <<'PY'
import sys
from importlib import metadata

wrong = []
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, _, pinned = line.partition("==")
    try:
        installed = metadata.version(name)
    except metadata.PackageNotFoundError:
        installed = None
    if installed != pinned:
        wrong.append(f"{name} {installed or 'missing'} (pinned {pinned})")
if wrong:
    print("ensure-tools: " + ", ".join(wrong), file=sys.stderr)
    sys.exit(1)
PY
}

if ! "$venv/bin/python" -c '' >/dev/null 2>&1; then
  echo "ensure-tools: creating $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
fi
if ! matches_pins 2>/dev/null; then
  echo "ensure-tools: installing the pinned tools into $venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$pins" >&2
  matches_pins
  "$venv/bin/python" -m pip check >&2
fi
echo "$venv/bin"
