#!/usr/bin/env bash
# The README's test command, and what CI runs: builds and runs the whole
# test suite twice, as Release with g++ and as Debug with ASan + UBSan with
# clang (tools/build.sh), so both compilers build everything. Ends with one
# line saying which ISA levels the kernels were tested at on this CPU (the
# ctest entries isa.<level>.*; a level the CPU lacks is Skipped, not Passed).
#   tools/test.sh              both builds
#   tools/test.sh release      one of them (release or asan)
set -euo pipefail
cd "$(dirname "$0")/.."
flavours=("${@:-release asan}")
read -r -a flavours <<< "${flavours[*]}"
for f in "${flavours[@]}"; do
  echo "== test: $f build"
  tools/build.sh "$f"
  # ASan's leak checker is on (minus libomp's thread pool: tests/lsan.supp);
  # UBSan stops at the first finding.
  ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions="$PWD/tests/lsan.supp" \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    ctest --test-dir "build/$f" --output-on-failure -j"$(nproc)" | tee "build/$f/ctest.log"
done

exercised=() skipped=()
for level in scalar avx2 avx2_vnni avx512_vnni; do
  ran=0 skip=0
  for f in "${flavours[@]}"; do
    grep -Eq "isa\.$level\.[a-z0-9_]+ \.+ +Passed" "build/$f/ctest.log" && ran=1
    grep -Eq "isa\.$level\.[a-z0-9_]+ \.+ *\*\*\*Skipped" "build/$f/ctest.log" && skip=1
  done
  if ((ran)); then exercised+=("$level"); elif ((skip)); then skipped+=("$level"); fi
done
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "test: ISA levels exercised: ${exercised[*]:-none}; skipped, as this CPU lacks them: ${skipped[*]:-none} (${cpu:-unknown CPU}; ${flavours[*]})"
