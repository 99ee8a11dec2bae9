#!/usr/bin/env bash
# ctest entry: `sarai-rt convert --to onnx` writes a quantized ONNX model that
# ONNX Runtime runs, close to the FP32 model.
#   check_onnx_export.sh SARAI_RT MODEL INPUT_SPEC WORK_DIR [CONVERT_OPTION...]
# INPUT_SPEC: NAME=SHAPE (deterministic standard-normal float32, e.g.
# mel=1x80x200) or NAME=FILE.npy; several separated by ';'.
# Runs
#   SARAI_RT convert MODEL --to onnx -o WORK_DIR/quantized.onnx [CONVERT_OPTION...]
#   onnx.checker.check_model(full_check=True) on the export (python3-onnx)
#   node tools/scripts/ort/run_ort.js on MODEL and on WORK_DIR/quantized.onnx
# and passes when the export is valid ONNX, every output has cosine >=
# MIN_COSINE (environment, default 0.999) between the two, the same shapes,
# and WORK_DIR holds no temp files afterwards. CONVERT_OPTION may be e.g.
# `--onnx-weights s7`; the weight encoding the export used is printed.
# Exit 0 pass, 1 fail, 2 usage, 77 (ctest: skipped) when ONNX Runtime is
# not installed (tools/scripts/ort/setup.sh installs it).
set -euo pipefail
src="$(cd "$(dirname "$0")/../.." && pwd)"
if [[ $# -lt 4 ]]; then
  echo "usage: check_onnx_export.sh SARAI_RT MODEL INPUT_SPEC WORK_DIR [CONVERT_OPTION...]" >&2
  exit 2
fi
sarai="$1" model="$2" spec="$3" work="$4"
shift 4
ort_dir="${SARAI_ORT_DIR:-$HOME/.cache/sarai-rt/ort}"
if ! command -v node >/dev/null || [[ ! -f "$ort_dir/node_modules/onnxruntime-node/package.json" ]]; then
  echo "skipped: ONNX Runtime (onnxruntime-node) is not installed in $ort_dir (run tools/setup.sh)"
  exit 77
fi
[[ -f "$model" ]] || { echo "check_onnx_export.sh: $model: no such file" >&2; exit 2; }

rm -rf "$work"
mkdir -p "$work/in" "$work/fp32" "$work/int8"
out="$work/quantized.onnx"

# Inputs: one .npy per NAME=SHAPE, seeded from the name so reruns match.
inputs=()
IFS=';' read -r -a specs <<< "$spec"
for s in "${specs[@]}"; do
  name="${s%%=*}" value="${s#*=}"
  if [[ "$value" == *.npy ]]; then
    inputs+=(--input "$name=$value")
  else
    file="$work/in/$(echo "$name" | tr '/\\:' '___').npy"
    /usr/bin/python3 - "$file" "$name" "$value" <<'EOF'
import sys, zlib
import numpy as np
path, name, shape = sys.argv[1], sys.argv[2], sys.argv[3]
dims = [int(d) for d in shape.replace(",", "x").split("x")]
rng = np.random.default_rng(zlib.crc32(name.encode()))
np.save(path, rng.standard_normal(dims).astype(np.float32))
EOF
    inputs+=(--input "$name=$file")
  fi
done

echo "+ $sarai convert $model --to onnx -o $out $*"
"$sarai" convert "$model" --to onnx -o "$out" "$@"
leftover=$(find "$work" -maxdepth 1 -name '*.tmp*' | head -5)
if [[ -n "$leftover" ]]; then
  echo "FAIL: temp files left behind: $leftover"
  exit 1
fi
[[ -f "$out" && -f "$out.data" ]] || { echo "FAIL: $out or $out.data was not written"; exit 1; }

# Valid ONNX, zero-point forms and all (the checker resolves the .data file
# next to the model); which weight encoding it holds.
/usr/bin/python3 - "$out" <<'EOF'
import sys
try:
    import onnx
except ImportError:
    print("note: python3-onnx is not installed; onnx.checker skipped")
    sys.exit(0)
path = sys.argv[1]
try:
    onnx.checker.check_model(path, full_check=True)
except Exception as e:  # the checker's own exception types vary by version
    sys.exit(f"FAIL: {path}: onnx.checker: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
meta = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
print(f"onnx.checker: ok; weight encoding {meta.get('sarai.onnx_weights', '?')}")
EOF

node "$src/tools/scripts/ort/run_ort.js" "$model" "${inputs[@]}" --output-dir "$work/fp32"
node "$src/tools/scripts/ort/run_ort.js" "$out" "${inputs[@]}" --output-dir "$work/int8"

exec /usr/bin/python3 - "$work/fp32" "$work/int8" "${MIN_COSINE:-0.999}" <<'EOF'
import os, sys
import numpy as np
ref_dir, got_dir, min_cos = sys.argv[1], sys.argv[2], float(sys.argv[3])
names = sorted(f for f in os.listdir(ref_dir) if f.endswith(".npy"))
if not names:
    sys.exit(f"FAIL: no outputs in {ref_dir}")
ok = True
for f in names:
    ref = np.load(os.path.join(ref_dir, f)).astype(np.float64)
    path = os.path.join(got_dir, f)
    if not os.path.exists(path):
        print(f"FAIL {f}: missing from the quantized model's outputs")
        ok = False
        continue
    got = np.load(path).astype(np.float64)
    if ref.shape != got.shape:
        print(f"FAIL {f}: shape {list(got.shape)}, FP32 model gives {list(ref.shape)}")
        ok = False
        continue
    a, b = ref.ravel(), got.ravel()
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    cos = float(a @ b / denom) if denom > 0 else (1.0 if np.array_equal(a, b) else 0.0)
    err = float(np.abs(a - b).max()) if a.size else 0.0
    good = np.isfinite(b).all() and cos >= min_cos
    print(f"{'ok  ' if good else 'FAIL'} {f[:-4]}: {list(ref.shape)} cosine {cos:.6f} (min {min_cos}), "
          f"max abs err {err:.4g}, max|fp32| {float(np.abs(a).max()) if a.size else 0:.4g}")
    ok &= bool(good)
sys.exit(0 if ok else 1)
EOF
