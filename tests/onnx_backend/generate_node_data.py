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

# An index of the cases, so the test binary can pick the cases for the ops
# the runtime registers without parsing every model. One line per case:
#   name <TAB> ops <TAB> eligible <TAB> reason
# ops: every op the case uses, those of subgraphs (If/Loop/Scan bodies and
# any other graph attribute, recursively) included; "domain::Op" outside
# the default domain. eligible: 1 when the case is in the runtime's scope
# (tensors of float/double/float16/bfloat16/int*/uint*/bool only, in every
# input, output, value_info, initializer and tensor attribute; no
# sequence/optional/map type or op; no training op), else 0 with the reason.
import os  # noqa: E402

import onnx  # noqa: E402

# Tensor element types in scope: FLOAT, UINT8, INT8, UINT16, INT16, INT32,
# INT64, BOOL, FLOAT16, DOUBLE, UINT32, UINT64, BFLOAT16.
TENSOR_TYPES = {1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 16}
TRAINING_DOMAIN = "ai.onnx.preview.training"
NON_TENSOR_OPS = {"SequenceConstruct", "SequenceEmpty", "SequenceInsert", "SequenceAt", "SequenceErase",
                  "SequenceLength", "SequenceMap", "SplitToSequence", "ConcatFromSequence", "Optional",
                  "OptionalGetElement", "OptionalHasElement"}
# Ops that exist for string tensors only.
STRING_OPS = {"StringNormalizer", "RegexFullMatch", "StringConcat", "StringSplit", "TfIdfVectorizer"}


def op_name(n):
    return (n.domain + "::" if n.domain not in ("", "ai.onnx") else "") + n.op_type


def type_problem(tp):
    """Why a TypeProto is out of scope, or None."""
    kind = tp.WhichOneof("value")
    if kind == "tensor_type":
        et = tp.tensor_type.elem_type
        if et not in TENSOR_TYPES:
            return f"tensor element type {onnx.TensorProto.DataType.Name(et)}"
        return None
    if kind is None:
        return None
    return kind.replace("_type", "") + " type"


def graph_walk(g, ops, problems):
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        p = type_problem(vi.type)
        if p:
            problems.append(f"{p} ({vi.name})")
    for t in g.initializer:
        if t.data_type not in TENSOR_TYPES:
            problems.append(f"initializer {t.name} of type {onnx.TensorProto.DataType.Name(t.data_type)}")
    for n in g.node:
        ops.add(op_name(n))
        if n.op_type in NON_TENSOR_OPS or n.op_type in STRING_OPS:
            problems.append(f"op {n.op_type} (non-tensor or string data)")
        if n.domain == TRAINING_DOMAIN or n.op_type == "Gradient":
            problems.append(f"training op {n.op_type}")
        if n.op_type == "BatchNormalization" and any(a.name == "training_mode" and a.i for a in n.attribute):
            problems.append("BatchNormalization training_mode=1")
        if n.op_type == "Dropout" and len(n.input) >= 3 and n.input[2]:
            problems.append("Dropout with a training_mode input")
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type not in TENSOR_TYPES:
                problems.append(f"{n.op_type} attribute {a.name} of type {onnx.TensorProto.DataType.Name(a.t.data_type)}")
            if a.type in (onnx.AttributeProto.STRINGS,) and n.op_type in ("Constant",):
                problems.append("Constant of strings")
            if a.type == onnx.AttributeProto.GRAPH:
                graph_walk(a.g, ops, problems)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for sub in a.graphs:
                    graph_walk(sub, ops, problems)


node_dir = os.path.join(out_dir, "node")
with open(os.path.join(out_dir, "index.tsv"), "w") as index:
    for name in sorted(os.listdir(node_dir)):
        model = onnx.load(os.path.join(node_dir, name, "model.onnx"))
        ops, problems = set(), []
        graph_walk(model.graph, ops, problems)
        reason = problems[0] if problems else ""
        index.write(f"{name}\t{','.join(sorted(ops))}\t{0 if problems else 1}\t{reason}\n")
