#!/usr/bin/env bash
# The README's test command, and what CI runs: builds and runs the whole
# test suite twice, as Release with g++ and as Debug with ASan + UBSan with
# clang (tools/build.sh), so both compilers build everything. Ends with one
# line saying which ISA levels the kernels were tested at on this CPU (the
# ctest entries isa.<level>.*; a level the CPU lacks is Skipped, not Passed).
# Then the concurrency tests (tests/concurrency_test.cc) under ThreadSanitizer
# (clang): a data race between calls on one session fails them.
#   tools/test.sh              all three (release, asan, tsan)
#   tools/test.sh release      some of them (release, asan or tsan)
set -euo pipefail
cd "$(dirname "$0")/.."
flavours=("${@:-release asan tsan}")
read -r -a flavours <<< "${flavours[*]}"
for f in "${flavours[@]}"; do
  echo "== test: $f build"
  if [[ "$f" == tsan ]]; then
    # One test program: TSan slows every run about tenfold. Each call runs
    # with threads=1, so no OpenMP team is involved; but each new caller
    # thread's omp_set_num_threads makes libomp (uninstrumented) allocate and
    # memset its per-thread state, which TSan, seeing only the memsets,
    # reported once as a race between two threads reusing a freed block:
    # ignore_noninstrumented_modules leaves libomp's insides to libomp.
    tools/build.sh tsan concurrency_test
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1 \
      build/tsan/tests/concurrency_test 2>&1 | tee build/tsan/ctest.log
    continue
  fi
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
# Without AVX-VNNI but with AVX-512 VNNI, the avx2_vnni micro-kernel's code
# still ran, built with vpdpbusd's EVEX encoding (test::ukernel_under_test).
evex=""
if [[ " ${skipped[*]} " == *" avx2_vnni "* ]]; then
  for f in "${flavours[@]}"; do
    grep -Eq "EveryTileShapeAndKTailMatchesTheContract/avx2_vnni .* Passed" "build/$f/ctest.log" &&
      evex="; avx2_vnni's micro-kernel tested through vpdpbusd's EVEX encoding"
  done
fi
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "test: ISA levels exercised: ${exercised[*]:-none}; skipped, as this CPU lacks them: ${skipped[*]:-none}$evex (${cpu:-unknown CPU}; ${flavours[*]})"
