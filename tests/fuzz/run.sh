#!/usr/bin/env bash
# Builds the .sarai reader fuzzer with Debian's clang (libFuzzer + ASan +
# UBSan) and runs it for SECONDS (default 60) on a seed corpus written by
# make_seeds.cc. Exits non-zero when the fuzzer finds a crash, a leak, an
# out-of-bounds read or undefined behaviour (the reproducer is left in
# WORKDIR as crash-*).
#
#   tests/fuzz/run.sh [SECONDS] [WORKDIR]     (WORKDIR default: /tmp/sarai-blob-fuzz)
set -euo pipefail

secs=${1:-60}
work=${2:-${TMPDIR:-/tmp}/sarai-blob-fuzz}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

missing=()
for pkg in clang libclang-rt-14-dev libomp-14-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]]; then
    apt-get install -y "${missing[@]}"
  else
    echo "run.sh: missing Debian packages: ${missing[*]} (sudo apt-get install -y ${missing[*]})" >&2
    exit 2
  fi
fi

mkdir -p "$work/seeds" "$work/corpus"
cxx="clang++ -std=c++20 -g -O1 -fopenmp -I$root"
# What the reader needs: the blob reader and the runtime core it builds on.
# crc32c follows the ISA cap (runtime/cpu_isa.cc), which also caps oneDNN.
reader_src=("$root/loader/blob_reader.cc" "$root/runtime/tensor.cc" "$root/runtime/graph.cc"
            "$root/runtime/crc32c.cc" "$root/runtime/cpu_isa.cc" "$root/runtime/mapped_file.cc"
            "$root/runtime/parallel.cc")

echo "run.sh: building the seed generator and the fuzzer in $work" >&2
$cxx "$root/tests/fuzz/make_seeds.cc" "$root/quantizer/blob_writer.cc" "$root/runtime/atomic_file.cc" \
  "${reader_src[@]:1}" -ldnnl -o "$work/make_seeds"
$cxx -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  "$root/tests/fuzz/blob_reader_fuzz.cc" "${reader_src[@]}" -ldnnl -o "$work/blob_reader_fuzz"

"$work/make_seeds" "$work/seeds"

echo "run.sh: fuzzing for $secs s" >&2
cd "$work"
exec ./blob_reader_fuzz -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
  -print_final_stats=1 "$work/corpus" "$work/seeds"
