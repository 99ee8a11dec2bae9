#!/usr/bin/env bash
# Proves docs/embedding.md against the *installed* package: installs the
# build into a fresh prefix, takes the page's CMake, C and C++ blocks
# verbatim, builds both programs with find_package(sarai_rt) and the C one
# again with pkg-config, runs them on every model given, and checks they
# print the same outputs, each "name: dtype [dims]".
#   check_embedding.sh BUILD_DIR SOURCE_DIR WORK_DIR MODEL...
set -euo pipefail
build=$1 src=$2 work=$3
shift 3
rm -rf "$work"
mkdir -p "$work/app"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
for f in include/sarai_rt/sarai_rt.h include/sarai_rt/sarai_rt.hpp lib/cmake/sarai_rt/sarai_rt-config.cmake \
         lib/pkgconfig/sarai_rt.pc bin/sarai-rt; do
  [[ -e "$work/prefix/$f" ]] || { echo "check_embedding: not installed: $f" >&2; exit 1; }
done
# Only the public headers are installed.
extra=$(find "$work/prefix/include" -type f | grep -v '/sarai_rt/sarai_rt\.hp\?p\?$' || true)
[[ -z "$extra" ]] || { echo "check_embedding: installed headers beyond the public API: $extra" >&2; exit 1; }

# The Python module: installed when built, importable from the prefix
# (its RPATH finds the installed libsarai_rt.so).
pydir=""
if compgen -G "$build/python/sarai_rt*.so" >/dev/null; then
  pydir=$(dirname "$(find "$work/prefix" -name 'sarai_rt*.so' -path '*dist-packages*' | head -1)")
  [[ "$pydir" == */dist-packages ]] || { echo "check_embedding: the Python module was not installed" >&2; exit 1; }
fi

# The first ```cmake, ```c and ```cpp blocks of the page, verbatim.
extract() {
  awk -v lang="$1" '$0 == "```" lang { on = 1; next } on && $0 == "```" { exit } on { print }' "$src/docs/embedding.md"
}
extract cmake > "$work/app/CMakeLists.txt"
extract c > "$work/app/embed.c"
extract cpp > "$work/app/embed.cpp"
for f in CMakeLists.txt embed.c embed.cpp; do
  [[ -s "$work/app/$f" ]] || { echo "check_embedding: docs/embedding.md has no block for $f" >&2; exit 1; }
done

cmake -S "$work/app" -B "$work/app/build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/app/build" -j"$(nproc)" >/dev/null
PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig" cc -std=c99 -Wall -Wextra -Werror "$work/app/embed.c" \
  $(PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig" pkg-config --cflags --libs sarai_rt) -o "$work/app/embed_c_pkgconfig"

for model in "$@"; do
  c_out=$("$work/app/build/embed_c" "$model")
  cpp_out=$("$work/app/build/embed_cpp" "$model")
  pc_out=$(LD_LIBRARY_PATH="$work/prefix/lib" "$work/app/embed_c_pkgconfig" "$model")
  echo "$(basename "$model"):"
  echo "$c_out"
  [[ -n "$c_out" ]] || { echo "check_embedding: no output for $model" >&2; exit 1; }
  [[ "$c_out" == "$cpp_out" && "$c_out" == "$pc_out" ]] || {
    echo "check_embedding: the programs disagree on $model:" >&2
    printf 'C:\n%s\nC++:\n%s\npkg-config C:\n%s\n' "$c_out" "$cpp_out" "$pc_out" >&2
    exit 1
  }
  # The installed Python module (when the build has one) agrees too.
  if [[ -n "$pydir" ]]; then
    py_out=$(PYTHONPATH="$pydir" /usr/bin/python3 -B - "$model" <<'PY'
import sys
import numpy as np
import sarai_rt
s = sarai_rt.InferenceSession(sys.argv[1])
types = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
         "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(bool)": np.bool_}
feed = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], types[i.type]) for i in s.get_inputs()}
for o, y in zip(s.get_outputs(), s.run(None, feed)):
    print(f"{o.name}: {y.dtype} [{', '.join(str(d) for d in y.shape)}]")
PY
)
    [[ "$py_out" == "$c_out" ]] || {
      printf 'check_embedding: the installed Python module disagrees on %s:\n%s\n' "$model" "$py_out" >&2; exit 1; }
  fi
  if grep -qv '^[^:]*: [a-z0-9]* \[[0-9, ]*\]$' <<< "$c_out"; then
    echo "check_embedding: unexpected line in: $c_out" >&2
    exit 1
  fi
done
# A bad path fails with the I/O category, not a crash.
if "$work/app/build/embed_c" "$work/no-such-model.onnx" 2> "$work/err"; then
  echo "check_embedding: a missing model did not fail" >&2; exit 1
fi
grep -q "^error (5): .*no-such-model.onnx: cannot open: No such file or directory" "$work/err" || {
  echo "check_embedding: unexpected error for a missing model: $(cat "$work/err")" >&2; exit 1; }
echo "check_embedding: OK"
