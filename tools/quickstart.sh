#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, and runs the
# main job on the small Whisper-style encoder that ships in tests/fixtures.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
tools/build.sh release
bin=build/release/sarai-rt
model=tests/fixtures/whisper_tiny_encoder.onnx
echo
echo "== sarai-rt inspect $model"
"$bin" inspect "$model"
echo
echo "== sarai-rt run $model (30 s of audio: 3000 mel frames, random input)"
"$bin" run "$model" --random mel=1x80x3000 --runs 3 --output-dir build/quickstart-out
echo
echo "== sarai-rt convert: INT8 per output channel into a .sarai blob"
"$bin" convert "$model" -o build/quickstart-out/whisper_tiny_encoder.sarai
echo
echo "== sarai-rt verify"
"$bin" verify build/quickstart-out/whisper_tiny_encoder.sarai
echo
echo "== sarai-rt run the blob (INT8 kernels), with its memory plan and peak RSS"
"$bin" run build/quickstart-out/whisper_tiny_encoder.sarai --random mel=1x80x3000 --runs 3 --report-memory \
  --output-dir build/quickstart-out/int8
echo
echo "== sarai-rt compare: INT8 against FP32 on the same input, with the users' thresholds (exit 3 if one fails)"
"$bin" compare "$model" build/quickstart-out/whisper_tiny_encoder.sarai --random mel=1x80x3000 \
  --min-cosine 0.98 --max-mse 0.01 --max-mae 0.05
echo
echo "== sarai-rt bench the blob"
"$bin" bench build/quickstart-out/whisper_tiny_encoder.sarai --random mel=1x80x3000 --runs 20
