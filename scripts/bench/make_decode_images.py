"""Writes the decode benchmark's images: N JPEGs (quality 90), alternately 500x375 and 375x500
(ImageNet's typical sizes), with natural-ish content: smooth low-frequency colour fields, a
1/f-like texture, and random soft-edged shapes. Deterministic for a seed.

    make_decode_images.py OUT_DIR [--count 200] [--seed 0]
"""

import argparse
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def natural(rng, w, h):
    # Low-frequency colour field: a few random sinusoids per channel.
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        for _ in range(4):
            fx, fy = rng.uniform(0.5, 4) / w, rng.uniform(0.5, 4) / h
            img[..., c] += rng.uniform(20, 50) * np.sin(2 * np.pi * (fx * x + fy * y) + rng.uniform(0, 6.3))
        img[..., c] += rng.uniform(60, 190)
    # Texture: white noise shaped towards 1/f in the Fourier domain.
    noise = rng.standard_normal((h, w)).astype(np.float32)
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    shaped = np.real(np.fft.ifft2(np.fft.fft2(noise) / np.maximum(np.hypot(fx, fy), 1.0 / max(w, h))))
    img += (shaped / shaped.std() * 18)[..., None]
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for _ in range(rng.integers(3, 9)):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        x1, y1 = x0 + rng.integers(20, w // 2), y0 + rng.integers(20, h // 2)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    return pil.filter(ImageFilter.GaussianBlur(0.8))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    for i in range(a.count):
        w, h = (500, 375) if i % 2 == 0 else (375, 500)
        natural(rng, w, h).save(os.path.join(a.out_dir, f"img_{i:04d}.jpg"), quality=90)


if __name__ == "__main__":
    main()
