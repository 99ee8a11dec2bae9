#!/usr/bin/python3
"""End-to-end INT8 latency and accuracy (issue 4): sarai-rt's INT8 blob, its FP32
path, and ONNX Runtime 1.30 on the FP32 and on the INT8 ONNX, side by side in
one run, on the same input and thread count.

Usage:

    /usr/bin/python3 bench/e2e_int8.py --sarai build/release/sarai-rt
        [--frames 3000] [--runs 20] [--rounds 2] [--threads 2] [--seed 0]
        [--work-dir DIR] [--layers 6] [--d-model 512] [--ffn 2048] [--heads 8]
        [--mels 80] [--profile]

    # quick check (a few seconds):
    /usr/bin/python3 bench/e2e_int8.py --sarai build/release/sarai-rt --frames 300 --runs 4

Needs ONNX Runtime (tools/setup.sh, or tools/scripts/ort/setup.sh; looked up in
$SARAI_ORT_DIR, default ~/.cache/sarai-rt/ort) and python3 with numpy + onnx.

The model is the issue's Whisper-base-size audio encoder (d_model 512,
6 layers, FFN 2048, 8 heads, 80 mel bins); 3000 mel frames = 30 s of audio.
The script makes it in a work dir (a temp dir, or --work-dir DIR, which is
kept and reused: a step whose outputs exist is skipped; delete the files to
redo it; the conversions are also redone when the sarai-rt binary changed):

    tools/scripts/make_big_encoder.py DIR/enc_... --layers 6 --d-model 512 --ffn 2048 --heads 8 --mels 80
    sarai-rt convert model.onnx -o model.sarai               (our INT8 blob)
    sarai-rt convert model.onnx --to onnx -o int8.onnx      (INT8 ONNX for ONNX Runtime:
                                                              DynamicQuantizeLinear + MatMulInteger)

and one seeded standard-normal input mel [1, mels, frames] (.npy) that every
runner reads. The four runners, each a separate process per round:

    1. ours INT8   sarai-rt run model.sarai --input mel=X --runs K+1 --threads T --output-dir D
    2. ours FP32   sarai-rt run model.onnx  ...
    3. ORT FP32    node tools/scripts/ort/run_ort.js model.onnx --input mel=X --runs K+1 --threads T --output-dir D
    4. ORT INT8    node tools/scripts/ort/run_ort.js int8.onnx  ...

The --runs timed runs are split into --rounds rounds (20 = 2 x 10); in each
round every runner does K+1 runs in one process and the first (warm-up: page
faults, lazy init) is dropped. Rounds go forward then backward through the
runners (1 2 3 4, 4 3 2 1, ...) so machine drift hits all of them alike.
P50 is the median of all timed runs of a runner; P99 the nearest-rank 99th
percentile (the ceil(0.99 n)-th smallest: with n = 20 that is the slowest
run). Cosine similarity and max abs error of each runner's output are against
our FP32 output (which is checked against ONNX Runtime FP32 on the same row).

Prints (stdout) a Markdown block for docs/BENCHMARKS.md: the latency/accuracy
table, the ratio table, the exact command, date, `lscpu` model name, thread
count and the ISA caps in effect (SARAI_MAX_ISA, ONEDNN_MAX_CPU_ISA).
Progress and every run's time go to stderr. --profile adds one extra `sarai-rt run --runs 3 --profile`
per sarai-rt runner after the timing (not counted) and prints its top op types.
Exits 1 with a one-line message when a step or runner fails, or ONNX Runtime
is missing.
"""
import argparse
import datetime
import hashlib
import math
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile

try:
    import numpy as np
except ImportError:
    sys.exit("e2e_int8: needs numpy (and onnx, to make the model): run it with /usr/bin/python3")

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_ORT = os.path.join(SRC, "tools/scripts/ort/run_ort.js")
MAKE_ENCODER = os.path.join(SRC, "tools/scripts/make_big_encoder.py")
ORT_DIR = os.environ.get("SARAI_ORT_DIR") or os.path.expanduser("~/.cache/sarai-rt/ort")

RUN_LINE = re.compile(r"^run (\d+): ([0-9.]+) ms")
ORT_VERSION = re.compile(r"^ort ([0-9][^:]*): loaded")
PROFILE_LINE = re.compile(r"^\s+(\S+)\s+([0-9.]+) ms\s+([0-9.]+) %\s+\((\d+) nodes?\)")
ENV_SHOWN = ("SARAI_MAX_ISA", "ONEDNN_MAX_CPU_ISA")
ENV_PREFIXES = ("SARAI_", "ONEDNN_", "DNNL_", "MIMALLOC_", "OMP_", "KMP_", "GOMP_")


def die(msg):
    sys.exit(f"e2e_int8: {msg}")


def log(msg):
    print(f"e2e_int8: {msg}", file=sys.stderr, flush=True)


def last_line(text):
    lines = [l.strip() for l in (text or "").splitlines() if l.strip()]
    return lines[-1] if lines else "(no output on stderr)"


def run_step(cmd, what):
    """Runs a command; on failure exits with one line naming the step."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as e:
        die(f"{what}: cannot start {cmd[0]}: {e}")
    if p.returncode == 77 and cmd[0] == "node":
        die(f"ONNX Runtime (onnxruntime-node) is not installed in {ORT_DIR}; run tools/setup.sh "
            f"(or tools/scripts/ort/setup.sh)")
    if p.returncode != 0:
        die(f"{what} failed (exit {p.returncode}): {last_line(p.stderr or p.stdout)} [command: {shlex.join(cmd)}]")
    return p.stdout


def check_prerequisites(sarai):
    if not (os.path.isfile(sarai) and os.access(sarai, os.X_OK)):
        die(f"--sarai {sarai} is not an executable file (build it with tools/build.sh)")
    if shutil.which("node") is None:
        die("node is not on PATH; ONNX Runtime runs under Node.js: run tools/setup.sh")
    if not os.path.isfile(os.path.join(ORT_DIR, "node_modules", "onnxruntime-node", "package.json")):
        die(f"ONNX Runtime (onnxruntime-node) is not installed in {ORT_DIR}; run tools/setup.sh "
            f"(or tools/scripts/ort/setup.sh)")


def prepare(a, work):
    """Model, blob, INT8 ONNX and input in the work dir; returns their paths."""
    cfg = f"enc_L{a.layers}_d{a.d_model}_f{a.ffn}_h{a.heads}_m{a.mels}"
    mdir = os.path.join(work, cfg)
    onnx_path = os.path.join(mdir, "model.onnx")
    blob = os.path.join(mdir, "model.sarai")
    int8_onnx = os.path.join(mdir, "int8.onnx")
    # make_big_encoder.py renames model.onnx into place last, after the data file.
    if os.path.isfile(onnx_path) and os.path.isfile(onnx_path + ".data"):
        log(f"reusing {onnx_path}")
    else:
        log(f"generating {onnx_path}")
        run_step([sys.executable, MAKE_ENCODER, mdir, "--layers", str(a.layers), "--d-model", str(a.d_model),
                  "--ffn", str(a.ffn), "--heads", str(a.heads), "--mels", str(a.mels)], "make_big_encoder.py")
    # A stamp per conversion, written after it succeeded and naming the
    # binary's hash: an interrupted conversion, or one by another build
    # (the quantizer may have changed), is redone rather than reused.
    for out, extra, what in ((blob, [], "sarai-rt convert"),
                             (int8_onnx, ["--to", "onnx"], "sarai-rt convert --to onnx")):
        stamp = out + ".ok"
        if os.path.isfile(out) and os.path.isfile(stamp):
            with open(stamp) as f:
                if f.readline().strip() == a.sarai_sha:
                    log(f"reusing {out}")
                    continue
        log(f"{what} -> {out}")
        run_step([a.sarai, "convert", onnx_path, *extra, "-o", out, "-q"], what)
        with open(stamp, "w") as f:
            f.write(f"{a.sarai_sha}\n")
    x = os.path.join(work, f"mel_{a.mels}x{a.frames}_seed{a.seed}.npy")
    if not os.path.isfile(x):
        rng = np.random.default_rng(a.seed)
        np.save(x + ".tmp.npy", rng.standard_normal((1, a.mels, a.frames)).astype(np.float32))
        os.replace(x + ".tmp.npy", x)
    return mdir, onnx_path, blob, int8_onnx, x


def file_mib(*paths):
    return sum(os.path.getsize(p) for p in paths if os.path.isfile(p)) / 2**20


def split_runs(runs, rounds):
    rounds = max(1, min(rounds, runs))
    return [runs // rounds + (1 if r < runs % rounds else 0) for r in range(rounds)]


def p99_nearest_rank(xs):
    s = sorted(xs)
    return s[max(1, math.ceil(0.99 * len(s))) - 1]


def read_outputs(directory):
    return {f[:-4]: np.load(os.path.join(directory, f)) for f in sorted(os.listdir(directory)) if f.endswith(".npy")}


def compare(ref, got):
    """(min cosine, max abs error) over the outputs of ref; fails on a missing or misshapen output."""
    cos, err = 1.0, 0.0
    for name, r in ref.items():
        if name not in got:
            return None, f"no output {name}"
        g = got[name]
        if g.shape != r.shape:
            return None, f"output {name} has shape {list(g.shape)}, ours FP32 {list(r.shape)}"
        r64, g64 = r.astype(np.float64).ravel(), g.astype(np.float64).ravel()
        den = np.linalg.norm(r64) * np.linalg.norm(g64)
        c = float(r64 @ g64 / den) if den > 0 else (1.0 if not r64.any() and not g64.any() else 0.0)
        cos, err = min(cos, c), max(err, float(np.max(np.abs(r64 - g64))) if r64.size else 0.0)
    return cos, err


def ordinal(k):
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def loadavg():
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def lscpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return "unknown (no lscpu)"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def env_in_effect():
    shown = [f"{k}={os.environ[k]}" if k in os.environ else f"{k} unset" for k in ENV_SHOWN]
    extra = [f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES) and k not in ENV_SHOWN]
    return ", ".join(shown + extra)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="See the top of bench/e2e_int8.py for details.")
    ap.add_argument("--sarai", required=True, help="the sarai-rt binary")
    ap.add_argument("--frames", type=int, default=3000, help="mel frames (3000 = 30 s of audio)")
    ap.add_argument("--runs", type=int, default=20, help="timed runs per runner, warm-ups not counted")
    ap.add_argument("--rounds", type=int, default=2, help="split the runs into this many alternating rounds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="seed of the input")
    ap.add_argument("--work-dir", help="keep the model, blob and outputs here and reuse them (default: a temp dir)")
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--d-model", type=int, default=512)
    ap.add_argument("--ffn", type=int, default=2048)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--mels", type=int, default=80)
    ap.add_argument("--profile", action="store_true",
                    help="after timing, one extra `sarai-rt run --runs 3 --profile` per sarai-rt runner; print its top ops")
    a = ap.parse_args()
    if min(a.frames, a.runs, a.rounds, a.threads, a.layers, a.d_model, a.ffn, a.heads, a.mels) <= 0:
        ap.error("sizes, --runs, --rounds and --threads must be positive")
    a.sarai = os.path.abspath(a.sarai)
    check_prerequisites(a.sarai)
    command = shlex.join([sys.executable, os.path.relpath(os.path.abspath(sys.argv[0]), SRC), *sys.argv[1:]])
    started = datetime.datetime.now().astimezone()
    load_start = loadavg()

    # Run a private copy of the binary: the build tree may be rebuilt while
    # the benchmark runs (shared machine), and every round must use the same
    # binary. It links only system libraries, so the copy runs as is.
    snap = tempfile.TemporaryDirectory(prefix="e2e_int8_bin_")
    sarai_src = a.sarai
    sarai_built = datetime.datetime.fromtimestamp(os.path.getmtime(sarai_src)).astimezone()
    a.sarai = shutil.copy2(sarai_src, os.path.join(snap.name, "sarai-rt"))
    with open(a.sarai, "rb") as f:
        sarai_sha = a.sarai_sha = hashlib.sha256(f.read()).hexdigest()[:12]
    tmp = None
    if a.work_dir:
        work = os.path.abspath(a.work_dir)
        os.makedirs(work, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="e2e_int8_")
        work = tmp.name
    try:
        mdir, onnx_path, blob, int8_onnx, x = prepare(a, work)
        inp = f"mel={x}"
        outs = os.path.join(mdir, f"outputs_{a.frames}_seed{a.seed}")
        shutil.rmtree(outs, ignore_errors=True)  # no stale outputs from an earlier run
        # key, label, model, command (without --runs)
        runners = [
            ("ours_int8", "sarai-rt INT8", blob, [a.sarai, "run", blob]),
            ("ours_fp32", "sarai-rt FP32", onnx_path, [a.sarai, "run", onnx_path]),
            ("ort_fp32", "ONNX Runtime FP32", onnx_path, ["node", RUN_ORT, onnx_path]),
            ("ort_int8", "ONNX Runtime INT8", int8_onnx, ["node", RUN_ORT, int8_onnx]),
        ]
        for key, _, _, cmd in runners:
            cmd += ["--input", inp, "--threads", str(a.threads), "--output-dir", os.path.join(outs, key)]
        times = {key: [] for key, *_ in runners}
        ort_version = "?"
        plan = split_runs(a.runs, a.rounds)
        for r, k in enumerate(plan):
            order = runners if r % 2 == 0 else runners[::-1]
            for key, label, _, cmd in order:
                log(f"round {r + 1}/{len(plan)}: {label}, {k} + 1 runs")
                out = run_step(cmd + ["--runs", str(k + 1)], f"{label} ({shlex.join(cmd[:3])})")
                t = [float(m.group(2)) for m in map(RUN_LINE.match, out.splitlines()) if m]
                if len(t) != k + 1:
                    die(f"{label}: expected {k + 1} 'run N: X ms' lines, got {len(t)}")
                times[key] += t[1:]  # the first run is warm-up
                log(f"  warm-up {t[0]:.1f} ms; timed: " + " ".join(f"{v:.1f}" for v in t[1:]))
                for m in map(ORT_VERSION.match, out.splitlines()):
                    if m:
                        ort_version = m.group(1)

        profiles = {}
        if a.profile:
            for key, label, _, cmd in runners[:2]:
                log(f"profile: {label}")
                out = run_step(cmd + ["--runs", "3", "--profile"], f"{label} --profile")
                ops = [m.groups() for m in map(PROFILE_LINE.match, out.splitlines()) if m]
                profiles[label] = ops

        ref = read_outputs(os.path.join(outs, "ours_fp32"))
        if not ref:
            die(f"sarai-rt FP32 wrote no outputs into {os.path.join(outs, 'ours_fp32')}")
        acc = {}
        for key, label, *_ in runners:
            cos, err = compare(ref, read_outputs(os.path.join(outs, key)))
            if cos is None:
                die(f"{label}: {err}")
            acc[key] = (cos, err)
        first = next(iter(ref.values()))

        stats = {key: (statistics.median(t), p99_nearest_rank(t)) for key, t in times.items()}
        n = a.runs
        rank = max(1, math.ceil(0.99 * n))

        label_of = {key: label for key, label, *_ in runners}
        label_of["ort_fp32"] = f"ONNX Runtime {ort_version} FP32"
        label_of["ort_int8"] = f"ONNX Runtime {ort_version} INT8"
        model_desc = {
            "ours_int8": f"`model.sarai` ({file_mib(blob):.1f} MiB)",
            "ours_fp32": f"`model.onnx` ({file_mib(onnx_path, onnx_path + '.data'):.1f} MiB)",
            "ort_fp32": "`model.onnx`",
            "ort_int8": f"`int8.onnx` ({file_mib(int8_onnx, int8_onnx + '.data'):.1f} MiB)",
        }

        def fmt_ratio(num, den):
            (n50, n99), (d50, d99) = stats[num], stats[den]
            r50 = n50 / d50
            reading = f"{1 / r50:.2f}× faster" if r50 < 1 else f"{r50:.2f}× slower"
            return f"{r50:.2f} | {n99 / d99:.2f} | {label_of[num]} {reading} (P50)"

        print()
        base = (a.layers, a.d_model, a.ffn, a.heads, a.mels) == (6, 512, 2048, 8, 80)
        print(f"{'Whisper-base-size' if base else 'Whisper-style'} audio encoder (d_model {a.d_model}, {a.layers} layers, FFN {a.ffn}, "
              f"{a.heads} heads, {a.mels} mel bins), {a.frames} frames ({a.frames / 100:g} s of audio), "
              f"output {list(first.shape)}; {a.threads} threads; {n} timed runs per runner.")
        print()
        print("| runner | model | P50 ms | P99 ms | cosine vs sarai-rt FP32 | max abs err vs sarai-rt FP32 |")
        print("|---|---|---|---|---|---|")
        for key, *_ in runners:
            p50, p99 = stats[key]
            cos, err = acc[key]
            cos_s, err_s = ("1 (reference)", "0") if key == "ours_fp32" else (f"{cos:.6f}", f"{err:.2e}")
            print(f"| {label_of[key]} | {model_desc[key]} | {p50:.1f} | {p99:.1f} | {cos_s} | {err_s} |")
        print()
        print("| time ratio (< 1: first is faster) | P50 | P99 | reading |")
        print("|---|---|---|---|")
        print(f"| sarai-rt INT8 / sarai-rt FP32 | {fmt_ratio('ours_int8', 'ours_fp32')} |")
        print(f"| sarai-rt INT8 / ONNX Runtime INT8 | {fmt_ratio('ours_int8', 'ort_int8')} |")
        print(f"| sarai-rt INT8 / ONNX Runtime FP32 | {fmt_ratio('ours_int8', 'ort_fp32')} |")
        print()
        print("```sh")
        print(command)
        print("```")
        print()
        print(f"- date: {started.strftime('%Y-%m-%d %H:%M %Z')}")
        print(f"- CPU (`lscpu` model name): {lscpu_model()}; {os.cpu_count()} logical CPUs")
        print(f"- load average (1/5/15 min) at start: {load_start}; at end: {loadavg()} "
              f"(other work on the machine shows up here)")
        print(f"- threads: {a.threads} (sarai-rt `--threads`, ONNX Runtime intra-op threads; inter-op 1)")
        print(f"- environment: {env_in_effect()}")
        print(f"- sarai-rt: `{sarai_src}` (built {sarai_built.strftime('%Y-%m-%d %H:%M:%S %Z')}, sha256 "
              f"{sarai_sha}..., copied before the first step so all rounds run this binary); ONNX Runtime: npm onnxruntime-node {ort_version} "
              f"(CPU execution provider, all graph optimizations)")
        print(f"- method: {len(plan)} rounds of {'/'.join(map(str, plan))} timed runs, each runner in its own "
              f"process per round after 1 dropped warm-up run, rounds alternating forward/backward over the "
              f"runners; P50 = median; P99 = nearest rank (the {ordinal(rank)} smallest of {n}"
              f"{': the slowest run' if rank == n else ''}).")
        print(f"- input: seeded standard-normal mel [1, {a.mels}, {a.frames}] (seed {a.seed}), the same .npy for "
              f"every runner; accuracy = cosine similarity and max abs error over the output(s) against sarai-rt "
              f"FP32's output (min cosine / max error if several).")
        for label, ops in profiles.items():
            top = ", ".join(f"{op} {pct} %" for op, _, pct, _ in ops[:5])
            total = sum(float(ms) for _, ms, _, _ in ops)
            print(f"- `--profile` {label} (mean per run over 3 runs, warm-up included: {total:.1f} ms in ops): {top}")
    finally:
        if tmp is not None:
            tmp.cleanup()
        snap.cleanup()


if __name__ == "__main__":
    main()
