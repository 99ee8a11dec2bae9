#!/usr/bin/python3
"""A small model on which ONNX Runtime's u8 x s8 integer path saturates on x86
CPUs without VNNI, for the ort.onnx_export.saturating_model tests:

    /usr/bin/python3 tests/ort/make_saturating_model.py OUT_DIR

writes OUT_DIR/model.onnx (opset 17, FP32, about 100 KB) and OUT_DIR/x.npy,
its input, both deterministic:

    x [1, 64, 256], uniform in [0, 1) (non-negative, like post-ReLU features
    or pixels)
    y  = MatMul(x, W [256, 64]) + b [64]          -> MatMulInteger
    yc = Conv(x as [N=1, C=64, L=256], Wc [32, 64, 3], pads 1) -> ConvInteger

W and Wc are uniform in [-1, 1). The export quantizes x with
DynamicQuantizeLinear: zero point 0 (x >= 0), so the u8 activations spread
over [0, 255], and the per-channel weights over [-127, 127]. Without VNNI,
MLAS's u8 x s8 GEMM adds pairs of adjacent products into int16 with
saturation (vpmaddubsw): |u w + u' w'| > 32767 for about 3.4 % of the pairs,
i.e. several pairs of every 256-long dot product. Measured with ONNX Runtime
1.30 on an AVX2-only AMD EPYC (Zen 3), cosine of y against the FP32 model:
`--onnx-weights s8` 0.99579 (below the 0.999 the check asks; max abs error
2.3 of 18), u8 (the default) 0.99999, s7 0.99996. yc: 0.99998 with every
choice (ConvInteger weights are u8 under every choice; with int8 weights
ONNX Runtime's ConvInteger runs a portable kernel that does not saturate
either).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_saturating_model.py OUT_DIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261205)
    T, K, N, M = 64, 256, 64, 32
    W = rng.uniform(-1, 1, (K, N)).astype(np.float32)
    b = rng.uniform(-1, 1, (N,)).astype(np.float32)
    Wc = rng.uniform(-1, 1, (M, T, 3)).astype(np.float32)
    x = rng.uniform(0, 1, (1, T, K)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"], name="matmul"),
         helper.make_node("Add", ["xw", "b"], ["y"], name="bias"),
         helper.make_node("Conv", ["x", "Wc"], ["yc"], name="conv", pads=[1, 1])],
        "saturating",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, T, K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, T, N]),
         helper.make_tensor_value_info("yc", TensorProto.FLOAT, [1, M, K])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "b"), numpy_helper.from_array(Wc, "Wc")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="make_saturating_model")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, os.path.join(out, "model.onnx"))
    np.save(os.path.join(out, "x.npy"), x)


if __name__ == "__main__":
    main()
