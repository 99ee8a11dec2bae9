#!/usr/bin/python3
"""The users' INT8 gate on the vision models people have, with realistic inputs.

For each model: make calibration and evaluation sets that do not overlap
(`inputs`), then (`measure`) convert it plain and with --auto-keep-fp32 on
the calibration sets, run the FP32 model and each blob on every evaluation
set with `sarai-rt run`, and print one markdown row per blob: the lowest
cosine over outputs (all sets together), and the task's agreement:
- `rec`, `cls`: argmax agreement (per time step / per image);
- `det` (PaddleOCR DB text map): text boxes found by FP32 (connected
  components of prob > 0.3) that INT8 also finds (a component with IoU >= 0.5);
- `wake` (openWakeWord heads): the wake-word decision (probability >= 0.5);
  `feature` (the mel and embedding stages): cosine only;
- `face` (BlazeFace): faces found (score >= 0.5, greedy NMS at IoU 0.3) by
  either model, the share both find (a pair with IoU >= 0.5).

Inputs:
- `rec`, `cls`: rendered text lines (bench/ocr_text_lines.py), PaddleOCR's
  normalization;
- `det`: rendered text pages, 640x640, lines of 14-40 px text at random
  places, ImageNet normalization as PaddleOCR's detector expects;
- `face-front` / `face-back`: crops of the face grid and the group photo that
  npm `@vladmandic/human@3.3.6` ships (assets/screenshot-facematch.jpg,
  assets/samples.jpg), NHWC RGB in [-1, 1] as MediaPipe's BlazeFace takes.

    /usr/bin/python3 bench/int8_gate.py inputs KIND DIR --count N --seed S [--assets DIR]
    /usr/bin/python3 bench/int8_gate.py measure --sarai build/release/sarai-rt --model M.onnx \\
        --kind KIND --calibration CAL --eval EVAL [--target-cosine 0.99] [--work-dir DIR]

Needs python3-pil, python3-numpy and fonts-dejavu-core (Debian).
"""
import argparse
import glob
import os
import random
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocr_text_lines  # noqa: E402


def save(d, name, x):
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, name + ".npy"), x.astype(np.float32))


def text_page(rng, size=640):
    bg = rng.randint(190, 255)
    img = Image.new("RGB", (size, size), (bg, bg - rng.randint(0, 25), bg - rng.randint(0, 25)))
    draw = ImageDraw.Draw(img)
    fonts = [f for f in ocr_text_lines.FONTS if os.path.exists(f)]
    y = rng.randint(5, 40)
    while y < size - 40:
        fsize = rng.randint(14, 40)
        font = ImageFont.truetype(rng.choice(fonts), fsize)
        text = " ".join(rng.choice(ocr_text_lines.WORDS) for _ in range(rng.randint(1, 6)))
        ink = rng.randint(0, 90)
        draw.text((rng.randint(5, size // 3), y), text, font=font, fill=(ink, ink, ink + rng.randint(0, 60)))
        y += fsize + rng.randint(6, 40)
    a = np.asarray(img, dtype=np.float32)
    a = a + np.random.default_rng(rng.randint(0, 1 << 30)).normal(0, 4, a.shape).astype(np.float32)
    a = np.clip(a, 0, 255) / 255.0
    a = (a - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    return a.transpose(2, 0, 1)[None]


def face_crop(rng, assets, size):
    if size == 128:
        # The face grid: 18 columns x 6 rows of ~107x112 px tiles below y=282.
        im = Image.open(os.path.join(assets, "screenshot-facematch.jpg")).convert("RGB")
        c, r = rng.randrange(18), rng.randrange(6)
        w, h = im.size[0] / 18.0, (im.size[1] - 282) / 6.0
        cx, cy = (c + 0.5) * w + rng.uniform(-8, 8), 282 + (r + 0.5) * h + rng.uniform(-8, 8)
        half = rng.uniform(0.55, 0.8) * max(w, h)
    else:
        # The group photo below the thumbnails (y > 200): crops of 300-600 px.
        im = Image.open(os.path.join(assets, "samples.jpg")).convert("RGB")
        half = rng.uniform(150, 300)
        cx = rng.uniform(half, im.size[0] - half)
        cy = rng.uniform(max(200 + half, 420), im.size[1] - half)
    box = (int(cx - half), int(cy - half), int(cx + half), int(cy + half))
    a = np.asarray(im.crop(box).resize((size, size), Image.BILINEAR), dtype=np.float32) / 127.5 - 1.0
    return a[None]


def make_inputs(a):
    rng = random.Random(a.seed)
    for i in range(a.count):
        d = os.path.join(a.dir, "%03d" % i)
        if a.kind == "rec":
            save(d, "x", ocr_text_lines.line(rng, 320)[0])
        elif a.kind == "cls":
            save(d, "x", ocr_text_lines.line(rng, 192)[0])
        elif a.kind == "det":
            save(d, "x", text_page(rng))
        elif a.kind in ("face-front", "face-back"):
            save(d, "input%3A0", face_crop(rng, a.assets, 128 if a.kind == "face-front" else 256))
        else:
            sys.exit("unknown kind " + a.kind)
    print("wrote %d %s input sets to %s" % (a.count, a.kind, a.dir))


def sh(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("failed (%d): %s\n%s" % (r.returncode, " ".join(cmd), r.stderr.strip()))
    return r.stdout


def run_all(sarai, model, sets, out_root, threads, input_name=None):
    outs = []
    for s in sets:
        d = os.path.join(out_root, os.path.basename(s))
        cmd = [sarai, "run", model, "--threads", str(threads), "--runs", "1", "--output-dir", d]
        for f in sorted(glob.glob(os.path.join(s, "*.npy"))):
            name = input_name or os.path.basename(f)[:-4].replace("%3A", ":")
            cmd += ["--input", name + "=" + f]
        sh(cmd)
        outs.append({os.path.basename(f)[:-4]: np.load(f) for f in glob.glob(os.path.join(d, "*.npy"))})
    return outs


def components(mask):
    """4-connected components of a 2-D bool mask, as a list of index arrays."""
    h, w = mask.shape
    seen = np.zeros_like(mask)
    comps = []
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        stack, pix = [(y0, x0)], []
        seen[y0, x0] = True
        while stack:
            y, x = stack.pop()
            pix.append(y * w + x)
            for yy, xx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and not seen[yy, xx]:
                    seen[yy, xx] = True
                    stack.append((yy, xx))
        if len(pix) >= 10:
            comps.append(np.array(pix))
    return comps


def anchors(grid_fine):
    """BlazeFace's SSD anchor centers (fixed size): a fine grid with 2 anchors
    per cell (the 512 of the first score/box outputs), then a grid half as
    fine with 6 (the 384 of the second)."""
    a = []
    for g, per in ((grid_fine, 2), (grid_fine // 2, 6)):
        for y in range(g):
            for x in range(g):
                a += [((x + 0.5) / g, (y + 0.5) / g)] * per
    return np.array(a)


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / max(1e-12, (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def faces(out, min_score=0.5, nms_iou=0.3):
    """Face boxes (x0, y0, x1, y1 in [0, 1]) after greedy NMS, as MediaPipe's
    BlazeFace graph finds them (score = sigmoid(logit) >= 0.5)."""
    scores = np.concatenate([out["Identity%3A0"].ravel(), out["Identity_1%3A0"].ravel()])
    regs = np.concatenate([out["Identity_2%3A0"][0], out["Identity_3%3A0"][0]])
    size = float(FACE_SIZE[0])
    anc = anchors(16)
    cx, cy = anc[:, 0] + regs[:, 0] / size, anc[:, 1] + regs[:, 1] / size
    w, h = regs[:, 2] / size, regs[:, 3] / size
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    keep = []
    for i in np.argsort(-scores):
        if scores[i] < 0.0:  # logit 0 = sigmoid 0.5
            break
        if all(iou(boxes[i], boxes[k]) < nms_iou for k in keep):
            keep.append(i)
    return [boxes[k] for k in keep]


FACE_SIZE = [128]


def agreement(kind, ref, test):
    """(agreeing, total) over every evaluation set."""
    agree = total = 0
    for r, t in zip(ref, test):
        if kind in ("rec", "cls"):
            (name,) = r.keys()
            a, b = r[name].argmax(-1).ravel(), t[name].argmax(-1).ravel()
            agree += int((a == b).sum())
            total += a.size
        elif kind == "feature":
            return 0, 0  # features for the next stage: cosine only
        elif kind == "wake":
            for name in r:  # the wake-word probability, decided at 0.5
                agree += int(((r[name] >= 0.5) == (t[name] >= 0.5)).sum())
                total += r[name].size
        elif kind == "det":
            (name,) = r.keys()
            mr, mt = r[name][0, 0] > 0.3, t[name][0, 0] > 0.3
            ct = set(np.nonzero(mt.ravel())[0].tolist())
            for c in components(mr):
                inter = sum(1 for p in c.tolist() if p in ct)
                # IoU against the test mask restricted to this box's bounding region
                ys, xs = c // mr.shape[1], c % mr.shape[1]
                region = mt[ys.min():ys.max() + 1, xs.min():xs.max() + 1].sum()
                overlap = inter / max(1, len(c) + int(region) - inter)
                agree += overlap >= 0.5
                total += 1
        else:
            fr, ft = faces(r), faces(t)
            matched, used = 0, set()
            for b in fr:
                j = next((j for j, c in enumerate(ft) if j not in used and iou(b, c) >= 0.5), None)
                if j is not None:
                    used.add(j)
                    matched += 1
            agree += matched
            total += len(fr) + len(ft) - matched
    return agree, total


def min_cosine(ref, test):
    worst = (2.0, "")
    for name in ref[0]:
        a = np.concatenate([r[name].ravel().astype(np.float64) for r in ref])
        b = np.concatenate([t[name].ravel().astype(np.float64) for t in test])
        c = float(a @ b / max(1e-30, np.linalg.norm(a) * np.linalg.norm(b)))
        worst = min(worst, (c, name))
    return worst


def measure(a):
    work = a.work_dir or tempfile.mkdtemp(prefix="int8-gate-")
    os.makedirs(work, exist_ok=True)
    sets = sorted(d for d in glob.glob(os.path.join(a.eval, "*")) if os.path.isdir(d))
    FACE_SIZE[0] = 256 if a.kind == "face-back" else 128
    ref = run_all(a.sarai, a.model, sets, os.path.join(work, "fp32"), a.threads, a.input_name)
    blobs = [("plain INT8", os.path.join(work, "plain.sarai"), []),
             ("--auto-keep-fp32 --target-cosine %g" % a.target_cosine, os.path.join(work, "auto.sarai"),
              ["--auto-keep-fp32", "--target-cosine", str(a.target_cosine), "--calibration", a.calibration])]
    print("| %s | blob | weights | min cosine (output) | agreement |" % os.path.basename(a.model))
    print("|---|---|---|---|---|")
    for name, path, flags in blobs:
        out = sh([a.sarai, "convert", a.model, "-o", path, "--quiet", "--threads", str(a.threads)] + flags)
        weights = next((l.split(":", 1)[1].split(";")[0].strip() for l in out.splitlines()
                        if l.strip().startswith("weights:")), "?")
        test = run_all(a.sarai, path, sets, os.path.join(work, "out-" + os.path.basename(path)), a.threads,
                       a.input_name)
        cos, worst = min_cosine(ref, test)
        ag, tot = agreement(a.kind, ref, test)
        agreed = "%.2f %% (%d of %d)" % (100.0 * ag / tot, ag, tot) if tot else "-"
        print("| %s | %s | %s | %.6f (%s) | %s |" % (a.kind, name, weights, cos, worst, agreed), flush=True)
    if not a.work_dir:
        shutil.rmtree(work)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("inputs")
    i.add_argument("kind", choices=["rec", "cls", "det", "face-front", "face-back"])
    i.add_argument("dir")
    i.add_argument("--count", type=int, default=20)
    i.add_argument("--seed", type=int, default=0)
    i.add_argument("--assets", default="package/assets", help="@vladmandic/human's assets folder (face kinds)")
    m = sub.add_parser("measure")
    m.add_argument("--sarai", required=True)
    m.add_argument("--model", required=True)
    m.add_argument("--kind", required=True, choices=["rec", "cls", "det", "face-front", "face-back", "feature", "wake"])
    m.add_argument("--input-name", help="the model's input, when each set holds one file named otherwise")
    m.add_argument("--calibration", required=True)
    m.add_argument("--eval", required=True)
    m.add_argument("--target-cosine", type=float, default=0.99)
    m.add_argument("--threads", type=int, default=2)
    m.add_argument("--work-dir")
    a = ap.parse_args()
    make_inputs(a) if a.cmd == "inputs" else measure(a)


if __name__ == "__main__":
    main()
