#!/usr/bin/env bash
# Installs everything the build and the tests need, idempotently: Debian packages
# (Emscripten, Chromium for browser tests, clang for fuzzing, real test photos from
# scikit-image) and the npm dependencies pinned in package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v emcc >/dev/null || need+=(emscripten)
command -v chromium >/dev/null || need+=(chromium)
command -v clang >/dev/null || need+=(clang)
command -v clang-format >/dev/null || need+=(clang-format)   # make format-check
command -v unzip >/dev/null || need+=(unzip)   # the export tests unzip what the page downloads
dpkg -s libclang-rt-14-dev >/dev/null 2>&1 || need+=(libclang-rt-14-dev)
[ -f /usr/lib/python3/dist-packages/skimage/data/chelsea.png ] || need+=(python3-skimage)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# npm ci only when the lock file changed since the last install.
stamp=node_modules/.tinytune-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  npm ci --no-audit --no-fund --ignore-scripts   # onnxruntime-node's script downloads from a host not reachable here; its CPU binaries ship in the package
  cp package-lock.json "$stamp"
fi
