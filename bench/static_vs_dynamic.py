#!/usr/bin/python3
"""Static vs dynamic activation quantization on one model, side by side.

Converts MODEL.onnx three ways (dynamic; --static minmax; --static
percentile), each optionally with extra convert flags (e.g. mixed precision),
measures every blob against the FP32 model on the evaluation sets with
`sarai-rt compare`, and times every blob with `sarai-rt bench` in
alternating rounds (so machine noise hits all of them alike). Prints one
markdown table: cosine, argmax agreement, P50 (median over rounds) and the
speed ratio against dynamic.

    /usr/bin/python3 bench/static_vs_dynamic.py --sarai build/release/sarai-rt \\
        --model rec.onnx --calibration calib --eval eval --bench-input x=eval/000/x.npy \\
        [--rounds 5] [--runs 50] [--threads 2] [--work-dir DIR] [--convert-flags "..."]
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode not in (0, 3):  # compare exits 3 when a threshold does not hold
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr.strip()}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sarai", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--calibration", required=True)
    ap.add_argument("--eval", required=True)
    ap.add_argument("--bench-input", required=True, help="NAME=FILE.npy for sarai-rt bench")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--percentile", default="99.99")
    ap.add_argument("--convert-flags", default="", help="extra flags for every convert")
    ap.add_argument("--work-dir", default=None)
    a = ap.parse_args()
    work = a.work_dir or tempfile.mkdtemp(prefix="static-vs-dynamic-")
    os.makedirs(work, exist_ok=True)
    extra = shlex.split(a.convert_flags)
    calib = ["--calibration", a.calibration]
    if "--auto-keep-fp32" in extra:
        extra += calib
    variants = [
        ("dynamic", []),
        ("static minmax", ["--static"] + ([] if "--auto-keep-fp32" in extra else calib)),
        (f"static percentile {a.percentile}", ["--static", "--calibration-method", "percentile", "--percentile",
                                               a.percentile] + ([] if "--auto-keep-fp32" in extra else calib)),
    ]
    rows = []
    for i, (name, flags) in enumerate(variants):
        blob = os.path.join(work, f"v{i}.sarai")
        conv = run([a.sarai, "convert", a.model, "-o", blob, "-q", "--threads", str(a.threads)] + extra + flags)
        kept = next((l.split("weights: ")[1].split(";")[0] for l in conv.splitlines() if "weights: " in l), "")
        kept = kept.replace(" quantized to INT8", " INT8").replace(" kept in FP32", " FP32")
        cmp = json.loads(run([a.sarai, "compare", a.model, blob, "--inputs-dir", a.eval, "--runs", "1",
                              "--threads", str(a.threads), "--json"]))
        out = cmp["outputs"][0]
        rows.append({"name": name, "blob": blob, "cosine": out["cosine"], "argmax": out.get("argmax_agreement"),
                     "kept": kept, "p50": []})
    for _ in range(a.rounds):
        for r in rows:
            b = json.loads(run([a.sarai, "bench", r["blob"], "--input", a.bench_input, "--runs", str(a.runs),
                                "--threads", str(a.threads), "--json"]))
            r["p50"].append(b["p50_ms"])
    base = statistics.median(rows[0]["p50"])
    print(f"model {a.model}; {a.rounds} alternating rounds of {a.runs} runs, {a.threads} threads; "
          f"accuracy on {a.eval}; extra convert flags: {' '.join(extra) or 'none'}")
    print()
    print("| quantization | weights | cosine | argmax | P50 ms (median of rounds) | speed vs dynamic |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        p50 = statistics.median(r["p50"])
        argmax = f"{100 * r['argmax']:.2f} %" if r["argmax"] is not None else "-"
        print(f"| {r['name']} | {r['kept']} | {r['cosine']:.6f} | {argmax} | {p50:.2f} "
              f"({min(r['p50']):.2f}–{max(r['p50']):.2f}) | {base / p50:.3f}× |")


if __name__ == "__main__":
    main()
