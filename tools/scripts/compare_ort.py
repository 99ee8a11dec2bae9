#!/usr/bin/python3
"""Run a model with sarai-rt and with ONNX Runtime and compare every output.

    /usr/bin/python3 tools/scripts/compare_ort.py --sarai build/sarai-rt MODEL.onnx \\
        --input NAME=SHAPE_OR_FILE ... [--seed S] [--min-cosine 0.99999] [--max-rel-err 1e-3]

--input NAME=SHAPE   makes a deterministic random input of that shape, e.g.
                     mel=1x80x200 (also 1,80,200). The element type is the
                     model's declared input type (float32 if unknown); prefix
                     a type to force one: ids=int64:1x16. Floats are standard
                     normal (--dist uniform: [0, 1)), integers in [0, --int-high),
                     bools fair coin flips. Each input gets its own stream
                     derived from --seed and its name, so adding an input does
                     not change the others.
--input NAME=FILE.npy uses that file as is.
Model inputs whose shape is fully static may be left out; they are generated.

Both runtimes get the same .npy files:
    SARAI run MODEL --input NAME=FILE.npy ... --output-dir D1
    node tools/scripts/ort/run_ort.js MODEL --input NAME=FILE.npy ... --output-dir D2
and write DIR/<output name>.npy (bytes outside [A-Za-z0-9_+-.] and a leading
'.' as %XX, loader/tensor_file_name.h; an exact-name file is accepted too).

For each output prints one line: shape, dtype, cosine similarity, mean abs
error, max abs error and max abs error / max|ort|. Float outputs pass when cosine >=
--min-cosine and the relative error <= --max-rel-err; integer and bool outputs
must match exactly. Shapes and dtypes must match.

Exit codes: 0 all outputs pass, 1 a check failed or a runtime failed,
2 usage error, 77 ONNX Runtime (tools/scripts/ort/setup.sh) is not installed, so a
ctest with SKIP_RETURN_CODE 77 shows as skipped.
"""

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tools/scripts/ -> the repository
RUN_ORT = os.path.join(REPO, "tools", "scripts", "ort", "run_ort.js")
SKIP = 77

DTYPES = {
    "float32": np.float32, "float": np.float32, "f32": np.float32,
    "float64": np.float64, "double": np.float64, "f64": np.float64,
    "float16": np.float16, "f16": np.float16,
    "int64": np.int64, "i64": np.int64,
    "int32": np.int32, "i32": np.int32,
    "int16": np.int16,
    "int8": np.int8, "i8": np.int8,
    "uint8": np.uint8, "u8": np.uint8,
    "bool": np.bool_,
}


def fail_usage(msg):
    print(f"compare_ort.py: {msg}", file=sys.stderr)
    sys.exit(2)


def ort_dir():
    return os.environ.get("SARAI_ORT_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "sarai-rt", "ort")


def ort_installed():
    return os.path.isfile(os.path.join(ort_dir(), "node_modules", "onnxruntime-node", "package.json"))


def model_io(model_path):
    """(inputs, outputs) of the model as [(name, np dtype or None, dims)], or (None, None) without onnx."""
    try:
        import onnx
    except ImportError:
        return None, None

    def np_type(elem_type):
        try:
            if hasattr(onnx.helper, "tensor_dtype_to_np_dtype"):  # onnx >= 1.13
                return onnx.helper.tensor_dtype_to_np_dtype(elem_type).type
            return onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[elem_type].type
        except (KeyError, ValueError, TypeError):
            return None

    m = onnx.load(model_path, load_external_data=False)
    inits = {i.name for i in m.graph.initializer}

    def conv(vi):
        tt = vi.type.tensor_type
        dt = np_type(tt.elem_type) if tt.elem_type else None
        dims = None
        if tt.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        return vi.name, dt, dims

    inputs = [conv(v) for v in m.graph.input if v.name not in inits]
    outputs = [conv(v) for v in m.graph.output]
    return inputs, outputs


def parse_shape(text):
    parts = [p for p in re.split(r"[x,\s]+", text.strip().strip("[]()")) if p != ""]
    try:
        dims = [int(p) for p in parts]
    except ValueError:
        return None
    if any(d < 0 for d in dims):
        return None
    return dims


def make_random(name, dtype, dims, seed, dist, int_high):
    # Stable per-input stream: seed + a hash of the name (not Python's salted hash()).
    h = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")
    rng = np.random.default_rng([seed, h])
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random(dims) < 0.5
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, int_high, size=dims).astype(dtype)
    if dist == "uniform":
        return rng.random(dims).astype(dtype)
    return rng.standard_normal(dims).astype(dtype)


def safe_name(name):
    """File name stem for a tensor name: the rule of sarai-rt run and run_ort.js
    (loader/tensor_file_name.h): bytes of the UTF-8 name in [A-Za-z0-9_+-.]
    stay (a leading '.' does not), every other byte becomes %XX; past 200
    bytes the escaped stem keeps its first whole escapes up to 183 bytes and
    ends in '~' + 16 hex digits of the name's 64-bit FNV-1a hash."""
    data = name.encode("utf-8")
    s, cuts = "", []
    for i, c in enumerate(data):
        cuts.append(len(s))
        ch = chr(c)
        plain = ch.isascii() and (ch.isalnum() or ch in "_+-") or (ch == "." and i > 0)
        s += ch if plain else "%%%02X" % c
    if s == "":
        return "%"
    if len(s) > 200:
        keep = max(c for c in cuts if c <= 200 - 17)
        h = 1469598103934665603
        for c in data:
            h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
        s = s[:keep] + "~%016x" % h
    return s


def find_output(directory, name):
    for cand in (safe_name(name), name, re.sub(r"[^A-Za-z0-9._-]", "_", name)):
        p = os.path.join(directory, cand + ".npy")
        if os.path.isfile(p):
            return p
    return None


def run(cmd, label, timeout):
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    except FileNotFoundError as e:
        print(f"{label}: cannot run: {e}", file=sys.stderr)
        return None, 0.0
    except subprocess.TimeoutExpired:
        print(f"{label}: timed out after {timeout} s: {' '.join(cmd)}", file=sys.stderr)
        return None, timeout
    dt = time.monotonic() - t0
    return p, dt


def compare(name, got, ref, min_cos, max_rel):
    """Returns (ok, line)."""
    head = f"{name}: "
    if got.shape != ref.shape:
        return False, head + f"FAIL shape sarai {list(got.shape)} vs ort {list(ref.shape)}"
    if got.dtype != ref.dtype:
        return False, head + f"FAIL dtype sarai {got.dtype} vs ort {ref.dtype} (shape {list(ref.shape)})"
    desc = f"{list(ref.shape)} {ref.dtype}"
    if not np.issubdtype(ref.dtype, np.floating):
        mism = int(np.count_nonzero(got != ref))
        ok = mism == 0
        return ok, head + f"{desc} mismatches {mism}/{ref.size} {'OK' if ok else 'FAIL'}"
    g = got.astype(np.float64).ravel()
    r = ref.astype(np.float64).ravel()
    g_nan, r_nan = np.isnan(g), np.isnan(r)
    if ref.size == 0:
        return True, head + f"{desc} empty OK"
    problems = []
    if not np.array_equal(g_nan, r_nan):
        problems.append(f"NaN at different places (sarai {int(g_nan.sum())}, ort {int(r_nan.sum())})")
    g_inf, r_inf = np.isinf(g), np.isinf(r)
    if not np.array_equal(g_inf, r_inf) or not np.array_equal(np.sign(g[g_inf]), np.sign(r[r_inf])):
        problems.append(f"Inf at different places (sarai {int(g_inf.sum())}, ort {int(r_inf.sum())})")
    finite = np.isfinite(g) & np.isfinite(r)
    g, r = g[finite], r[finite]
    if g.size == 0:
        max_abs, mean_abs, max_ref, rel, cos = 0.0, 0.0, 0.0, 0.0, 1.0
    else:
        diff = np.abs(g - r)
        max_abs = float(diff.max())
        mean_abs = float(diff.mean())
        max_ref = float(np.abs(r).max())
        rel = max_abs / max_ref if max_ref > 0 else (0.0 if max_abs == 0 else float("inf"))
        ng, nr = float(np.linalg.norm(g)), float(np.linalg.norm(r))
        if ng == 0 and nr == 0:
            cos = 1.0
        elif ng == 0 or nr == 0:
            cos = 0.0
        else:
            cos = float(np.dot(g, r) / (ng * nr))
    if cos < min_cos:
        problems.append(f"cosine {cos:.8f} < {min_cos}")
    if rel > max_rel:
        problems.append(f"max_rel {rel:.3g} > {max_rel}")
    ok = not problems
    line = (head + f"{desc} cosine {cos:.8f} mean_abs {mean_abs:.3g} max_abs {max_abs:.3g} max_rel {rel:.3g} (max|ort| {max_ref:.3g}) "
            + ("OK" if ok else "FAIL: " + "; ".join(problems)))
    return ok, line


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--sarai", default=os.environ.get("SARAI_RT"),
                    help="path to the sarai-rt binary (default: $SARAI_RT)")
    ap.add_argument("--input", "-i", action="append", default=[], metavar="NAME=SHAPE_OR_FILE")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dist", choices=["normal", "uniform"], default="normal",
                    help="distribution of random float inputs")
    ap.add_argument("--int-high", type=int, default=16, help="random integer inputs are in [0, INT_HIGH)")
    ap.add_argument("--min-cosine", type=float, default=0.99999)
    ap.add_argument("--max-rel-err", type=float, default=1e-3)
    ap.add_argument("--work-dir", help="keep inputs and outputs here (default: a temporary folder, removed)")
    ap.add_argument("--ort-only", action="store_true",
                    help="run only ONNX Runtime and print output statistics (no sarai-rt)")
    ap.add_argument("--ort-runs", type=int, default=1, help="--runs passed to run_ort.js")
    ap.add_argument("--timeout", type=float, default=600, help="seconds allowed for each runtime")
    ap.add_argument("--node", default=os.environ.get("NODE", "node"))
    args = ap.parse_args()

    if not os.path.isfile(args.model):
        fail_usage(f"no such model: {args.model}")
    if not args.ort_only:
        if not args.sarai:
            fail_usage("--sarai PATH (or $SARAI_RT) is required unless --ort-only")
        if not os.path.isfile(args.sarai):
            fail_usage(f"no such sarai-rt binary: {args.sarai}")
    if not ort_installed():
        print(f"compare_ort.py: SKIP: ONNX Runtime is not installed in {ort_dir()} (run tools/scripts/ort/setup.sh)")
        return SKIP
    if shutil.which(args.node) is None:
        print(f"compare_ort.py: SKIP: node ({args.node}) not found")
        return SKIP

    inputs, outputs = model_io(args.model)
    declared = {n: (dt, dims) for n, dt, dims in (inputs or [])}

    work = args.work_dir or tempfile.mkdtemp(prefix="compare_ort.")
    os.makedirs(work, exist_ok=True)
    in_dir = os.path.join(work, "inputs")
    d_sarai = os.path.join(work, "sarai")
    d_ort = os.path.join(work, "ort")
    for d in (in_dir, d_sarai, d_ort):
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if f.endswith(".npy"):
                os.remove(os.path.join(d, f))

    try:
        feeds = []  # (name, path)
        given = set()
        for spec in args.input:
            if "=" not in spec:
                fail_usage(f"--input expects NAME=SHAPE_OR_FILE, got '{spec}'")
            name, val = spec.split("=", 1)
            if inputs is not None and name not in declared:
                fail_usage(f"model has no input '{name}' (inputs: {', '.join(declared)})")
            given.add(name)
            if val.endswith(".npy") or os.path.isfile(val):
                if not os.path.isfile(val):
                    fail_usage(f"no such file: {val}")
                arr = np.load(val)
                path = os.path.abspath(val)
            else:
                dtype = declared.get(name, (None, None))[0] or np.float32
                if ":" in val:
                    tname, val = val.split(":", 1)
                    if tname not in DTYPES:
                        fail_usage(f"unknown element type '{tname}' in --input {spec}")
                    dtype = DTYPES[tname]
                dims = parse_shape(val)
                if dims is None:
                    fail_usage(f"--input {name}: '{val}' is neither a .npy file nor a shape like 1x3x32x32")
                arr = make_random(name, dtype, dims, args.seed, args.dist, args.int_high)
                path = os.path.join(in_dir, safe_name(name) + ".npy")
                np.save(path, arr)
            feeds.append((name, path))
            print(f"input {name}: {list(arr.shape)} {arr.dtype} <- {val}")
        for name, (dt, dims) in declared.items():
            if name in given:
                continue
            if dims is None or any(d is None for d in dims):
                fail_usage(f"input '{name}' has dynamic shape {dims}: give --input {name}=SHAPE")
            arr = make_random(name, dt or np.float32, dims, args.seed, args.dist, args.int_high)
            path = os.path.join(in_dir, safe_name(name) + ".npy")
            np.save(path, arr)
            feeds.append((name, path))
            print(f"input {name}: {list(arr.shape)} {arr.dtype} <- generated (static shape)")

        in_args = []
        for name, path in feeds:
            in_args += ["--input", f"{name}={path}"]

        ort_cmd = [args.node, RUN_ORT, args.model, *in_args, "--output-dir", d_ort, "--runs", str(args.ort_runs)]
        p, t_ort = run(ort_cmd, "ort", args.timeout)
        if p is None:
            return 1
        if p.returncode == SKIP:
            print(f"compare_ort.py: SKIP: {p.stderr.strip()}")
            return SKIP
        if p.returncode != 0:
            print(f"ort failed (exit {p.returncode}): {' '.join(ort_cmd)}\n{p.stdout}{p.stderr}", file=sys.stderr)
            return 1
        runs = [l for l in p.stdout.splitlines() if l.startswith("run")]
        print(f"ort: {t_ort:.2f} s wall; " + (runs[-1] if runs else ""))

        if not args.ort_only:
            sarai_cmd = [args.sarai, "run", args.model, *in_args, "--output-dir", d_sarai]
            p, t_sarai = run(sarai_cmd, "sarai-rt", args.timeout)
            if p is None:
                return 1
            if p.returncode != 0:
                print(f"sarai-rt failed (exit {p.returncode}): {' '.join(sarai_cmd)}\n{p.stdout}{p.stderr}",
                      file=sys.stderr)
                return 1
            print(f"sarai-rt: {t_sarai:.2f} s wall")

        names = [n for n, _, _ in outputs] if outputs is not None else sorted(
            f[:-4] for f in os.listdir(d_ort) if f.endswith(".npy"))
        all_ok = True
        for name in names:
            ref_path = find_output(d_ort, name)
            if ref_path is None:
                print(f"{name}: FAIL: ort wrote no {safe_name(name)}.npy")
                all_ok = False
                continue
            ref = np.load(ref_path)
            if args.ort_only:
                if np.issubdtype(ref.dtype, np.floating) and ref.size:
                    r = ref.astype(np.float64)
                    print(f"{name}: {list(ref.shape)} {ref.dtype} mean {r.mean():.6g} std {r.std():.6g} "
                          f"max|x| {np.abs(r).max():.6g}")
                else:
                    print(f"{name}: {list(ref.shape)} {ref.dtype}")
                continue
            got_path = find_output(d_sarai, name)
            if got_path is None:
                print(f"{name}: FAIL: sarai-rt wrote no {safe_name(name)}.npy in {d_sarai}")
                all_ok = False
                continue
            ok, line = compare(name, np.load(got_path), ref, args.min_cosine, args.max_rel_err)
            print(line)
            all_ok &= ok
        if not args.ort_only:
            print("PASS" if all_ok else "FAIL")
        return 0 if all_ok else 1
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
