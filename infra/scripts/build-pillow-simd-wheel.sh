#!/usr/bin/env bash
# Build the pillow-simd wheel that pixelpipe runs in Azure, into infra/wheelhouse/ (where
# infra/hooks/prepackage.sh picks it up).
#
#   infra/scripts/build-pillow-simd-wheel.sh [sse4|avx2]        (needs Docker; default sse4)
#
# Steps, inside quay.io/pypa/manylinux_2_28_x86_64 (glibc 2.28, so the wheel loads on the
# Functions Python 3.11 image and anything newer):
#   1. build requirements.txt's pillow-simd from source with CPython 3.11, the codec headers
#      and a static zlib-ng (see scripts/install-python.sh);
#      SSE4 by default: an AVX2 build (`avx2`) is 1.3x faster at resizing but dies with SIGILL
#      on a CPU without AVX2, and Flex Consumption does not promise a CPU model;
#   2. rename it to the distribution `pillow`, version <pillow-simd version>+simd
#      (infra/scripts/rename_wheel.py), so dependencies that require `pillow` accept it;
#   3. `auditwheel repair`: copy libjpeg-turbo, libwebp, libtiff, lcms2, freetype, openjpeg into
#      the wheel and tag it manylinux_2_28_x86_64;
#   4. install it in a scratch venv and check that the codecs pixelpipe needs are there.
# PIXELPIPE_WHEEL_IMAGE picks another image (for example the Functions base image
# mcr.microsoft.com/azure-functions/python:4-python3.11, with apt instead of dnf).
set -euo pipefail
cd "$(dirname "$0")/../.."

simd=${1:-${PIXELPIPE_SIMD:-sse4}}
case "$simd" in sse4|avx2) ;; *) echo "usage: $0 [sse4|avx2]" >&2; exit 2 ;; esac
image=${PIXELPIPE_WHEEL_IMAGE:-quay.io/pypa/manylinux_2_28_x86_64}

if [ "${PIXELPIPE_IN_BUILD_CONTAINER:-}" != 1 ]; then
  command -v docker >/dev/null 2>&1 || { echo "build-pillow-simd-wheel: Docker is required" >&2; exit 1; }
  exec docker run --rm --platform linux/amd64 \
    -e PIXELPIPE_IN_BUILD_CONTAINER=1 -e HOST_UID="$(id -u)" -e HOST_GID="$(id -g)" \
    -v "$PWD:/src" -w /src "$image" bash infra/scripts/build-pillow-simd-wheel.sh "$simd"
fi

# -- inside the container -------------------------------------------------------------------------
py=/opt/python/cp311-cp311/bin/python
dnf install -y -q libjpeg-turbo-devel zlib-devel libtiff-devel freetype-devel lcms2-devel libwebp-devel
dnf install -y -q --enablerepo=powertools openjpeg2-devel || echo "openjpeg2-devel unavailable: no JPEG 2000"

pin=$(grep -E '^pillow-simd==' requirements.txt)
version=${pin#pillow-simd==}
cc=cc
[ "$simd" = avx2 ] && cc="cc -mavx2"

work=$(mktemp -d)
# zlib-ng (static, zlib-compatible) as in scripts/install-python.sh: PNG encoding ~2x faster.
"$py" -m pip download -q --no-deps --no-binary :all: "zlib-ng==1.1.0" -d "$work/zng-src"
tar xzf "$work"/zng-src/zlib_ng-*.tar.gz -C "$work/zng-src"
"$py" -m pip install -q cmake
cmake=$(dirname "$py")/cmake
"$cmake" -S "$work"/zng-src/zlib_ng-*/src/zlib_ng/zlib-ng -B "$work/zng-build" -DZLIB_COMPAT=ON \
  -DBUILD_SHARED_LIBS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DZLIB_ENABLE_TESTS=OFF \
  -DZLIBNG_ENABLE_TESTS=OFF -DWITH_GTEST=OFF -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$work/zlib-ng"
"$cmake" --build "$work/zng-build" -j "$(nproc)"
"$cmake" --install "$work/zng-build"
PKG_CONFIG=/nonexistent ZLIB_ROOT="$work/zlib-ng" CC="$cc" \
  "$py" -m pip wheel --no-deps --no-binary pillow-simd --no-cache-dir "$pin" -w "$work/built"
"$py" infra/scripts/rename_wheel.py "$work"/built/*.whl --name pillow --version "$version+simd" \
  --out-dir "$work/renamed"
mkdir -p infra/wheelhouse
auditwheel repair --plat manylinux_2_28_x86_64 -w infra/wheelhouse "$work"/renamed/*.whl

"$py" -m venv "$work/check"
"$work/check/bin/pip" install -q --no-index --find-links infra/wheelhouse "pillow==$version+simd"
"$work/check/bin/python" - <<'PY'
from PIL import Image, features
missing = [name for name in ("jpg", "zlib", "webp", "libtiff", "freetype2", "littlecms2") if not features.check(name)]
if missing:
    raise SystemExit(f"the wheel lacks {missing}")
if "zlib-ng" not in (features.version("zlib") or ""):
    raise SystemExit("the wheel is not linked against zlib-ng")
print("pillow-simd", Image.__version__, "with", ", ".join(sorted(features.get_supported_codecs())))
PY
chown -R "${HOST_UID:-0}:${HOST_GID:-0}" infra/wheelhouse
ls -l infra/wheelhouse/*.whl
