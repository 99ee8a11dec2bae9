#!/usr/bin/env bash
# Configures and builds one flavour of sarai-rt.
#   tools/build.sh release   -> build/release (the default)
#   tools/build.sh asan      -> build/asan: Debug with -fsanitize=address,undefined
set -euo pipefail
cd "$(dirname "$0")/.."
flavour="${1:-release}"
case "$flavour" in
  release) args=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan) args=(-DCMAKE_BUILD_TYPE=Debug -DSARAI_SANITIZE=ON) ;;
  *) echo "build.sh: unknown flavour '$flavour' (release or asan)" >&2; exit 2 ;;
esac
cmake -S . -B "build/$flavour" "${args[@]}" >/dev/null
cmake --build "build/$flavour" -j"$(nproc)"
