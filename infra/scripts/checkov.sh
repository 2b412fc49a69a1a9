#!/usr/bin/env bash
# Offline security scan of infra/ with checkov (Bicep + ARM), in its own virtual environment:
# checkov brings ~70 packages (boto3, networkx, ...) and pins `packaging` below what the project
# uses, so it never goes into .venv. First run ~1 min (install), then ~10 s.
#
#   infra/scripts/checkov.sh            exit 0: everything parsed and no check failed
#
# checkov exits 0 even when a Bicep file does not parse, so this script reads its JSON report
# and fails on `parsing_errors` too. Skipped checks, each with its reason: infra/checkov.yaml.
set -euo pipefail
cd "$(dirname "$0")/../.."

version=${CHECKOV_VERSION:-3.3.30}
python=${PYTHON:-python3}
venv=${CHECKOV_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/pixelpipe/checkov-$version}

if [ ! -x "$venv/bin/checkov" ]; then
  echo "checkov: installing checkov==$version into $venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check --quiet "checkov==$version"
fi

report=$(mktemp)
trap 'rm -f "$report"' EXIT
# Non-zero when checks fail; the report below decides.
"$venv/bin/checkov" --config-file infra/checkov.yaml -d infra -o json >"$report" 2>/dev/null || true

"$venv/bin/python" - "$report" <<'PY'
import json, sys

with open(sys.argv[1]) as f:
    text = f.read().strip()
if not text:
    sys.exit("checkov: no report (did it crash? run it by hand without -o json)")
data = json.loads(text)
reports = data if isinstance(data, list) else [data]
problems, scanned = [], 0
for report in reports:
    summary = report.get("summary", report)
    kind = report.get("check_type", "?")
    scanned += summary.get("resource_count", 0)
    if summary.get("parsing_errors"):
        problems.append(f"{kind}: {summary['parsing_errors']} file(s) did not parse")
    for check in report.get("results", {}).get("failed_checks", []):
        problems.append(
            f"{kind}: {check['check_id']} {check['check_name']} "
            f"({check['file_path']} {check.get('resource', '')})"
        )
    print(f"checkov {kind}: {summary}")
if not scanned:
    problems.append("no resources scanned: are the Bicep files where infra/checkov.yaml expects?")
if problems:
    sys.exit("checkov found problems:\n  " + "\n  ".join(problems))
print("checkov: all files parsed, no failed checks")
PY
