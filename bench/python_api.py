#!/usr/bin/env python3
"""The Python module's cost and concurrency (docs/BENCHMARKS.md, issue 13).

1. Per-call overhead: a one-node model (Relu on float32 [1, 16]) through
   sarai_rt.InferenceSession.run against `sarai-rt bench` on the same model
   (the runtime's Session::run, no Python): mean time per call of each, and
   their difference.
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
    ap.add_argument("--calls", type=int, default=21000, help="calls of the tiny model per side")
    ap.add_argument("--runs", type=int, default=20, help="runs per thread in the throughput part")
    ap.add_argument("--repeats", type=int, default=3, help="throughput measurements per thread count (median)")
    a = ap.parse_args()
    py_us, cpp_us = overhead(a.cli, a.calls)
    print(f"per call, Relu [1,16]: python {py_us:.1f} us, C++ Session::run {cpp_us:.1f} us, "
          f"overhead {py_us - cpp_us:.1f} us")
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
