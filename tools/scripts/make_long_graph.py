#!/usr/bin/python3
"""Generate graphs with very many small nodes, to measure how session
creation, planning and execution scale with graph size (issue 16, class 4).

    /usr/bin/python3 tools/scripts/make_long_graph.py KIND NODES OUT.onnx

KIND:
    chain      x [1, 4] -> Relu -> Relu -> ... (NODES Relu, each reading the last)
    transpose  the same with Transpose (a copy, never in place)
    fan        NODES Relu all reading x, and one Concat reading all their outputs

Run with `sarai-rt run OUT.onnx --random x=1x4`. A million-node chain is
about 26 MB of ONNX. Never commit the output.
"""
import sys

import onnx
from onnx import TensorProto, helper


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("chain", "transpose", "fan"):
        sys.exit(__doc__)
    kind, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    nodes = []
    if kind == "fan":
        nodes = [helper.make_node("Relu", ["x"], [f"y{i}"]) for i in range(n)]
        nodes.append(helper.make_node("Concat", [f"y{i}" for i in range(n)], ["out"], axis=0))
        out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [n, 4])
    else:
        op, prev = ("Relu" if kind == "chain" else "Transpose"), "x"
        for i in range(n):
            nodes.append(helper.make_node(op, [prev], [f"v{i}"]))
            prev = f"v{i}"
        shape = [4, 1] if kind == "transpose" and n % 2 else [1, 4]
        out = helper.make_tensor_value_info(prev, TensorProto.FLOAT, shape)
    graph = helper.make_graph(nodes, kind, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])], [out])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


if __name__ == "__main__":
    main()
