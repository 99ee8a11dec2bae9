#!/usr/bin/env bash
# The README's test command, and what CI runs: builds and runs the whole
# test suite twice, as Release and as Debug with ASan + UBSan.
#   tools/test.sh              both builds
#   tools/test.sh release      one of them (release or asan)
set -euo pipefail
cd "$(dirname "$0")/.."
flavours=("${@:-release asan}")
read -r -a flavours <<< "${flavours[*]}"
for f in "${flavours[@]}"; do
  echo "== test: $f build"
  tools/build.sh "$f"
  # ASan's leak checker is on; UBSan stops at the first finding.
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    ctest --test-dir "build/$f" --output-on-failure -j"$(nproc)"
done
