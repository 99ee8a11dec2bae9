#!/usr/bin/env bash
# Configures and builds one flavour of sarai-rt.
#   tools/build.sh release   -> build/release: Release, with $CXX/$CC if set
#                               (else the system's c++/cc, i.e. g++ 12)
#   tools/build.sh asan      -> build/asan: Debug with -fsanitize=address,undefined,
#                               built with clang 14 (libFuzzer's toolchain, and
#                               our second compiler) unless $CXX/$CC say otherwise
#   tools/build.sh tsan      -> build/tsan: RelWithDebInfo with -fsanitize=thread,
#                               clang 14, for the concurrency tests
#   tools/build.sh F TARGET...  only those targets (e.g. tsan concurrency_test)
# A build folder configured with another compiler is made anew.
set -euo pipefail
cd "$(dirname "$0")/.."
flavour="${1:-release}"
case "$flavour" in
  release) args=(-DCMAKE_BUILD_TYPE=Release); cxx="${CXX:-c++}"; cc="${CC:-cc}" ;;
  asan) args=(-DCMAKE_BUILD_TYPE=Debug -DSARAI_SANITIZE=ON); cxx="${CXX:-clang++}"; cc="${CC:-clang}" ;;
  tsan) args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSARAI_SANITIZE_THREAD=ON -DSARAI_BUILD_BENCH=OFF)
        cxx="${CXX:-clang++}"; cc="${CC:-clang}" ;;
  *) echo "build.sh: unknown flavour '$flavour' (release, asan or tsan)" >&2; exit 2 ;;
esac
cxx_path=$(command -v "$cxx") || { echo "build.sh: C++ compiler '$cxx' not found (run tools/setup.sh)" >&2; exit 2; }
cc_path=$(command -v "$cc") || { echo "build.sh: C compiler '$cc' not found (run tools/setup.sh)" >&2; exit 2; }
dir="build/$flavour"
if [[ -f "$dir/CMakeCache.txt" ]] && ! grep -qx "CMAKE_CXX_COMPILER:[A-Z]*=$cxx_path" "$dir/CMakeCache.txt"; then
  echo "build.sh: $dir was configured with another compiler; configuring it anew for $cxx_path"
  rm -rf "$dir"
fi
cmake -S . -B "$dir" "${args[@]}" -DCMAKE_CXX_COMPILER="$cxx_path" -DCMAKE_C_COMPILER="$cc_path" >/dev/null
shift || true
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$dir" -j"$(nproc)" "${targets[@]}"
