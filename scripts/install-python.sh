#!/usr/bin/env bash
# Creates .venv/ and installs the pinned runtime + dev requirements.
#
# pillow-simd is built from source for this machine's CPU: with AVX2 when the CPU has it
# (resize 1.3x faster than the SSE4 build), else SSE4. An AVX2 build dies with SIGILL on a
# CPU without AVX2, so it never leaves this machine: deployments build their own wheel (see
# docs/deployment.md). Force a choice with PIXELPIPE_SIMD=avx2|sse4.
#
# It is linked against zlib-ng (zlib-compatible API, static, picks SIMD at run time) instead
# of the system zlib 1.2.13: PNG encoding is ~2x faster (a 2K photo: 1.1 s -> 0.58 s), pixels
# identical. Debian has no zlib-ng package; its source comes from the pinned `zlib-ng` sdist
# on PyPI (the Python binding ships the C library's source).
set -euo pipefail
python=${PYTHON:-python3}
venv=.venv

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip wheel setuptools 2>&1 | grep -v "is ignored" || true

simd_pin=$(grep -E '^pillow-simd==' requirements.txt)
zlib_ng_pin="zlib-ng==1.1.0"          # carries zlib-ng 2.3.3's C source
simd=${PIXELPIPE_SIMD:-$(grep -qw avx2 /proc/cpuinfo 2>/dev/null && echo avx2 || echo sse4)}
cc="cc"; [ "$simd" = "avx2" ] && cc="cc -mavx2"
want="${simd_pin#pillow-simd==} zlib-ng"
have=$("$venv/bin/python" -c "from PIL import features, __version__ as v; \
print(v, 'zlib-ng' if 'zlib-ng' in (features.version('zlib') or '') else 'zlib')" 2>/dev/null \
  || true)
if [ "$have" != "$want" ]; then
  zng=$PWD/$venv/opt/zlib-ng
  if [ ! -f "$zng/lib/libz.a" ]; then
    echo "Building zlib-ng (compat, static) ..."
    work=$(mktemp -d)
    "${pip[@]}" download --no-deps --no-binary :all: "$zlib_ng_pin" -d "$work" 2>&1 \
      | grep -v "is ignored" || true
    tar xzf "$work"/zlib_ng-*.tar.gz -C "$work"
    cmake -S "$work"/zlib_ng-*/src/zlib_ng/zlib-ng -B "$work/build" -DZLIB_COMPAT=ON \
      -DBUILD_SHARED_LIBS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DZLIB_ENABLE_TESTS=OFF \
      -DZLIBNG_ENABLE_TESTS=OFF -DWITH_GTEST=OFF -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_INSTALL_PREFIX="$zng" >/dev/null
    cmake --build "$work/build" -j "$(nproc)" >/dev/null
    cmake --install "$work/build" >/dev/null
    rm -rf "$work"
  fi
  echo "Building $simd_pin ($simd, zlib-ng) ..."
  "${pip[@]}" uninstall -y pillow pillow-simd >/dev/null 2>&1 || true
  # Without pkg-config, ZLIB_ROOT's library directory comes before the system one, so the
  # static zlib-ng is what `-lz` finds.
  PKG_CONFIG=/nonexistent ZLIB_ROOT="$zng" CC="$cc" \
    "${pip[@]}" install --no-cache-dir --no-binary pillow-simd "$simd_pin" 2>&1 \
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
