#!/usr/bin/env bash
# ctest entry: a convert interrupted by SIGINT or SIGTERM midway exits
# 128+signal and leaves neither the output nor its temp file, and the source
# is unchanged. The model (~100 MB of weights) comes from
# tools/scripts/make_big_encoder.py at a small size so the convert takes long enough
# to be caught in the middle.
#   convert_interrupt.sh SARAI_RT WORK_DIR
set -euo pipefail
src="$(cd "$(dirname "$0")/../.." && pwd)"
sarai="$1" work="$2"
rm -rf "$work"; mkdir -p "$work/model" "$work/out"
/usr/bin/python3 "$src/tools/scripts/make_big_encoder.py" "$work/model" --layers 6 --d-model 512 --ffn 2048 --heads 8 >/dev/null
sum_before=$(cat "$work/model/model.onnx" "$work/model/model.onnx.data" | sha256sum)
for sig in INT TERM; do
  for to in sarai onnx; do
    out="$work/out/m.$to"
    "$sarai" convert "$work/model/model.onnx" -o "$out" --to "$to" >/dev/null 2>"$work/err" &
    pid=$!
    # Wait until the temp file exists (the convert is under way), then signal.
    for _ in $(seq 1 500); do
      compgen -G "$work/out/*.tmp-*" >/dev/null && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.01
    done
    kill -"$sig" "$pid" 2>/dev/null || true
    set +e; wait "$pid"; code=$?; set -e
    if [[ $code -eq 0 ]]; then
      echo "note: SIG$sig --to $to arrived after the convert finished"; rm -rf "$work/out"/*; continue
    fi
    left=$(ls -A "$work/out")
    if [[ -n "$left" ]]; then echo "FAIL: SIG$sig --to $to left: $left"; exit 1; fi
    expected=$((128 + $(kill -l "$sig")))
    if [[ $code -ne $expected ]]; then echo "FAIL: SIG$sig --to $to exited $code, expected $expected: $(cat "$work/err")"; exit 1; fi
    echo "ok: SIG$sig --to $to: exit $code, nothing left behind"
  done
done
[[ "$(cat "$work/model/model.onnx" "$work/model/model.onnx.data" | sha256sum)" == "$sum_before" ]] || { echo "FAIL: source changed"; exit 1; }
echo "ok: source unchanged"
