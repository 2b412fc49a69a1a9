#!/usr/bin/env bash
# azd prepackage hook (service `api`): install the app's runtime dependencies, as Linux x86-64
# CPython 3.11 wheels, into .python_packages/lib/site-packages, which the Functions Python worker
# puts on sys.path. azure.yaml sets `remoteBuild: false`, so Azure installs nothing itself.
#
# Why no remote build: pillow-simd publishes no wheels, and Azure's remote build cannot compile
# it with the right codecs and flags. So a pillow-simd wheel is built once, for the deployment
# CPU baseline (SSE4 unless the plan's CPUs are known to have AVX2), on a manylinux image or the
# Functions base image, repaired with auditwheel so libjpeg-turbo & co. travel inside, and renamed
# to the distribution `pillow` with the local version <pillow-simd version>+simd
# (infra/scripts/build-pillow-simd-wheel.sh does all of it). That wheel waits in
# infra/wheelhouse/ (or $PIXELPIPE_WHEELHOUSE); everything else comes from PyPI. A constraints
# file holds `pillow` at that build, so no dependency can pull PyPI's Pillow over it.
set -euo pipefail
cd "$(dirname "$0")/../.."

python=${PYTHON:-python3}
wheelhouse=${PIXELPIPE_WHEELHOUSE:-infra/wheelhouse}
# The platforms pip may pick wheels for; the Functions Python 3.11 image has glibc >= 2.28.
platforms=${PIXELPIPE_WHEEL_PLATFORMS:-"manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64"}
target=.python_packages/lib/site-packages

simd_pin=$(grep -E '^pillow-simd==' requirements.txt || true)
if [ -z "$simd_pin" ]; then
  echo "prepackage: requirements.txt pins no pillow-simd; nothing to substitute." >&2
  exit 1
fi
pillow_version="${simd_pin#pillow-simd==}+simd"

platform_args=()
for platform in $platforms; do platform_args+=(--platform "$platform"); done

wheel=""
for candidate in "$wheelhouse"/pillow-"$pillow_version"-cp311-cp311-*.whl; do
  [ -e "$candidate" ] && wheel=$candidate && break
done
if [ -z "$wheel" ]; then
  cat >&2 <<EOF
prepackage: no pillow-simd wheel for Azure in $wheelhouse/
  expected: pillow-$pillow_version-cp311-cp311-manylinux_*_x86_64.whl
  build it (needs Docker): infra/scripts/build-pillow-simd-wheel.sh
  or point PIXELPIPE_WHEELHOUSE at a folder that has it. See docs/deployment.md.
EOF
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# requirements.txt minus pillow-simd, plus the renamed build, pinned by a constraints file.
grep -vE '^[[:space:]]*pillow-simd==' requirements.txt >"$work/requirements.txt"
echo "pillow==$pillow_version" >>"$work/requirements.txt"
echo "pillow==$pillow_version" >"$work/constraints.txt"

rm -rf .python_packages
echo "prepackage: installing requirements.txt for Linux x86-64 / CPython 3.11 into $target"
"$python" -m pip install --disable-pip-version-check --quiet --no-cache-dir \
  --target "$target" "${platform_args[@]}" \
  --python-version 3.11 --implementation cp --abi cp311 --only-binary=:all: \
  --find-links "$wheelhouse" \
  --requirement "$work/requirements.txt" --constraint "$work/constraints.txt"

# The result must hold exactly one PIL: the SIMD build.
"$python" - "$target" "$pillow_version" <<'PY'
import pathlib, sys
target, version = pathlib.Path(sys.argv[1]), sys.argv[2]
dists = sorted(
    p.name for p in target.glob("*.dist-info")
    if p.name.lower().startswith(("pillow-", "pillow_simd-"))
)
expected = f"pillow-{version}.dist-info"
if dists != [expected]:
    sys.exit(f"prepackage: expected only {expected} in {target}, found {dists}")
if not (target / "PIL" / "__init__.py").is_file():
    sys.exit(f"prepackage: {target}/PIL is missing")
print(f"prepackage: {target} ready with {expected}")
PY
