#!/usr/bin/python3
"""Writes a synthetic document image for the PaddleOCR models, as .npy.

    /usr/bin/python3 tests/ort/make_ocr_image.py OUT.npy HEIGHT WIDTH [SEED]

Random noise drives a text detector to near-zero outputs, where a comparison
says little; this draws dark glyph-like strokes in text lines on a light,
slightly noisy page, then normalizes as PaddleOCR does:
(pixel / 255 - mean) / std with ImageNet's mean and std. Shape [1, 3, H, W].
"""
import sys

import numpy as np

out, h, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(int(sys.argv[4]) if len(sys.argv) > 4 else 0)
img = np.full((h, w, 3), 235.0) + rng.normal(0, 6, (h, w, 3))
line_h = max(8, h // 8)
for top in range(line_h // 2, h - line_h, line_h * 3 // 2):
    x = int(rng.integers(2, max(3, w // 10)))
    end = int(rng.integers(w // 2, w - 2))
    while x < end:
        gw = int(rng.integers(max(2, line_h // 3), line_h))
        for _ in range(3):  # a few strokes per glyph
            y0 = top + int(rng.integers(0, line_h // 2))
            x0 = x + int(rng.integers(0, max(1, gw // 2)))
            sh, sw = int(rng.integers(1, line_h // 2 + 2)), int(rng.integers(1, gw // 2 + 2))
            img[y0:y0 + sh, x0:x0 + sw] = rng.uniform(10, 60)
        x += gw + int(rng.integers(1, max(2, line_h // 3)))
img = np.clip(img, 0, 255) / 255.0
mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
x = ((img - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)
np.save(out, x)
