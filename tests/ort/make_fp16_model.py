#!/usr/bin/python3
"""A small float16 segmenter (the shape of a background-removal model) for the
ort.fp16_segmenter tests:

    /usr/bin/python3 tests/ort/make_fp16_model.py OUT_DIR

writes OUT_DIR/model.onnx (opset 17, every initializer and activation
float16) and OUT_DIR/x.npy (a float16 input), both deterministic:

    x float16 [1, 3, 64, 64]
    Conv 3->16 3x3 stride 2 + Relu, Conv 16->16 3x3 + Relu
    Reshape [1, 16, 1024] -> Transpose -> MatMul [16, 16] + Add -> Relu
      -> Transpose -> Reshape [1, 16, 32, 32]         (a per-pixel MLP)
    Resize x2 (linear; float32 scales, as exporters write them)
    Conv 16->1 1x1 -> logits -> Cast(to=FLOAT) -> Sigmoid -> Cast(to=FLOAT16)
    -> mask float16 [1, 1, 64, 64]; logits float16 is a second output.

sarai-rt runs it in float32 between nodes (loader/fp16_upcast.h); ONNX
Runtime's CPU provider also computes these ops in float32 but rounds every
intermediate to float16 between nodes, so the two differ by float16 rounding.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_fp16_model.py OUT_DIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261205)

    def w(name, shape, fan_in):
        a = rng.uniform(-1, 1, shape) * np.sqrt(3.0 / fan_in)
        return numpy_helper.from_array(a.astype(np.float16), name)

    inits = [
        w("w0", (16, 3, 3, 3), 27), w("b0", (16,), 27),
        w("w1", (16, 16, 3, 3), 144), w("b1", (16,), 144),
        w("wm", (16, 16), 16), w("bm", (16,), 16),
        w("w2", (1, 16, 1, 1), 16), w("b2", (1,), 16),
        numpy_helper.from_array(np.array([1, 16, 1024], np.int64), "flat"),
        numpy_helper.from_array(np.array([1, 16, 32, 32], np.int64), "grid"),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], name="conv0", strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c0"], ["r0"], name="relu0"),
        helper.make_node("Conv", ["r0", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Reshape", ["r1", "flat"], ["f"], name="flatten"),
        helper.make_node("Transpose", ["f"], ["ft"], name="to_rows", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["ft", "wm"], ["mm"], name="mlp"),
        helper.make_node("Add", ["mm", "bm"], ["ma"], name="mlp_bias"),
        helper.make_node("Relu", ["ma"], ["mr"], name="mlp_relu"),
        helper.make_node("Transpose", ["mr"], ["mt"], name="to_channels", perm=[0, 2, 1]),
        helper.make_node("Reshape", ["mt", "grid"], ["g"], name="unflatten"),
        helper.make_node("Resize", ["g", "", "scales"], ["up"], name="upsample", mode="linear"),
        helper.make_node("Conv", ["up", "w2", "b2"], ["logits"], name="head"),
        helper.make_node("Cast", ["logits"], ["logits32"], name="to_float", to=TensorProto.FLOAT),
        helper.make_node("Sigmoid", ["logits32"], ["p32"], name="sigmoid"),
        helper.make_node("Cast", ["p32"], ["mask"], name="to_half", to=TensorProto.FLOAT16),
    ]
    graph = helper.make_graph(
        nodes, "fp16_segmenter",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT16, [1, 1, 64, 64]),
         helper.make_tensor_value_info("logits", TensorProto.FLOAT16, [1, 1, 64, 64])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="make_fp16_model")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, os.path.join(out, "model.onnx"))
    np.save(os.path.join(out, "x.npy"), rng.standard_normal((1, 3, 64, 64)).astype(np.float16))


if __name__ == "__main__":
    main()
