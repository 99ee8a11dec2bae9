#!/usr/bin/python3
"""Generates the ONNX backend node test cases with Debian's python3-onnx.

    /usr/bin/python3 tests/onnx_backend/generate_node_data.py OUT_DIR

Writes OUT_DIR/node/<test name>/{model.onnx, test_data_set_N/*.pb}, the same
files as `python3 -m onnx.backend.test.cmd_tools generate-data -o OUT_DIR`.

Debian 12 pairs onnx 1.12 with numpy 1.24, which removed the aliases np.float,
np.int, np.bool, np.object that some onnx 1.12 test cases still use; put them
back (they meant the builtins) before onnx imports its cases.
"""
import sys

import numpy as np

for alias, builtin in (("float", float), ("int", int), ("bool", bool), ("object", object),
                       ("complex", complex), ("str", str)):
    if alias not in np.__dict__:
        setattr(np, alias, builtin)

from onnx.backend.test import cmd_tools  # noqa: E402  (after the aliases on purpose)

if len(sys.argv) != 2:
    sys.exit("usage: generate_node_data.py OUT_DIR")
out_dir = sys.argv[1]
sys.argv = [sys.argv[0], "generate-data", "-o", out_dir]
cmd_tools.main()

# An index of the cases and the ops each uses, so the test binary can pick
# the cases for the ops the runtime registers without parsing every model.
import os  # noqa: E402

import onnx  # noqa: E402

node_dir = os.path.join(out_dir, "node")
with open(os.path.join(out_dir, "index.tsv"), "w") as index:
    for name in sorted(os.listdir(node_dir)):
        model = onnx.load(os.path.join(node_dir, name, "model.onnx"))
        ops = sorted({(n.domain + "::" if n.domain not in ("", "ai.onnx") else "") + n.op_type
                      for n in model.graph.node})
        index.write(f"{name}\t{','.join(ops)}\n")
