#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages pixelpipe needs to build pillow-simd and run Azurite.
# Safe to run again: installs only what is missing. Without root (and without sudo), prints
# the command to run by hand and fails.
set -euo pipefail

packages=(
  # headers pillow-simd compiles against (JPEG via libjpeg-turbo, PNG, WebP, TIFF, colour
  # management, FreeType for watermark text, JPEG 2000, libimagequant for palettes)
  libjpeg62-turbo-dev zlib1g-dev libwebp-dev libtiff-dev liblcms2-dev libfreetype-dev
  libopenjp2-7-dev libimagequant-dev
  build-essential python3-dev python3-venv
  # zlib-ng (linked into pillow-simd) builds with CMake
  cmake
  # Azurite runs on Node.js (20 works with Azurite 3.35)
  nodejs npm
  # certificates for the HTTPS Azurite used by the user-delegation SAS tests
  openssl ca-certificates
)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# Ubuntu names libjpeg-turbo's headers differently.
if [[ " ${missing[*]} " == *" libjpeg62-turbo-dev "* ]] && ! apt-cache show libjpeg62-turbo-dev >/dev/null 2>&1; then
  missing=("${missing[@]/libjpeg62-turbo-dev/libjpeg-turbo8-dev}")
fi
# Node from another source (nvm, NodeSource) is fine: skip Debian's if `node` and `npm` exist.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
read -r -a missing <<< "${missing[*]}"
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
  echo "Missing system packages: ${missing[*]}" >&2
  echo "Install them as root:  apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "Installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq || true
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
