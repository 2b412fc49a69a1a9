#!/usr/bin/env bash
# Creates .venv/ and installs the pinned runtime + dev requirements.
#
# pillow-simd is built from source for this machine's CPU: with AVX2 when the CPU has it
# (resize 1.3x faster than the SSE4 build), else SSE4. An AVX2 build dies with SIGILL on a
# CPU without AVX2, so it never leaves this machine: deployments build their own wheel (see
# docs/deployment.md). Force a choice with PIXELPIPE_SIMD=avx2|sse4.
set -euo pipefail
python=${PYTHON:-python3}
venv=.venv

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip wheel setuptools 2>&1 | grep -v "is ignored" || true

simd_pin=$(grep -E '^pillow-simd==' requirements.txt)
simd=${PIXELPIPE_SIMD:-$(grep -qw avx2 /proc/cpuinfo 2>/dev/null && echo avx2 || echo sse4)}
cc="cc"; [ "$simd" = "avx2" ] && cc="cc -mavx2"
want=${simd_pin#pillow-simd==}
have=$("$venv/bin/python" -c "import PIL; print(PIL.__version__)" 2>/dev/null || true)
if [ "$have" != "$want" ]; then
  echo "Building $simd_pin ($simd) ..."
  "${pip[@]}" uninstall -y pillow pillow-simd >/dev/null 2>&1 || true
  CC="$cc" "${pip[@]}" install --no-cache-dir --no-binary pillow-simd "$simd_pin" 2>&1 \
    | grep -v "is ignored" || true
fi
"${pip[@]}" install -r requirements-dev.txt 2>&1 | grep -v "is ignored" || true

# pycep builds its Bicep grammar tables on first use (~15 s); do it here, not in the tests.
"$venv/bin/python" -c "from pycep import BicepParser; BicepParser()" >/dev/null 2>&1 || true

# Guard: something that depends on `pillow` would silently replace pillow-simd.
"$venv/bin/python" - <<'PY'
import PIL, sys
if not PIL.__version__.split("+")[0].endswith(".post0"):
    sys.exit(f"PIL {PIL.__version__} is not pillow-simd: a dependency replaced it")
print(f"pillow-simd {PIL.__version__} ready")
PY
