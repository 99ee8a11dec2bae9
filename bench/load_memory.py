#!/usr/bin/python3
"""Load time and peak RSS: sarai-rt's INT8 blob and FP32 path, and ONNX Runtime
on the FP32 and the INT8 ONNX, side by side in one invocation, cold and warm.

Usage:

    /usr/bin/python3 bench/load_memory.py --sarai build/release/sarai-rt --dir DIR
        [--input-name mel] [--shape 1x128x300] [--runs 3] [--threads 2]
        [--repeats 3] [--caches cold,warm] [--budgets 600,300]
        [--runners int8,fp32,ort-fp32,ort-int8] [--no-ort] [--rss wait4|time]
        [--seed 0] [--json FILE]

    # quick check on a small model (~10 s):
    /usr/bin/python3 bench/load_memory.py --sarai build/release/sarai-rt --dir /work/base --runs 2 --repeats 1

DIR holds model.onnx (+ model.onnx.data), model.sarai and int8.onnx
(+ int8.onnx.data). Missing ones are made first (not timed):

    sarai-rt convert model.onnx -o model.sarai -q
    sarai-rt convert model.onnx --to onnx -o int8.onnx -q      (unless --no-ort)

The runners, each a separate process per measurement:

    ours INT8   sarai-rt run model.sarai --random NAME=SHAPE --runs N --threads T --report-memory
    ours FP32   sarai-rt run model.onnx  ...same...
    ORT FP32    node tools/scripts/ort/run_ort.js model.onnx --input NAME=X.npy --output-dir D --runs N --threads T
    ORT INT8    node tools/scripts/ort/run_ort.js int8.onnx  ...same...
    (--budgets B,...: ours INT8 again with --max-memory-mb B, one row per B)

X.npy is one seeded standard-normal float32 array of --shape (numpy
default_rng(--seed)); ours draws its own --random input of the same shape (the
values do not matter for time or memory). --shape defaults to the ONNX graph
input's dims (read without external data), symbolic ones set to 1 (first)
or 300; a given --shape is checked against the fixed dims.

Measured per process:

- load ms: ours = "session ready in X ms" (open: map + parse + Session::create;
  plan: the planning pass); ORT = its "loaded ... in X ms"
  (InferenceSession.create). Neither includes process start-up (node +
  loading onnxruntime-node is ~0.1 s): the "process s" column is the whole
  process's wall time.
- first run ms, median of runs 2..N ms.
- peak RSS = the process's ru_maxrss from os.wait4 (Linux: VmHWM at exit,
  KB), shown in MB of 10^6 bytes. Linux carries the forking process's own
  high-water mark into the child's ru_maxrss (at fork and across exec), so
  this script keeps numpy/onnx out of its own process (they run in helper
  processes), resets its VmHWM (/proc/self/clear_refs 5) before each spawn and
  reports that floor; a value at the floor is marked. --rss time measures with
  GNU `/usr/bin/time -f %M` instead (floor ~1 MB).

Cache states (--caches):

- cold: os.sync(), then posix_fadvise(POSIX_FADV_DONTNEED) on each model file
  the runner reads, right before its run; residency is checked with mincore(2)
  and reported (pages another process has mapped cannot be evicted). Only the
  model files: the binaries and libraries stay cached.
- warm: the same runner's cold run just before is the warm-up (discarded for
  the warm cell); with --caches warm alone (first repeat), or when mincore
  finds < 99 % of the files resident, one extra run is made and discarded.

--repeats R repeats every cell R times, the runner order alternating (forward,
backward, ...) so drift on a shared machine hits all alike; each cell shows
the median over the repeats of each quantity. Prints a Markdown block for
docs/BENCHMARKS.md (machine, date, table, exact commands) on stdout; progress
on stderr. --json FILE also writes every sample. Exit 1 when a runner fails
(the table is still printed, the failed cells as "failed").
"""
import argparse
import ctypes
import datetime
import json
import mmap
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"
RUN_ORT = os.path.join(SRC, "tools", "scripts", "ort", "run_ort.js")
ORT_DIR = os.environ.get("SARAI_ORT_DIR") or os.path.expanduser("~/.cache/sarai-rt/ort")
ENV_SHOWN = ("SARAI_MAX_ISA", "ONEDNN_MAX_CPU_ISA")
MB = 1e6

READY = re.compile(r"session ready in ([0-9.]+) ms \(open ([0-9.]+) ms \+ plan ([0-9.]+) ms\)")
ORT_LOADED = re.compile(r"^ort (\S+): loaded .* in ([0-9.]+) ms$", re.M)
RUN_LINE = re.compile(r"^run (\d+): ([0-9.]+) ms$", re.M)
OUR_MEMORY = re.compile(r"^memory: peak RSS \(VmHWM\) ([0-9.]+) MB, RSS now ([0-9.]+) MB, "
                        r"resident weights ([0-9.]+) MB of ([0-9.]+) MB mapped", re.M)
OUR_BUDGET = re.compile(r"^memory budget .*$", re.M)
ISA_LINE = re.compile(r"^model .*: \d+ nodes, .*$", re.M)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- page cache

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
_MAP_FAILED = ctypes.c_void_p(-1).value
_ODD = bytes(b & 1 for b in range(256))


def resident_bytes(path):
    """Bytes of path in the page cache (mincore on a mapping that is never touched)."""
    size = os.path.getsize(path)
    if size == 0:
        return 0
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, _MAP_FAILED):
            raise OSError(ctypes.get_errno(), f"mmap {path}")
        try:
            pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
            vec = ctypes.create_string_buffer(pages)
            if _libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), f"mincore {path}")
            n = vec.raw.translate(_ODD).count(1)
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)
    return min(size, n * mmap.PAGESIZE)


def resident_fraction(files):
    total = sum(os.path.getsize(f) for f in files)
    return sum(resident_bytes(f) for f in files) / total if total else 1.0


def evict(files):
    os.sync()
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


# ---------------------------------------------------------------- processes

def self_status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])  # kB
    return 0


def reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def spawn(cmd, rss_method, tmp):
    """Runs cmd to completion. Returns (exit code, stdout, stderr, maxrss KB, floor KB, wall s)."""
    out_path, err_path, time_path = (os.path.join(tmp, n) for n in ("out.txt", "err.txt", "time.txt"))
    full = ["/usr/bin/time", "-f", "%M", "-o", time_path] + cmd if rss_method == "time" else cmd
    with open(out_path, "w") as fo, open(err_path, "w") as fe:
        reset_hwm()
        floor = self_status("VmHWM")
        t0 = time.perf_counter()
        p = subprocess.Popen(full, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, close_fds=True)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    p.returncode = code = os.waitstatus_to_exitcode(status)
    with open(out_path) as f:
        out = f.read()
    with open(err_path) as f:
        err = f.read()
    maxrss = ru.ru_maxrss
    if rss_method == "time":
        floor = 0
        try:
            with open(time_path) as f:
                maxrss = int(f.read().strip().splitlines()[-1])
        except (OSError, ValueError, IndexError):
            maxrss = None
    return code, out, err, maxrss, floor, wall


def helper(code, *args):
    """Runs a python snippet (numpy/onnx stay out of this process: see peak RSS)."""
    r = subprocess.run([PY, "-c", code, *args], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        sys.exit(f"load_memory: helper failed:\n{r.stderr}")
    return r.stdout


GRAPH_INPUTS = r"""
import json, sys, onnx
m = onnx.load(sys.argv[1], load_external_data=False)
init = {t.name for t in m.graph.initializer}
print(json.dumps([[i.name, [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                            for d in i.type.tensor_type.shape.dim]]
                  for i in m.graph.input if i.name not in init]))
"""

WRITE_NPY = r"""
import sys, numpy as np
shape = tuple(int(d) for d in sys.argv[2].split("x"))
np.save(sys.argv[1], np.random.default_rng(int(sys.argv[3])).standard_normal(shape).astype(np.float32))
"""


# ---------------------------------------------------------------- machine

def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1])
    except OSError:
        pass
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "mem_total_kb": mem, "kernel": os.uname().release}


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


# ---------------------------------------------------------------- parsing

def parse(kind, out):
    s = {"runs_ms": [float(m.group(2)) for m in RUN_LINE.finditer(out)]}
    if kind == "ours":
        m = READY.search(out)
        if m:
            s["load_ms"], s["open_ms"], s["plan_ms"] = (float(m.group(i)) for i in (1, 2, 3))
        m = OUR_MEMORY.search(out)
        if m:
            s["self_vmhwm_mb"], s["self_rss_mb"], s["resident_weights_mb"], s["mapped_weights_mb"] = (
                float(m.group(i)) for i in (1, 2, 3, 4))
        m = OUR_BUDGET.search(out)
        if m:
            s["budget_line"] = m.group(0)
        m = ISA_LINE.search(out)
        if m:
            s["model_line"] = m.group(0)
    else:
        m = ORT_LOADED.search(out)
        if m:
            s["ort_version"], s["load_ms"] = m.group(1), float(m.group(2))
    return s


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=1):
    return "—" if x is None else f"{x:,.{digits}f}"


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sarai", required=True, help="the sarai-rt binary")
    ap.add_argument("--dir", required=True, help="folder with model.onnx(+.data), model.sarai, int8.onnx(+.data)")
    ap.add_argument("--input-name", help="the model input (default: the ONNX graph's only input)")
    ap.add_argument("--shape", help="input shape DxDxD (default: the graph input's dims, symbolic ones 1 / 300)")
    ap.add_argument("--runs", type=int, default=3, help="runs per process (first run + median of the rest)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="processes per cell; the table shows medians")
    ap.add_argument("--caches", default="cold,warm", help="cache states, comma separated: cold, warm")
    ap.add_argument("--budgets", default="", help="extra ours INT8 rows with --max-memory-mb B (comma separated)")
    ap.add_argument("--runners", default="int8,fp32,ort-fp32,ort-int8",
                    help="which of int8, fp32, ort-fp32, ort-int8 (comma separated)")
    ap.add_argument("--no-ort", action="store_true", help="skip ONNX Runtime (and making int8.onnx)")
    ap.add_argument("--rss", choices=("wait4", "time"), default="wait4",
                    help="peak RSS from os.wait4 (default) or GNU /usr/bin/time -f %%M")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write every sample and the medians here")
    a = ap.parse_args()

    sarai = os.path.abspath(a.sarai)
    if not os.access(sarai, os.X_OK):
        sys.exit(f"load_memory: {a.sarai} is not an executable")
    if a.runs < 1 or a.repeats < 1 or a.threads < 0:
        sys.exit("load_memory: --runs and --repeats must be >= 1, --threads >= 0")
    caches = [c for c in a.caches.split(",") if c]
    if not caches or any(c not in ("cold", "warm") for c in caches):
        sys.exit("load_memory: --caches takes cold, warm or cold,warm")
    budgets = [int(b) for b in a.budgets.split(",") if b.strip()]
    wanted = [r for r in a.runners.split(",") if r]
    if any(r not in ("int8", "fp32", "ort-fp32", "ort-int8") for r in wanted):
        sys.exit("load_memory: --runners takes int8, fp32, ort-fp32, ort-int8")
    if a.no_ort:
        wanted = [r for r in wanted if not r.startswith("ort")]
    if budgets and "int8" not in wanted:
        wanted.insert(0, "int8")  # the budget rows' reference
    if a.rss == "time" and not os.access("/usr/bin/time", os.X_OK):
        sys.exit("load_memory: --rss time needs GNU time at /usr/bin/time")

    d = os.path.abspath(a.dir)
    onnx_path, sarai_path, int8_path = (os.path.join(d, n) for n in ("model.onnx", "model.sarai", "int8.onnx"))
    if not os.path.exists(onnx_path):
        sys.exit(f"load_memory: {onnx_path} not found")
    use_ort = any(r.startswith("ort") for r in wanted)
    made = []
    for path, extra, needed in ((sarai_path, [], "int8" in wanted),
                                (int8_path, ["--to", "onnx"], "ort-int8" in wanted)):
        if needed and not os.path.exists(path):
            cmd = [sarai, "convert", onnx_path, *extra, "-o", path, "-q"]
            log(f"making {path}: {shlex.join(cmd)}")
            if subprocess.run(cmd, stdout=sys.stderr, check=False).returncode != 0:
                sys.exit(f"load_memory: {shlex.join(cmd)} failed")
            made.append(shlex.join(cmd))

    if use_ort:
        probe = ("const p=require('path');for(const c of [p.join(process.argv[1],'node_modules','onnxruntime-node'),"
                 "'onnxruntime-node']){try{require.resolve(c);process.exit(0)}catch(e){}}process.exit(77)")
        try:
            r = subprocess.run(["node", "-e", probe, ORT_DIR], capture_output=True, check=False)
        except FileNotFoundError:
            sys.exit("load_memory: node not found (ONNX Runtime runs under node); pass --no-ort")
        if r.returncode != 0:
            sys.exit(f"load_memory: onnxruntime-node not installed in {ORT_DIR} (tools/scripts/ort/setup.sh); pass --no-ort")

    inputs = json.loads(helper(GRAPH_INPUTS, onnx_path))
    if a.input_name:
        match = [i for i in inputs if i[0] == a.input_name]
        if not match:
            sys.exit(f"load_memory: model has no input {a.input_name!r} (inputs: {[i[0] for i in inputs]})")
        name, dims = match[0]
    elif len(inputs) == 1:
        name, dims = inputs[0]
    else:
        sys.exit(f"load_memory: the model has {len(inputs)} inputs; pass --input-name")
    if a.shape:
        shape = [int(x) for x in a.shape.lower().split("x")]
        if len(shape) != len(dims) or any(isinstance(g, int) and g > 0 and g != s for g, s in zip(dims, shape)):
            sys.exit(f"load_memory: --shape {a.shape} does not fit input {name} {dims}")
    else:
        shape = [g if isinstance(g, int) and g > 0 else (1 if k == 0 else 300) for k, g in enumerate(dims)]
    shape_s = "x".join(map(str, shape))

    runners = []  # (key, label, kind, model, files, extra args)
    def files_of(model):
        return [f for f in (model, model + ".data") if os.path.exists(f)]
    for key in wanted:
        if key == "int8":
            runners.append(("int8", "ours INT8 (.sarai)", "ours", sarai_path, files_of(sarai_path), []))
            for b in budgets:
                runners.append((f"int8-b{b}", f"ours INT8, --max-memory-mb {b}", "ours", sarai_path,
                                files_of(sarai_path), ["--max-memory-mb", str(b)]))
        elif key == "fp32":
            runners.append(("fp32", "ours FP32 (.onnx)", "ours", onnx_path, files_of(onnx_path), []))
        elif key == "ort-fp32":
            runners.append(("ort-fp32", "ORT FP32 (.onnx)", "ort", onnx_path, files_of(onnx_path), []))
        elif key == "ort-int8":
            runners.append(("ort-int8", "ORT INT8 (int8.onnx)", "ort", int8_path, files_of(int8_path), []))

    mach = machine()
    started = datetime.datetime.now().astimezone()
    load_start = loadavg()
    env = {k: os.environ[k] for k in ENV_SHOWN if k in os.environ}

    with tempfile.TemporaryDirectory(prefix="load_memory.") as tmp:
        x_npy = os.path.join(tmp, "x.npy")
        ort_out = os.path.join(tmp, "ort_out")
        if use_ort:
            helper(WRITE_NPY, x_npy, shape_s, str(a.seed))

        def command(r):
            key, label, kind, model, files, extra = r
            if kind == "ours":
                return [sarai, "run", model, "--random", f"{name}={shape_s}", "--runs", str(a.runs),
                        "--threads", str(a.threads), "--report-memory", *extra]
            return ["node", RUN_ORT, model, "--input", f"{name}={x_npy}", "--output-dir", ort_out,
                    "--runs", str(a.runs), "--threads", str(a.threads)]

        samples = {}  # (key, cache) -> [sample]
        failed = []

        def measure(r, cache, discard=False):
            key, label, kind = r[0], r[1], r[2]
            files = r[4]
            if cache == "cold" and not discard:
                evict(files)
            resident = resident_fraction(files)
            code, out, err, maxrss, floor, wall = spawn(command(r), a.rss, tmp)
            if discard:
                log(f"  {label}: warm-up run (discarded), exit {code}")
                return
            s = parse(kind, out)
            s.update(exit=code, maxrss_kb=maxrss, floor_kb=floor, wall_s=wall, resident_before=resident)
            if code != 0 or "load_ms" not in s or len(s["runs_ms"]) != a.runs:
                s["error"] = (err.strip() or out.strip())[-2000:]
                failed.append((label, cache, code, s["error"]))
                log(f"  {label} [{cache}]: FAILED (exit {code}):\n{s['error']}")
            else:
                rest = s["runs_ms"][1:]
                log(f"  {label} [{cache}, {100 * resident:.0f}% resident]: load {s['load_ms']:.1f} ms, "
                    f"first {s['runs_ms'][0]:.1f} ms, median {fmt(med(rest))} ms, "
                    f"peak RSS {fmt(maxrss * 1024 / MB if maxrss else None)} MB, {wall:.2f} s")
            samples.setdefault((key, cache), []).append(s)

        for rep in range(a.repeats):
            order = runners if rep % 2 == 0 else runners[::-1]
            log(f"repeat {rep + 1}/{a.repeats} (load average {loadavg()})")
            for r in order:
                ran_cold = False
                for cache in caches:
                    if cache == "cold":
                        measure(r, "cold")
                        ran_cold = True
                    else:
                        if (not ran_cold and rep == 0) or resident_fraction(r[4]) < 0.99:
                            measure(r, "warm", discard=True)
                        measure(r, "warm")

    load_end = loadavg()
    ort_version = next((s["ort_version"] for v in samples.values() for s in v if "ort_version" in s), None)

    # -------------------------------------------------------------- cells
    cells = {}
    for (key, cache), ss in samples.items():
        ok = [s for s in ss if "error" not in s]
        if not ok:
            cells[(key, cache)] = None
            continue
        floor_hit = any(s["maxrss_kb"] is not None and s["floor_kb"] and s["maxrss_kb"] <= s["floor_kb"] + 1024
                        for s in ok)
        cells[(key, cache)] = {
            "load_ms": med([s.get("load_ms") for s in ok]),
            "open_ms": med([s.get("open_ms") for s in ok]),
            "plan_ms": med([s.get("plan_ms") for s in ok]),
            "first_ms": med([s["runs_ms"][0] for s in ok]),
            "median_ms": med([med(s["runs_ms"][1:]) for s in ok]),
            "peak_rss_mb": med([s["maxrss_kb"] * 1024 / MB if s["maxrss_kb"] else None for s in ok]),
            "self_vmhwm_mb": med([s.get("self_vmhwm_mb") for s in ok]),
            "resident_weights_mb": med([s.get("resident_weights_mb") for s in ok]),
            "wall_s": med([s["wall_s"] for s in ok]),
            "resident_before_min": min(s["resident_before"] for s in ok),
            "resident_before_max": max(s["resident_before"] for s in ok),
            "at_floor": floor_hit,
            "n": len(ok),
            "streaming": any("streaming" in s.get("budget_line", "") for s in ok),
        }

    # -------------------------------------------------------------- report
    model_line = next((s["model_line"] for v in samples.values() for s in v if "model_line" in s), "")
    isa = re.search(r"ISA .*$", model_line)
    print(f"### Load time and peak RSS: {os.path.basename(d)}, input {name} {shape_s}, "
          f"{a.threads} thread{'s' if a.threads != 1 else ''}")
    print()
    print(f"- machine: {mach['cpu']}, {mach['logical_cpus']} logical CPUs, "
          f"{mach['mem_total_kb'] / 1024 / 1024:.1f} GiB RAM, Linux {mach['kernel']}"
          + (f"; {isa.group(0)}" if isa else ""))
    print(f"- date: {started.strftime('%Y-%m-%d %H:%M %Z')}; load average {load_start} at start, {load_end} at end"
          + (f"; env {' '.join(f'{k}={v}' for k, v in env.items())}" if env else ""))
    sizes = ", ".join(f"{os.path.basename(f)} {os.path.getsize(f) / MB:,.1f} MB"
                      for f in dict.fromkeys(f for r in runners for f in r[4]))
    print(f"- files: {sizes}")
    print(f"- {a.runs} run{'s' if a.runs != 1 else ''} per process; each cell is the median of {a.repeats} "
          f"process{'es' if a.repeats != 1 else ''} (runner order alternating)"
          + (f"; ONNX Runtime {ort_version} (onnxruntime-node, CPU EP)" if ort_version else ""))
    print()
    print("| runner | cache | load ms | open ms | first run ms | median run ms | peak RSS MB | "
          "median vs ours INT8 | process s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in runners:
        key, label = r[0], r[1]
        for cache in caches:
            c = cells.get((key, cache))
            if c is None:
                print(f"| {label} | {cache} | failed (below) | | | | | | |")
                continue
            ref = cells.get(("int8", cache))
            ratio = (f"{c['median_ms'] / ref['median_ms']:.2f}×"
                     if ref and c["median_ms"] and ref["median_ms"] else "—")
            rss = fmt(c["peak_rss_mb"]) + (" (≤ floor)" if c["at_floor"] else "")
            lab = label + (" (streaming)" if c["streaming"] else "")
            print(f"| {lab} | {cache} | {fmt(c['load_ms'])} | {fmt(c['open_ms'])} | {fmt(c['first_ms'])} | "
                  f"{fmt(c['median_ms'])} | {rss} | {ratio} | {fmt(c['wall_s'], 2)} |")
    print()
    print("Commands (`$X` = seeded standard-normal float32 .npy of the input shape, "
          f"`numpy.random.default_rng({a.seed})`; `$OUT` = a temp folder):")
    print()
    print("```sh")
    for m in made:
        print(f"{m}   # made by this script")
    for r in runners:
        cmd = shlex.join(command(r)).replace(x_npy, "$X").replace(ort_out, "$OUT")
        print(cmd)
    print("```")
    print()
    floors = [s["floor_kb"] for v in samples.values() for s in v if s.get("floor_kb")]
    if a.rss == "wait4":
        print(f"Peak RSS: `ru_maxrss` of the process from `os.wait4` (VmHWM at exit), MB = 10^6 bytes; "
              f"floor (the harness's own RSS at spawn, which Linux carries into the child) "
              f"{fmt(max(floors) * 1024 / MB if floors else None)} MB.")
    else:
        print("Peak RSS: GNU `/usr/bin/time -f %M` (the process's ru_maxrss, VmHWM at exit), MB = 10^6 bytes.")
    self_hwm = [(r[1], cells[(r[0], c)]) for r in runners for c in caches
                if cells.get((r[0], c)) and cells[(r[0], c)]["self_vmhwm_mb"] is not None]
    if self_hwm:
        diffs = [c["peak_rss_mb"] - c["self_vmhwm_mb"] for _, c in self_hwm if c["peak_rss_mb"]]
        if diffs:
            print(f"sarai-rt's own `--report-memory` VmHWM agrees within {max(abs(x) for x in diffs):.1f} MB.")
    if "cold" in caches:
        cold = [cells[(r[0], "cold")] for r in runners if cells.get((r[0], "cold"))]
        if cold:
            print(f"Cold: `os.sync()` + `posix_fadvise(POSIX_FADV_DONTNEED)` on the runner's model files before "
                  f"each run; mincore: at most {100 * max(c['resident_before_max'] for c in cold):.1f} % "
                  f"of them resident after eviction.")
    if "warm" in caches:
        warm = [cells[(r[0], "warm")] for r in runners if cells.get((r[0], "warm"))]
        if warm:
            print(f"Warm: the runner's previous run left its files cached; mincore: at least "
                  f"{100 * min(c['resident_before_min'] for c in warm):.1f} % resident at the start.")

    if failed:
        print()
        for label, cache, code, err in {(f[0], f[1]): f for f in failed}.values():
            lines = [l for l in err.splitlines() if l.strip()]
            print(f"Failed: {label} [{cache}], exit {code}: {lines[-1] if lines else '(no output)'}")

    if a.json:
        out = {
            "machine": mach, "date": started.isoformat(), "loadavg_start": load_start, "loadavg_end": load_end,
            "env": env, "args": vars(a), "input": {"name": name, "shape": shape}, "ort_version": ort_version,
            "model_line": model_line, "made": made,
            "commands": {r[0]: command(r) for r in runners},
            "cells": [{"runner": r[0], "label": r[1], "cache": c, **(cells.get((r[0], c)) or {"failed": True})}
                      for r in runners for c in caches],
            "samples": [{"runner": k, "cache": c, **s} for (k, c), v in samples.items() for s in v],
        }
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    if failed:
        for label, cache, code, err in failed:
            log(f"load_memory: {label} [{cache}] failed (exit {code})")
        sys.exit(1)


if __name__ == "__main__":
    main()
