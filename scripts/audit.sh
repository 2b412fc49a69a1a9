#!/usr/bin/env bash
# Known-vulnerability audit of the pinned dependencies (runtime + dev), with pip-audit in its
# own virtual environment. It needs PyPI's per-version JSON API or OSV (api.osv.dev); on
# machines where neither is reachable (the project's build machines serve only the package
# index), this is a manual step: run `make audit` somewhere they are, before a release and
# after changing requirements. pillow-simd has no advisories of its own: Pillow's apply to it
# (see the README's security section).
set -euo pipefail
cd "$(dirname "$0")/.."
version=2.10.1
venv=${XDG_CACHE_HOME:-$HOME/.cache}/pixelpipe/pip-audit-$version
if [ ! -x "$venv/bin/pip-audit" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q "pip-audit==$version" 2>&1 \
    | grep -v "is ignored" || true
fi
if ! curl -sf --max-time 10 -o /dev/null https://pypi.org/pypi/requests/2.32.3/json \
    && ! curl -sf --max-time 10 -o /dev/null -X POST -d '{}' https://api.osv.dev/v1/query; then
  echo "audit: neither PyPI's per-version JSON API nor OSV is reachable from here;" >&2
  echo "       run 'make audit' on a machine with internet access." >&2
  exit 2
fi
# Audit the installed environment (what the tests ran against), not a fresh resolve: that
# would rebuild pillow-simd.
"$venv/bin/pip-audit" --local --path .venv/lib/python3.11/site-packages --progress-spinner off \
  --vulnerability-service "${AUDIT_SERVICE:-osv}"
