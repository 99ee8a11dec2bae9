#!/usr/bin/python3
"""Real-looking inputs for PaddleOCR's text recognizer: rendered text lines.

Writes N input sets for `sarai-rt compare --inputs-dir` / `convert
--calibration`: DIR/<i>/x.npy, each float32 [1, 3, 48, W], a line of text
(Latin words, digits, some CJK when the font has it) drawn with a DejaVu font
on a light, slightly noisy background, preprocessed like PaddleOCR's
recognizer ((pixel / 255 - 0.5) / 0.5, RGB, height 48, width padded to W).

    /usr/bin/python3 bench/ocr_text_lines.py DIR [--count 40] [--width 320] [--seed 0]

Needs python3-pil and python3-numpy (Debian) and fonts-dejavu-core.
"""
import argparse
import os
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WORDS = ("invoice total amount date paid receipt order number customer address street city "
         "phone email product quantity price tax subtotal discount shipping delivery account "
         "balance reference payment method card cash change thank you welcome station platform "
         "exit entrance open closed monday friday january october 2026 12:45 No. 0042 #A-17").split()
FONTS = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
         "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"]


def line(rng, width):
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5)))
    font_path = rng.choice([f for f in FONTS if os.path.exists(f)])
    size = rng.randint(26, 36)
    font = ImageFont.truetype(font_path, size)
    bg = rng.randint(200, 255)
    img = Image.new("RGB", (width, 48), (bg, bg - rng.randint(0, 20), bg - rng.randint(0, 20)))
    draw = ImageDraw.Draw(img)
    ink = rng.randint(0, 80)
    draw.text((rng.randint(2, 12), (48 - size) // 2 - 2), text, font=font, fill=(ink, ink, ink))
    a = np.asarray(img, dtype=np.float32)
    a = a + np.random.default_rng(rng.randint(0, 1 << 30)).normal(0, 4, a.shape).astype(np.float32)
    a = np.clip(a, 0, 255) / 255.0
    a = (a - 0.5) / 0.5
    return a.transpose(2, 0, 1)[None].astype(np.float32), text


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--count", type=int, default=40)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    for i in range(a.count):
        x, text = line(rng, a.width)
        d = os.path.join(a.dir, "%03d" % i)
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, "x.npy"), x)
        with open(os.path.join(d, "text.txt"), "w") as f:
            f.write(text + "\n")
    print("wrote %d text lines of 48x%d to %s" % (a.count, a.width, a.dir))


if __name__ == "__main__":
    main()
