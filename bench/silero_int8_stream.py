#!/usr/bin/python3
"""Silero VAD as a stream, FP32 against INT8 blobs (issue 17: subgraph
weights and `convert --recurrent int8`): the accuracy half of the
docs/BENCHMARKS.md section "Silero VAD in INT8"; the speed half is
`sarai-rt bench ... --feed`.

Usage:

    PYTHONPATH=build/release/python /usr/bin/python3 bench/silero_int8_stream.py \\
        silero_vad_v5.onnx v5_int8.sarai [v5_int8_rnn.sarai ...] [--chunks 1000] [--seed 0]

The stream: --chunks chunks of 512 samples at 16 kHz, generated from the
seed: segments of 0.3-1.5 s alternating between "voiced" (a 90-250 Hz
harmonic series with vibrato, amplitude-modulated at a syllable rate of
3-6 Hz) and background (low white noise), plus a little noise throughout.
Every model runs the same chunks in order with its state fed back
(v5/v6: stateN -> state; legacy: hn -> h, cn -> c), on one thread.

Prints, per blob against the .onnx (FP32): the cosine and max |diff| of the
per-chunk speech probabilities over the stream, the share of chunks whose
decision (p > 0.5) agrees, and the cosine of the final state.
"""
import argparse
import math

import numpy as np

import sarai_rt


def make_stream(chunks, seed):
    rng = np.random.default_rng(seed)
    sr = 16000
    n = chunks * 512
    out = np.zeros(n, dtype=np.float64)
    t0 = 0
    voiced = False
    while t0 < n:
        seg = int(rng.uniform(0.3, 1.5) * sr)
        t = np.arange(min(seg, n - t0)) / sr
        if voiced:
            f0 = rng.uniform(90, 250)
            phase = 2 * math.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * math.pi * 5 * t))) / sr
            sig = sum(np.sin(k * phase) / k for k in range(1, 12))
            env = 0.5 * (1 + np.sin(2 * math.pi * rng.uniform(3, 6) * t - math.pi / 2))
            out[t0:t0 + len(t)] = 0.3 * env * sig
        else:
            out[t0:t0 + len(t)] = 0.01 * rng.standard_normal(len(t))
        voiced = not voiced
        t0 += len(t)
    out += 0.003 * rng.standard_normal(n)
    return out.astype(np.float32).reshape(chunks, 1, 512)


def run_stream(path, stream):
    s = sarai_rt.InferenceSession(path, threads=1)
    names = [i.name for i in s.get_inputs()]
    legacy = "h" in names
    sr = np.array(16000, dtype=np.int64)
    if legacy:
        state = {"h": np.zeros((2, 1, 64), np.float32), "c": np.zeros((2, 1, 64), np.float32)}
        fed = {"hn": "h", "cn": "c"}
    else:
        state = {"state": np.zeros((2, 1, 128), np.float32)}
        fed = {"stateN": "state"}
    outs = [o.name for o in s.get_outputs()]
    probs = []
    for chunk in stream:
        r = dict(zip(outs, s.run(None, {"input": chunk, "sr": sr, **state})))
        probs.append(float(np.asarray(r["output"]).reshape(-1)[0]))
        for o, i in fed.items():
            state[i] = np.asarray(r[o])
    final = np.concatenate([state[k].reshape(-1) for k in sorted(state)])
    return np.array(probs), final


def cosine(a, b):
    a = a.astype(np.float64).reshape(-1)
    b = b.astype(np.float64).reshape(-1)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("onnx")
    ap.add_argument("blobs", nargs="+")
    ap.add_argument("--chunks", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    stream = make_stream(a.chunks, a.seed)
    ref_p, ref_state = run_stream(a.onnx, stream)
    print(f"{a.onnx}: {a.chunks} chunks, speech (p > 0.5) in {np.mean(ref_p > 0.5):.1%}, "
          f"mean p {ref_p.mean():.4f}")
    for b in a.blobs:
        p, st = run_stream(b, stream)
        print(f"{b}: probability cosine {cosine(ref_p, p):.6f}, max |diff| {np.abs(ref_p - p).max():.4f}, "
              f"decisions agree {np.mean((ref_p > 0.5) == (p > 0.5)):.2%}, final state cosine {cosine(ref_state, st):.6f}")


if __name__ == "__main__":
    main()
