#!/usr/bin/env bash
# ctest entry: a convert interrupted midway by SIGINT, SIGTERM, SIGHUP or
# SIGQUIT, or by a closed pipe on its stderr (SIGPIPE), exits 128+signal and
# leaves neither the output nor its temp file (interrupted during the
# accuracy check, after the rename: exits 128+signal, the output complete); after a SIGKILL (which no
# handler sees) the next convert to the same output removes the leftover
# and says so; the source is unchanged. The model (~100 MB of weights) comes from
# tools/scripts/make_big_encoder.py at a small size so the convert takes long enough
# to be caught in the middle.
#   convert_interrupt.sh SARAI_RT WORK_DIR
set -euo pipefail
src="$(cd "$(dirname "$0")/../.." && pwd)"
sarai="$1" work="$2"
rm -rf "$work"; mkdir -p "$work/model" "$work/out"
/usr/bin/python3 "$src/tools/scripts/make_big_encoder.py" "$work/model" --layers 6 --d-model 512 --ffn 2048 --heads 8 >/dev/null
# Waits (up to 5 s) until a temp file exists in out/ (the convert is under
# way) or the convert $1 has ended.
wait_for_temp() {
  for _ in $(seq 1 500); do
    compgen -G "$work/out/*.tmp-*" >/dev/null && return
    kill -0 "$1" 2>/dev/null || return
    sleep 0.01
  done
}
# A signal after the output was renamed into place (during the accuracy
# check): exit 128+signal, the output complete, no temp file.
check_complete() {
  local sig="$1" to="$2" code="$3" out="$work/out/m.$2"
  [[ $code -eq $((128 + $(kill -l "$sig"))) ]] || { echo "FAIL: SIG$sig --to $to during the check exited $code"; exit 1; }
  if compgen -G "$work/out/*.tmp-*" >/dev/null; then echo "FAIL: SIG$sig --to $to left $(ls -A "$work/out")"; exit 1; fi
  [[ -f "$out" ]] || { echo "FAIL: SIG$sig --to $to during the check: no $out"; exit 1; }
  if [[ $to == sarai ]]; then "$sarai" verify "$out" >/dev/null || { echo "FAIL: SIG$sig: $out does not verify"; exit 1; }; fi
  echo "ok: SIG$sig --to $to during the accuracy check: exit $code, the output complete"
  rm -rf "$work/out"/*
}
sum_before=$(cat "$work/model/model.onnx" "$work/model/model.onnx.data" | sha256sum)
for sig in INT TERM HUP QUIT; do
  for to in sarai onnx; do
    out="$work/out/m.$to"
    "$sarai" convert "$work/model/model.onnx" -o "$out" --to "$to" >/dev/null 2>"$work/err" &
    pid=$!
    wait_for_temp "$pid"
    kill -"$sig" "$pid" 2>/dev/null || true
    set +e; wait "$pid"; code=$?; set -e
    if [[ $code -eq 0 ]]; then
      echo "note: SIG$sig --to $to arrived after the convert finished"; rm -rf "$work/out"/*; continue
    fi
    if grep -q "is complete, its accuracy check did not finish" "$work/err"; then
      check_complete "$sig" "$to" "$code"; continue
    fi
    left=$(ls -A "$work/out")
    if [[ -n "$left" ]]; then echo "FAIL: SIG$sig --to $to left: $left"; exit 1; fi
    expected=$((128 + $(kill -l "$sig")))
    if [[ $code -ne $expected ]]; then echo "FAIL: SIG$sig --to $to exited $code, expected $expected: $(cat "$work/err")"; exit 1; fi
    echo "ok: SIG$sig --to $to: exit $code, nothing left behind"
  done
done
# SIGPIPE: stderr is a pipe whose reader leaves after the first byte.
for to in sarai onnx; do
  out="$work/out/m.$to"
  set +e
  "$sarai" convert "$work/model/model.onnx" -o "$out" --to "$to" 2>&1 >/dev/null | head -c 1 >/dev/null
  code=${PIPESTATUS[0]}
  set -e
  left=$(ls -A "$work/out")
  if [[ $code -eq 0 ]]; then
    echo "note: --to $to finished before its stderr closed"; rm -rf "$work/out"/*; continue
  fi
  if [[ -f "$out" && $code -eq 141 ]]; then check_complete PIPE "$to" "$code"; continue; fi
  if [[ -n "$left" ]]; then echo "FAIL: SIGPIPE --to $to left: $left"; exit 1; fi
  if [[ $code -ne 141 ]]; then echo "FAIL: SIGPIPE --to $to exited $code, expected 141"; exit 1; fi
  echo "ok: SIGPIPE --to $to: exit $code, nothing left behind"
done
# A signal during the accuracy check (once the output exists): it stops at
# its next step and the output stays, complete.
for to in sarai onnx; do
  out="$work/out/m.$to"
  "$sarai" convert "$work/model/model.onnx" -o "$out" --to "$to" >/dev/null 2>"$work/err" &
  pid=$!
  for _ in $(seq 1 3000); do [[ -f "$out" ]] && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.01; done
  kill -INT "$pid" 2>/dev/null || true
  set +e; wait "$pid"; code=$?; set -e
  if [[ $code -eq 0 ]]; then echo "note: --to $to: the check finished before SIGINT"; rm -rf "$work/out"/*; continue; fi
  grep -q "is complete, its accuracy check did not finish" "$work/err" ||
    { echo "FAIL: SIGINT during the check --to $to: $(cat "$work/err")"; exit 1; }
  check_complete INT "$to" "$code"
done
# SIGKILL: the temp file stays; the next convert to that output removes it.
for to in sarai onnx; do
  out="$work/out/m.$to"
  "$sarai" convert "$work/model/model.onnx" -o "$out" --to "$to" >/dev/null 2>&1 &
  pid=$!
  wait_for_temp "$pid"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  stale=$(cd "$work/out" && ls -A | grep "\.tmp-$pid\$" || true)
  if [[ -z "$stale" ]]; then echo "note: --to $to finished before SIGKILL"; rm -rf "$work/out"/*; continue; fi
  "$sarai" convert "$work/model/model.onnx" -o "$out" --to "$to" >/dev/null 2>"$work/err"
  if compgen -G "$work/out/*.tmp-*" >/dev/null; then echo "FAIL: SIGKILL --to $to: left $(ls -A "$work/out")"; exit 1; fi
  for f in $stale; do
    grep -q "removed $work/out/$f, left by a writer that no longer runs" "$work/err" ||
      { echo "FAIL: SIGKILL --to $to: no word of removing $f: $(cat "$work/err")"; exit 1; }
  done
  echo "ok: SIGKILL --to $to: the next convert removed $(echo $stale) and said so"
  rm -rf "$work/out"/*
done
[[ "$(cat "$work/model/model.onnx" "$work/model/model.onnx.data" | sha256sum)" == "$sum_before" ]] || { echo "FAIL: source changed"; exit 1; }
echo "ok: source unchanged"
