#!/usr/bin/python3
"""The side-by-side baseline for `sarai-rt convert`'s memory: quantize a model
the way ONNX Runtime's quantize_dynamic does it, entirely in memory.

    /usr/bin/time -v /usr/bin/python3 bench/quantize_in_memory.py MODEL.onnx OUT.onnx [--max-rss-gb G]

onnxruntime's Python package is not installable here (no PyPI), so this
script reproduces the memory pattern of quantize_dynamic(per_channel=True,
weight_type=QInt8) with Debian's python3-onnx and numpy:

  1. onnx.load(MODEL, load_external_data=True): every external tensor is read
     into protobuf memory (the FP32 model, once);
  2. copy.deepcopy(model): the quantizer works on its own copy while the
     caller's model stays alive (the FP32 model, twice);
  3. every MatMul whose B is a 2-D float initializer: W -> int8 symmetric per
     output channel (axis 1) in numpy, added as new initializers
     W_quantized / W_scale / W_zero_point, the node rewritten to
     DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul(x_scale * W_scale);
     the FP32 originals stay in the model until every node is done
     (quantize_dynamic removes unused initializers at the very end);
  4. onnx.save_model(..., save_as_external_data=True) into OUT.onnx +
     OUT.onnx.data.

Prints the wall time of each phase with the process's RSS and peak RSS
(VmRSS / VmHWM); the caller measures the peak with /usr/bin/time -v.
--max-rss-gb stops the run (exit 3) as soon as the RSS passes the limit, so a
big model cannot take the machine down; it then says how far it got.
"""

import argparse
import copy
import os
import sys
import threading
import time

import numpy as np
import onnx
import onnx.numpy_helper
from onnx import TensorProto, helper

T0 = time.time()
PHASE = ["start"]


def rss_gb():
    """(VmRSS, VmHWM) of this process in GB."""
    cur = peak = 0.0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1]) / 1e6
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1e6
    return cur, peak


def log(msg):
    cur, peak = rss_gb()
    print(f"[{time.time() - T0:7.1f} s] rss {cur:6.2f} GB  peak {peak:6.2f} GB  {msg}", flush=True)


def watchdog(limit_gb):
    while True:
        cur, _ = rss_gb()
        if cur > limit_gb:
            log(f"STOPPED: RSS passed --max-rss-gb {limit_gb} during '{PHASE[0]}'")
            os._exit(3)
        time.sleep(0.2)


def quantize_per_channel(w):
    """Symmetric int8 per output channel (axis 1 of [K, N]), as quantize_dynamic's QInt8 weights."""
    amax = np.abs(w).max(axis=0)
    scale = (amax / 127.0).astype(np.float32)
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return q, scale


def quantize_model(model):
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    new_nodes, count, n_matmul = [], 0, sum(n.op_type == "MatMul" for n in g.node)
    for node in g.node:
        w = inits.get(node.input[1]) if node.op_type == "MatMul" else None
        if w is None or len(w.dims) != 2 or w.data_type != TensorProto.FLOAT:
            new_nodes.append(node)
            continue
        arr = onnx.numpy_helper.to_array(w)  # a copy: protobuf hands out raw_data as new bytes
        q, scale = quantize_per_channel(arr)
        base = w.name
        g.initializer.append(onnx.numpy_helper.from_array(q, base + "_quantized"))
        g.initializer.append(onnx.numpy_helper.from_array(scale, base + "_scale"))
        g.initializer.append(onnx.numpy_helper.from_array(np.zeros(q.shape[1], np.int8), base + "_zero_point"))
        del arr, q
        x, y, p = node.input[0], node.output[0], node.name or node.output[0]
        new_nodes += [
            helper.make_node("DynamicQuantizeLinear", [x], [p + "_xq", p + "_xs", p + "_xzp"], name=p + "_dql"),
            helper.make_node("MatMulInteger", [p + "_xq", base + "_quantized", p + "_xzp", base + "_zero_point"],
                             [p + "_i32"], name=p + "_mmi"),
            helper.make_node("Cast", [p + "_i32"], [p + "_f32"], name=p + "_cast", to=TensorProto.FLOAT),
            helper.make_node("Mul", [p + "_xs", base + "_scale"], [p + "_s"], name=p + "_scale"),
            helper.make_node("Mul", [p + "_f32", p + "_s"], [y], name=p + "_mul"),
        ]
        count += 1
        if count % 16 == 0 or count == n_matmul:
            log(f"quantized {count} MatMul weights")
    del g.node[:]
    g.node.extend(new_nodes)
    # The end of quantize_dynamic: drop the FP32 weights nothing reads any more.
    used = {i for n in g.node for i in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    return count


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--max-rss-gb", type=float, default=0, help="stop (exit 3) when RSS passes this")
    a = ap.parse_args()
    if a.max_rss_gb > 0:
        threading.Thread(target=watchdog, args=(a.max_rss_gb,), daemon=True).start()

    PHASE[0] = "load"
    model = onnx.load(a.model, load_external_data=True)
    log(f"loaded {a.model} with its external data")
    PHASE[0] = "deepcopy"
    work = copy.deepcopy(model)
    log("deep-copied the model")
    PHASE[0] = "quantize"
    n = quantize_model(work)
    if not any(o.domain in ("", "ai.onnx") and o.version >= 11 for o in work.opset_import):
        for o in work.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = 11
    log(f"quantized {n} MatMul weights, FP32 originals dropped")
    PHASE[0] = "save"
    location = os.path.basename(a.out) + ".data"
    if os.path.exists(os.path.join(os.path.dirname(os.path.abspath(a.out)), location)):
        os.remove(os.path.join(os.path.dirname(os.path.abspath(a.out)), location))  # save appends otherwise
    onnx.save_model(work, a.out, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=1024)
    log(f"saved {a.out} (+ {location})")
    del model
    print(f"total {time.time() - T0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
