#!/usr/bin/python3
"""Pre-quantized ONNX test models in QDQ and QLinear form (onnx.helper + numpy;
no onnxruntime Python package needed).

    /usr/bin/python3 tools/scripts/make_qdq_models.py small OUT_DIR
        Small conv and matmul nets, each in QDQ form (per-tensor and
        per-channel int8 weights, uint8 activations) and in QLinear form
        (QuantizeLinear -> QLinearConv / QLinearMatMul -> DequantizeLinear),
        plus the float net they stand for: OUT_DIR/<name>.onnx.

    /usr/bin/python3 tools/scripts/make_qdq_models.py quantize MODEL.onnx OUT.onnx \\
            --input NAME=FILE.npy [--input ...] [--calib-runs-dir DIR] [--per-tensor]
        A QDQ version of a float model, as quantize_static(quant_format=QDQ)
        writes one: every Conv / MatMul / Gemm (transA = 0) with a constant
        weight gets DequantizeLinear(int8 weight, symmetric, per output
        channel unless --per-tensor), an int32 bias with scale
        x_scale * w_scale when it has a constant bias, and each of its float
        activation inputs and its output one QuantizeLinear ->
        DequantizeLinear (uint8, asymmetric; range [min(0, lo), max(0, hi)]
        over the calibration runs). The calibration runs ONNX Runtime
        (node tools/scripts/ort/run_ort.js) on the float model with those
        tensors added as outputs, once per --input set (repeat --input NAME=
        for several runs: the i-th value of each name forms run i).
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnx.shape_inference
import onnx.version_converter
from onnx import TensorProto, helper, numpy_helper

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_ORT = os.path.join(REPO, "tools", "scripts", "ort", "run_ort.js")


# ---- quantization arithmetic (ONNX QuantizeLinear: round half to even, saturate)

def u8_params(lo, hi):
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi <= lo:
        return np.float32(1.0), np.uint8(0)
    scale = np.float32((hi - lo) / 255.0)
    zp = np.uint8(np.clip(np.round(-lo / scale), 0, 255))
    return scale, zp


def s8_symmetric(w, axis):
    """Per-channel (axis) or per-tensor (axis None) symmetric int8 in [-127, 127]."""
    if axis is None:
        amax = np.abs(w).max()
        scale = np.float32(amax / 127.0 if amax > 0 else 1.0)
        q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
        return q, np.array(scale, np.float32), np.array(0, np.int8)
    red = tuple(i for i in range(w.ndim) if i != axis)
    amax = np.abs(w).max(axis=red)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale, np.zeros(scale.shape, np.int8)


# ---- QDQ insertion

class Builder:
    def __init__(self, graph):
        self.graph = graph
        self.names = {v.name for v in graph.initializer} | {n for node in graph.node for n in list(node.input) + list(node.output)}
        self.inits = {t.name: t for t in graph.initializer}

    def fresh(self, base):
        name, i = base, 1
        while name in self.names:
            i += 1
            name = "%s.%d" % (base, i)
        self.names.add(name)
        return name

    def init(self, base, array):
        name = self.fresh(base)
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(array), name))
        return name


def qdq_pair(b, tensor, scale, zp, nodes):
    """tensor -> QuantizeLinear -> DequantizeLinear; returns the DQ output."""
    s = b.init(tensor + "_scale", np.array(scale, np.float32))
    z = b.init(tensor + "_zero_point", np.array(zp, np.uint8))
    q = b.fresh(tensor + "_QuantizeLinear_Output")
    dq = b.fresh(tensor + "_DequantizeLinear_Output")
    nodes.append(helper.make_node("QuantizeLinear", [tensor, s, z], [q], name=b.fresh(tensor + "_QuantizeLinear")))
    nodes.append(helper.make_node("DequantizeLinear", [q, s, z], [dq], name=b.fresh(tensor + "_DequantizeLinear")))
    return dq


def constants_to_initializers(model):
    """Constant nodes holding a tensor (`value`) become initializers (PaddleOCR's
    exports keep their weights that way)."""
    g = model.graph
    keep = []
    for node in g.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            t = onnx.TensorProto()
            t.CopyFrom(node.attribute[0].t)
            t.name = node.output[0]
            g.initializer.append(t)
        else:
            keep.append(node)
    del g.node[:]
    g.node.extend(keep)
    return model


def targets(graph):
    inits = {t.name for t in graph.initializer}
    out = []
    for node in graph.node:
        if node.op_type not in ("Conv", "MatMul", "Gemm") or len(node.input) < 2 or node.input[1] not in inits:
            continue
        if node.op_type == "Gemm":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if attrs.get("transA", 0) != 0:
                continue
        if node.input[0] in inits:
            continue
        out.append(node)
    return out


def weight_axis(node):
    if node.op_type == "Conv":
        return 0
    if node.op_type == "Gemm":
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        return 0 if attrs.get("transB", 0) else 1
    return 1


def quantize_model(model, ranges, per_channel=True):
    """QDQ form of `model`; ranges: {tensor name: (lo, hi)} of every float
    activation tensor the target ops read or write."""
    g = model.graph
    b = Builder(g)
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    tnodes = targets(g)
    act = {}
    for node in tnodes:
        act.setdefault(node.input[0], None)
        act.setdefault(node.output[0], None)
    graph_outputs = {o.name for o in g.output}
    new_nodes = []
    dq_of = {}
    for t in act:
        if t not in ranges or t in graph_outputs:  # a graph output stays the op's float result
            continue
        scale, zp = u8_params(*ranges[t])
        dq_of[t] = (qdq_pair(b, t, scale, zp, new_nodes), scale)
    qdq_nodes = list(new_nodes)
    new_nodes = []
    target_ids = {id(n) for n in tnodes}
    for node in g.node:
        x_scale = dq_of.get(node.input[0], (None, None))[1] if node.input else None
        # Every reader of a quantized tensor reads its DQ output (not the QDQ nodes themselves).
        for i, name in enumerate(node.input):
            if name in dq_of:
                node.input[i] = dq_of[name][0]
        if id(node) in target_ids:
            w = inits[node.input[1]]
            axis = weight_axis(node) if per_channel else None
            q, s, z = s8_symmetric(w, axis)
            wq = b.init(node.input[1] + "_quantized", q)
            ws = b.init(node.input[1] + "_scale", s)
            wz = b.init(node.input[1] + "_zero_point", z)
            wdq = b.fresh(node.input[1] + "_DequantizeLinear_Output")
            new_nodes.append(helper.make_node("DequantizeLinear", [wq, ws, wz], [wdq],
                                              name=b.fresh(node.input[1] + "_DequantizeLinear"),
                                              axis=axis if axis is not None else 1))
            node.input[1] = wdq
            if len(node.input) > 2 and node.input[2] in inits and x_scale is not None:
                bias = inits[node.input[2]].astype(np.float32)
                bs = (np.float32(x_scale) * s).astype(np.float32)
                if bs.ndim == 0:
                    bs = np.full(bias.shape[-1:], bs, np.float32)
                bq = np.round(bias / np.where(bs > 0, bs, 1)).clip(-2**31, 2**31 - 1).astype(np.int32)
                bqn = b.init(node.input[2] + "_quantized", bq)
                bsn = b.init(node.input[2] + "_scale", bs)
                bdq = b.fresh(node.input[2] + "_DequantizeLinear_Output")
                new_nodes.append(helper.make_node("DequantizeLinear", [bqn, bsn], [bdq],
                                                  name=b.fresh(node.input[2] + "_DequantizeLinear"), axis=0))
                node.input[2] = bdq
        new_nodes.append(node)
    # The QDQ pairs read their tensor itself; a graph output stays the float value.
    del g.node[:]
    g.node.extend(qdq_nodes + new_nodes)
    used = {n for node in g.node for n in node.input}
    keep = [t for t in g.initializer if t.name in used or t.name in graph_outputs]
    del g.initializer[:]
    g.initializer.extend(keep)
    # Topological order (the QDQ nodes first may read values made later).
    g_sorted = toposort(g)
    del g.node[:]
    g.node.extend(g_sorted)
    return model


def toposort(g):
    avail = {t.name for t in g.initializer} | {i.name for i in g.input} | {""}
    pending = list(g.node)
    out = []
    while pending:
        rest = []
        for node in pending:
            if all(i in avail for i in node.input):
                out.append(node)
                avail.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise SystemExit("make_qdq_models.py: graph has a cycle or an unknown input: %s" % rest[0].name)
        pending = rest
    return out


def calibrate(model_path, tensors, runs, workdir):
    """{tensor: (lo, hi)} over the runs (lists of (name, npy path))."""
    m = onnx.load(model_path)
    alias = {}
    for i, t in enumerate(sorted(tensors)):
        a = "calib_%d" % i
        alias[a] = t
        m.graph.node.append(helper.make_node("Identity", [t], [a]))
        m.graph.output.append(helper.make_tensor_value_info(a, TensorProto.FLOAT, None))
    path = os.path.join(workdir, "calib.onnx")
    onnx.save(m, path)
    ranges = {}
    for r, feeds in enumerate(runs):
        out = os.path.join(workdir, "run%d" % r)
        cmd = ["node", RUN_ORT, path, "--output-dir", out, "--quiet"]
        for name, f in feeds:
            cmd += ["--input", "%s=%s" % (name, f)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        for a, t in alias.items():
            v = np.load(os.path.join(out, a + ".npy"))
            lo, hi = float(v.min()), float(v.max())
            if t in ranges:
                lo, hi = min(lo, ranges[t][0]), max(hi, ranges[t][1])
            ranges[t] = (lo, hi)
    return ranges


# ---- small models

def small_models(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(0)
    nets = {}
    # Conv net: Conv(3->8, 3x3, pad 1) -> Relu -> Conv(8->4, 3x3, stride 2, pad 1)
    w1 = rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)
    b1 = rng.normal(0, 0.1, 8).astype(np.float32)
    w2 = rng.normal(0, 0.2, (4, 8, 3, 3)).astype(np.float32)
    b2 = rng.normal(0, 0.1, 4).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2])]
    g = helper.make_graph(nodes, "conv_net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
                          [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))])
    nets["conv_net"] = (g, {"x": (-1.0, 1.0), "c1": (-2.0, 2.0), "r1": (0.0, 2.0), "y": (-1.5, 1.5)})
    # MatMul net: MatMul(x [2, 5, 16], W1 [16, 24]) -> Relu -> Gemm-free MatMul(·, W2 [24, 8]) + Add(b)
    m1 = rng.normal(0, 0.25, (16, 24)).astype(np.float32)
    m2 = rng.normal(0, 0.2, (24, 8)).astype(np.float32)
    mb = rng.normal(0, 0.1, 8).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "m1"], ["h"]),
             helper.make_node("Relu", ["h"], ["hr"]),
             helper.make_node("MatMul", ["hr", "m2"], ["o"]),
             helper.make_node("Add", ["o", "mb"], ["y"])]
    g = helper.make_graph(nodes, "matmul_net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, 8])],
                          [numpy_helper.from_array(a, n) for a, n in ((m1, "m1"), (m2, "m2"), (mb, "mb"))])
    nets["matmul_net"] = (g, {"x": (-1.0, 1.0), "h": (-2.5, 2.5), "hr": (0.0, 2.5), "o": (-2.0, 2.0)})
    for name, (g, ranges) in nets.items():
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, os.path.join(out_dir, name + ".onnx"))
        for per_channel in (False, True):
            q = quantize_model(onnx.load(os.path.join(out_dir, name + ".onnx")), ranges, per_channel)
            onnx.checker.check_model(q)
            onnx.save(q, os.path.join(out_dir, "%s_qdq_%s.onnx" % (name, "per_channel" if per_channel else "per_tensor")))
    # QLinear form: x -> QuantizeLinear -> QLinearConv -> DequantizeLinear.
    sx, zx = u8_params(-1.0, 1.0)
    sy, zy = u8_params(-2.0, 2.0)
    q, s, z = s8_symmetric(w1, 0)
    bq = np.round(b1 / (sx * s)).astype(np.int32)
    inits = [numpy_helper.from_array(np.array(v, dt), n) for v, dt, n in
             ((sx, np.float32, "sx"), (zx, np.uint8, "zx"), (sy, np.float32, "sy"), (zy, np.uint8, "zy"))]
    inits += [numpy_helper.from_array(q, "wq"), numpy_helper.from_array(s, "ws"), numpy_helper.from_array(z, "wz"),
              numpy_helper.from_array(bq, "bq")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
             helper.make_node("QLinearConv", ["xq", "sx", "zx", "wq", "ws", "wz", "sy", "zy", "bq"], ["yq"], pads=[1, 1, 1, 1]),
             helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"])]
    g = helper.make_graph(nodes, "qlinear_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out_dir, "qlinear_conv.onnx"))
    q, s, z = s8_symmetric(m1, None)
    sh, zh = u8_params(-2.5, 2.5)
    inits = [numpy_helper.from_array(np.array(v, dt), n) for v, dt, n in
             ((sx, np.float32, "sx"), (zx, np.uint8, "zx"), (sh, np.float32, "sy"), (zh, np.uint8, "zy"))]
    inits += [numpy_helper.from_array(q, "wq"), numpy_helper.from_array(s, "ws"), numpy_helper.from_array(z, "wz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
             helper.make_node("QLinearMatMul", ["xq", "sx", "zx", "wq", "ws", "wz", "sy", "zy"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"])]
    g = helper.make_graph(nodes, "qlinear_matmul", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, 24])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out_dir, "qlinear_matmul.onnx"))
    print("wrote", ", ".join(sorted(os.listdir(out_dir))))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("small")
    s.add_argument("out_dir")
    q = sub.add_parser("quantize")
    q.add_argument("model")
    q.add_argument("out")
    q.add_argument("--input", action="append", default=[], help="NAME=FILE.npy (repeat a name for more runs)")
    q.add_argument("--per-tensor", action="store_true")
    a = ap.parse_args()
    if a.cmd == "small":
        small_models(a.out_dir)
        return
    by_name = {}
    for spec in a.input:
        name, _, f = spec.partition("=")
        by_name.setdefault(name, []).append(f)
    nruns = max((len(v) for v in by_name.values()), default=0)
    if nruns == 0:
        sys.exit("make_qdq_models.py: quantize needs --input NAME=FILE.npy")
    runs = [[(n, fs[min(i, len(fs) - 1)]) for n, fs in by_name.items()] for i in range(nruns)]
    model = onnx.load(a.model)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:  # per-axis DequantizeLinear is opset 13
        model = onnx.version_converter.convert_version(onnx.shape_inference.infer_shapes(model), 13)
    model = constants_to_initializers(model)
    tensors = set()
    for node in targets(model.graph):
        tensors.add(node.input[0])
        tensors.add(node.output[0])
    with tempfile.TemporaryDirectory() as work:
        src = os.path.join(work, "float.onnx")
        onnx.save(model, src)
        ranges = calibrate(src, tensors, runs, work)
    nq = len(targets(model.graph))
    q = quantize_model(model, ranges, per_channel=not a.per_tensor)
    onnx.save(q, a.out)
    ops = {}
    for n in q.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    print("%s: %d ops quantized, %s" % (a.out, nq, ops))


if __name__ == "__main__":
    main()
