#!/usr/bin/python3
"""Generate a big Whisper-style audio encoder to measure the converter on.

    /usr/bin/python3 tools/scripts/make_big_encoder.py OUT_DIR [--layers 22] [--d-model 2048]
        [--ffn 8192] [--heads 16] [--mels 128] [--positions 1500] [--seed 20240]

Writes OUT_DIR/model.onnx (the graph, a few hundred KB) and
OUT_DIR/model.onnx.data (every initializer, FP32, each at a 4096-byte
aligned offset, ONNX Runtime's convention for mapping external data in
place). With the defaults: about 1.12 B parameters, 4.5 GB (4.2 GiB) of
data, like the users' 4.3 GB model. Never commit the output.

The graph mirrors tests/fixtures/whisper_tiny_encoder.onnx (tools/scripts/make_fixtures.py)
but is built with onnx.helper, not torch, so it needs only numpy and onnx:

    mel [1, mels, frames]
    Conv1d(mels -> d, k3, pad 1) + GELU; Conv1d(d -> d, k3, stride 2, pad 1) + GELU
    Transpose -> [1, T, d]; + positional_embedding[:T] (Shape -> Gather -> Slice)
    layers x pre-LN block: x + out(attn(ln(x))); x + fc2(gelu(fc1(ln(x))))
        linear layers as MatMul(x, W[K, N]) + Add(bias), as torch exports them;
        the key projection has no bias (as in Whisper)
    LayerNormalization -> encoder_out [1, T, d]
    GELU is the exact one: 0.5 * x * (1 + erf(x / sqrt(2))).

Deterministic: tensor i is drawn from numpy's PCG64 seeded with (seed, i), so
two runs write byte-identical files. Memory: one tensor at a time (the largest
FFN weight, d*ffn*4 bytes = 64 MiB by default), written straight to the data
file; the ModelProto itself only holds external-data references.

Weights: normal with std 1/sqrt(fan_in); the residual branches' output
projections (attn.out, fc2) are further scaled by 1/sqrt(2 * layers) so the
residual stream grows slowly over the layers (GPT-2's trick; it is 0.5 for
the fixture's 2 layers, matching make_fixtures.py). Biases N(0, 0.1), LN
gains N(1, 0.1), LN biases N(0, 0.05).
"""

import argparse
import math
import os
import sys
import time

import numpy as np
import onnx
import onnx.numpy_helper
from onnx import TensorProto, helper

OPSET = 17
ALIGN = 4096


def sinusoids(length, channels, max_timescale=10000.0):
    """Whisper's sinusoidal position table, [length, channels] float32."""
    assert channels % 2 == 0
    inc = math.log(max_timescale) / (channels // 2 - 1)
    inv = np.exp(-inc * np.arange(channels // 2, dtype=np.float64))
    t = np.arange(length, dtype=np.float64)[:, None] * inv[None, :]
    return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


class DataWriter:
    """Appends tensors to the external data file, each at an aligned offset."""

    def __init__(self, path, location, seed):
        self.f = open(path, "wb")
        self.location = location
        self.seed = seed
        self.offset = 0
        self.count = 0
        self.params = 0
        self.initializers = []

    def _rng(self):
        rng = np.random.Generator(np.random.PCG64([self.seed, self.count]))
        self.count += 1
        return rng

    def add(self, name, array):
        array = np.ascontiguousarray(array, dtype=np.float32)
        pad = (-self.offset) % ALIGN
        if pad:
            self.f.write(b"\0" * pad)
            self.offset += pad
        nbytes = array.nbytes
        self.f.write(memoryview(array).cast("B"))
        t = TensorProto()
        t.name = name
        t.data_type = TensorProto.FLOAT
        t.dims.extend(array.shape)
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", self.location), ("offset", str(self.offset)), ("length", str(nbytes))):
            e = t.external_data.add()
            e.key, e.value = k, v
        self.offset += nbytes
        self.params += array.size
        self.initializers.append(t)
        return name

    def normal(self, name, shape, std, mean=0.0):
        a = self._rng().standard_normal(shape, dtype=np.float32)
        if std != 1.0:
            a *= np.float32(std)
        if mean != 0.0:
            a += np.float32(mean)
        return self.add(name, a)

    def close(self):
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()


class GraphBuilder:
    def __init__(self):
        self.nodes = []
        self.names = {}

    def _unique(self, base):
        n = self.names.get(base, 0)
        self.names[base] = n + 1
        return base if n == 0 else f"{base}_{n}"

    def op(self, op_type, inputs, scope, n_out=1, **attrs):
        name = self._unique(f"{scope}/{op_type}")
        outs = [f"{name}_output_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    def const(self, scope, value, dtype=np.float32):
        arr = np.array(value, dtype=dtype)
        return self.op("Constant", [], scope, value=onnx.numpy_helper.from_array(arr))

    def gelu(self, x, scope):
        # torch's export of the exact GELU: x * (1 + erf(x / sqrt 2)) * 0.5
        d = self.op("Div", [x, self.const(scope, 1.4142135381698608)], scope)
        e = self.op("Erf", [d], scope)
        a = self.op("Add", [e, self.const(scope, 1.0)], scope)
        m = self.op("Mul", [x, a], scope)
        return self.op("Mul", [m, self.const(scope, 0.5)], scope)

    def linear(self, x, w, b, scope):
        y = self.op("MatMul", [x, w], scope)
        return self.op("Add", [b, y], scope) if b else y


def build(out_dir, layers, d, ffn, heads, mels, positions, seed):
    assert d % heads == 0, "--d-model must be a multiple of --heads"
    assert d % 2 == 0
    dh = d // heads
    os.makedirs(out_dir, exist_ok=True)
    data_name = "model.onnx.data"
    model_path = os.path.join(out_dir, "model.onnx")
    data_path = os.path.join(out_dir, data_name)
    w = DataWriter(data_path + ".tmp", data_name, seed)
    g = GraphBuilder()
    resid_gain = 1.0 / math.sqrt(2 * layers)

    # Front end.
    c1w = w.normal("conv1.weight", (d, mels, 3), 1.0 / math.sqrt(mels * 3))
    c1b = w.normal("conv1.bias", (d,), 0.1)
    c2w = w.normal("conv2.weight", (d, d, 3), 1.0 / math.sqrt(d * 3))
    c2b = w.normal("conv2.bias", (d,), 0.1)
    pos = w.add("positional_embedding", sinusoids(positions, d))

    x = g.op("Conv", ["mel", c1w, c1b], "/conv1", dilations=[1], group=1, kernel_shape=[3], pads=[1, 1], strides=[1])
    x = g.gelu(x, "")
    x = g.op("Conv", [x, c2w, c2b], "/conv2", dilations=[1], group=1, kernel_shape=[3], pads=[1, 1], strides=[2])
    x = g.gelu(x, "")
    x = g.op("Transpose", [x], "", perm=[0, 2, 1])  # [1, T, d]
    shape = g.op("Shape", [x], "")
    t = g.op("Gather", [shape, g.const("", 1, np.int64)], "", axis=0)
    t1 = g.op("Unsqueeze", [t, g.const("", [0], np.int64)], "")
    sliced = g.op("Slice", [pos, g.const("", [0], np.int64), t1, g.const("", [0], np.int64),
                            g.const("", [1], np.int64)], "")
    x = g.op("Add", [x, sliced], "")

    for i in range(layers):
        p, s = f"blocks.{i}", f"/blocks.{i}"
        ln1w = w.normal(f"{p}.attn_ln.weight", (d,), 0.1, 1.0)
        ln1b = w.normal(f"{p}.attn_ln.bias", (d,), 0.05)
        qw = w.normal(f"{p}.attn.query.weight", (d, d), 1.0 / math.sqrt(d))
        qb = w.normal(f"{p}.attn.query.bias", (d,), 0.1)
        kw = w.normal(f"{p}.attn.key.weight", (d, d), 1.0 / math.sqrt(d))
        vw = w.normal(f"{p}.attn.value.weight", (d, d), 1.0 / math.sqrt(d))
        vb = w.normal(f"{p}.attn.value.bias", (d,), 0.1)
        ow = w.normal(f"{p}.attn.out.weight", (d, d), resid_gain / math.sqrt(d))
        ob = w.normal(f"{p}.attn.out.bias", (d,), 0.1)
        ln2w = w.normal(f"{p}.mlp_ln.weight", (d,), 0.1, 1.0)
        ln2b = w.normal(f"{p}.mlp_ln.bias", (d,), 0.05)
        f1w = w.normal(f"{p}.fc1.weight", (d, ffn), 1.0 / math.sqrt(d))
        f1b = w.normal(f"{p}.fc1.bias", (ffn,), 0.1)
        f2w = w.normal(f"{p}.fc2.weight", (ffn, d), resid_gain / math.sqrt(ffn))
        f2b = w.normal(f"{p}.fc2.bias", (d,), 0.1)

        h = g.op("LayerNormalization", [x, ln1w, ln1b], f"{s}/attn_ln", axis=-1, epsilon=1e-5)
        a = f"{s}/attn"
        heads_shape = g.const(a, [0, -1, heads, dh], np.int64)  # [1, T, H, dh]
        q = g.op("Reshape", [g.linear(h, qw, qb, f"{a}/query"), heads_shape], a)
        q = g.op("Transpose", [q], a, perm=[0, 2, 1, 3])  # [1, H, T, dh]
        k = g.op("Reshape", [g.linear(h, kw, None, f"{a}/key"), heads_shape], a)
        k = g.op("Transpose", [k], a, perm=[0, 2, 3, 1])  # [1, H, dh, T]
        v = g.op("Reshape", [g.linear(h, vw, vb, f"{a}/value"), heads_shape], a)
        v = g.op("Transpose", [v], a, perm=[0, 2, 1, 3])  # [1, H, T, dh]
        sc = g.op("Div", [g.op("MatMul", [q, k], a), g.const(a, math.sqrt(dh))], a)
        pr = g.op("Softmax", [sc], a, axis=-1)
        ctx = g.op("Transpose", [g.op("MatMul", [pr, v], a)], a, perm=[0, 2, 1, 3])  # [1, T, H, dh]
        ctx = g.op("Reshape", [ctx, g.const(a, [0, -1, d], np.int64)], a)
        x = g.op("Add", [x, g.linear(ctx, ow, ob, f"{a}/out")], s)

        h = g.op("LayerNormalization", [x, ln2w, ln2b], f"{s}/mlp_ln", axis=-1, epsilon=1e-5)
        h = g.gelu(g.linear(h, f1w, f1b, f"{s}/fc1"), s)
        x = g.op("Add", [x, g.linear(h, f2w, f2b, f"{s}/fc2")], s)

    lnw = w.normal("ln_post.weight", (d,), 0.1, 1.0)
    lnb = w.normal("ln_post.bias", (d,), 0.05)
    y = g.op("LayerNormalization", [x, lnw, lnb], "/ln_post", axis=-1, epsilon=1e-5)
    g.nodes.append(helper.make_node("Identity", [y], ["encoder_out"], name="/encoder_out"))
    w.close()

    graph = helper.make_graph(
        g.nodes, "whisper_style_encoder",
        [helper.make_tensor_value_info("mel", TensorProto.FLOAT, [1, mels, "frames"])],
        [helper.make_tensor_value_info("encoder_out", TensorProto.FLOAT, [1, "out_frames", d])],
        initializer=w.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="sarai-rt tools/scripts/make_big_encoder.py")
    model.ir_version = 8
    model.doc_string = (f"Whisper-style encoder: layers={layers} d_model={d} ffn={ffn} heads={heads} "
                        f"mels={mels} positions={positions} seed={seed}")
    tmp = model_path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(model.SerializeToString())
    os.replace(data_path + ".tmp", data_path)
    os.replace(tmp, model_path)
    onnx.checker.check_model(model_path)  # by path: also checks the external data references
    return model_path, data_path, w.params, w.offset, len(w.initializers), len(g.nodes)


def peak_rss_mb():
    try:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except Exception:  # pragma: no cover
        return float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--layers", type=int, default=22)
    ap.add_argument("--d-model", type=int, default=2048)
    ap.add_argument("--ffn", type=int, default=8192)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--mels", type=int, default=128)
    ap.add_argument("--positions", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=20240)
    a = ap.parse_args()
    if min(a.layers, a.d_model, a.ffn, a.heads, a.mels, a.positions) <= 0:
        ap.error("sizes must be positive")
    if a.d_model % a.heads or a.d_model % 2:
        ap.error(f"--d-model {a.d_model} must be even and a multiple of --heads {a.heads}")
    t0 = time.time()
    model_path, data_path, params, nbytes, n_init, n_nodes = build(
        a.out_dir, a.layers, a.d_model, a.ffn, a.heads, a.mels, a.positions, a.seed)
    dt = time.time() - t0
    print(f"{model_path}: {n_nodes} nodes, {n_init} initializers, {params:,} parameters "
          f"({params / 1e9:.3f} B)")
    print(f"{data_path}: {nbytes:,} bytes ({nbytes / 1e9:.2f} GB, {nbytes / 2**30:.2f} GiB), "
          f"{dt:.1f} s, {nbytes / 1e6 / max(dt, 1e-9):.0f} MB/s, peak RSS {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
