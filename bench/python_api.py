#!/usr/bin/env python3
"""The Python module's cost and concurrency (docs/BENCHMARKS.md, issue 13).

1. Per-call overhead: a one-node model (Relu on float32 [1, 16]) through
   sarai_rt.InferenceSession.run against `sarai-rt bench` on the same model
   (the runtime's Session::run, no Python): mean time per call of each, and
   their difference; with --overhead-model, the same on a real model (P50
   of 1,000 calls each side, 3 rounds alternated).
2. Throughput of one session called from 1 and from 2 Python threads
   (threads=1 per call, the GIL released while running): runs per second of
   each, their ratio, and the peak RSS after each.

  PYTHONPATH=build/release/python /usr/bin/python3 bench/python_api.py \
      --cli build/release/sarai-rt --model X.sarai --input-shape 1x80x3000
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import tempfile
import threading
import time

import numpy as np
import onnx
from onnx import TensorProto, helper

import sarai_rt


def tiny_model(path):
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


def overhead(cli, calls):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "tiny.onnx")
        tiny_model(path)
        s = sarai_rt.InferenceSession(path, threads=1)
        feed = {"x": np.ones((1, 16), np.float32)}
        for _ in range(1000):
            s.run(None, feed)
        per_call = []
        for _ in range(21):  # 21 batches: a median of batch means
            t0 = time.perf_counter()
            for _ in range(calls // 21):
                s.run(None, feed)
            per_call.append((time.perf_counter() - t0) / (calls // 21) * 1e6)
        py_us = statistics.median(per_call)
        out = subprocess.run([cli, "bench", path, "--random", "x=1x16", "--threads", "1", "--warmup", "1000",
                              "--runs", str(calls), "--json"], check=True, capture_output=True, text=True).stdout
        cpp_us = 1e6 / json.loads(out)["runs_per_s"]  # its mean per call: p50_ms has 1 us steps
    return py_us, cpp_us


def overhead_on(cli, model, shape, calls, repeats):
    """Median per-call time of `model` on one input from Python and from
    `sarai-rt bench` (same session options, threads=1), alternated."""
    s = sarai_rt.InferenceSession(model, threads=1)
    name = s.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    py, cpp = [], []
    for _ in range(repeats):
        for _ in range(20):
            s.run(None, {name: x})
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            s.run(None, {name: x})
            times.append(time.perf_counter() - t0)
        py.append(statistics.median(times) * 1e6)
        out = subprocess.run([cli, "bench", model, "--random", f"{name}={'x'.join(map(str, shape))}", "--threads", "1",
                              "--warmup", "20", "--runs", str(calls), "--json"],
                             check=True, capture_output=True, text=True).stdout
        cpp.append(json.loads(out)["p50_ms"] * 1e3)
    return py, cpp


def throughput(model, shape, threads, runs_each):
    s = sarai_rt.InferenceSession(model, threads=1)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    name = s.get_inputs()[0].name
    for _ in range(2):
        s.run(None, {name: x})

    def work():
        for _ in range(runs_each):
            s.run(None, {name: x})
    t0 = time.perf_counter()
    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return threads * runs_each / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", required=True, help="the sarai-rt binary, for the no-Python baseline")
    ap.add_argument("--model", required=True, help="model for the throughput part")
    ap.add_argument("--input-shape", required=True, help="its input's shape, e.g. 1x80x3000")
    ap.add_argument("--overhead-model", help="also: Python vs C++ per call on this model (e.g. the fixture, 3 s)")
    ap.add_argument("--overhead-shape", default="1x80x300", help="its input's shape")
    ap.add_argument("--calls", type=int, default=21000, help="calls of the tiny model per side")
    ap.add_argument("--runs", type=int, default=20, help="runs per thread in the throughput part")
    ap.add_argument("--repeats", type=int, default=3, help="throughput measurements per thread count (median)")
    a = ap.parse_args()
    py_us, cpp_us = overhead(a.cli, a.calls)
    print(f"per call, Relu [1,16]: python {py_us:.1f} us, C++ Session::run {cpp_us:.1f} us, "
          f"overhead {py_us - cpp_us:.1f} us")
    if a.overhead_model:
        oshape = [int(d) for d in a.overhead_shape.split("x")]
        py, cpp = overhead_on(a.cli, a.overhead_model, oshape, 1000, 3)
        print(f"per call, {os.path.basename(a.overhead_model)} {a.overhead_shape} (1,000 calls x 3, alternated): "
              f"python P50 {' / '.join(f'{v:.0f}' for v in py)} us, C++ P50 {' / '.join(f'{v:.0f}' for v in cpp)} us, "
              f"overhead of the medians {statistics.median(py) - statistics.median(cpp):.0f} us")
    shape = [int(d) for d in a.input_shape.split("x")]
    one, two = [], []
    for _ in range(a.repeats):  # interleaved, so drift hits both alike
        one.append(throughput(a.model, shape, 1, a.runs))
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        two.append(throughput(a.model, shape, 2, a.runs))
        rss2 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    r1, r2 = statistics.median(one), statistics.median(two)
    print(f"one session, threads=1 per call: 1 caller {r1:.2f} runs/s, 2 callers {r2:.2f} runs/s, "
          f"ratio {r2 / r1:.2f}x; peak RSS {rss1:.0f} MB after 1 caller, {rss2:.0f} MB after 2")


if __name__ == "__main__":
    main()
