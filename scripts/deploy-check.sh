#!/usr/bin/env bash
# `make deploy-check`: the deploy an operator would run, proven offline before it reaches AWS
# (no credentials, no network beyond the package registries):
#   cfn-lint and `sam validate --lint`, then `sam build` from this checkout with the
#   template's rust-cargolambda method, then a check of what it built: one bootstrap per
#   function in the template, each an aarch64 executable, each zipped (deflate, as Lambda's
#   zip) within the size budget. The zips are made from what `sam build` built: compiling the
#   release again through `make package` would cost a second round of LTO links.
set -euo pipefail
cd "$(dirname "$0")/.."
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-eu-west-1}
PATH="$(scripts/ensure-tools.sh):$PATH"

echo "== deploy-check: cfn-lint, sam validate --lint"
cfn-lint template.yaml
sam validate --lint

echo "== deploy-check: sam build (rust-cargolambda, arm64, release)"
sam build --beta-features --no-cached

echo "== deploy-check: what was built"
python3 - <<'PY'
import io, pathlib, sys, zipfile
from cfnlint.decode import decode

ZIP_BUDGET = 4 * 1000 * 1000  # bytes: the budget BENCHMARKS.md tracks
template, _ = decode("template.yaml")
problems, checked = [], 0
for name, resource in template["Resources"].items():
    if resource["Type"] != "AWS::Serverless::Function":
        continue
    binary = resource["Metadata"]["BuildProperties"]["Binary"]
    bootstrap = pathlib.Path(".aws-sam/build") / name / "bootstrap"
    if not bootstrap.is_file():
        problems.append(f"{name}: sam build made no {bootstrap}")
        continue
    header = bootstrap.read_bytes()[:20]
    # ELF magic, and e_machine 0xB7: AArch64 (the template's arm64 architecture).
    if header[:4] != b"\x7fELF" or int.from_bytes(header[18:20], "little") != 0xB7:
        problems.append(f"{name}: {bootstrap} is not an aarch64 ELF executable")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.write(bootstrap, "bootstrap")
    size = archive.getbuffer().nbytes
    if size > ZIP_BUDGET:
        problems.append(f"{name} ({binary}): its zip is {size} bytes, over {ZIP_BUDGET}")
    print(f"deploy-check: {name} ({binary}): aarch64 bootstrap, zip {size} bytes")
    checked += 1
for problem in problems:
    print(f"deploy-check: {problem}")
print(f"deploy-check: {checked} functions built, {len(problems)} problem(s)")
sys.exit(1 if problems or checked == 0 else 0)
PY
