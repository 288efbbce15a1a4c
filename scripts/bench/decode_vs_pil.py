"""Decode + short-side resize + centre crop + [-1, 1] float, in images/s on one core: flowscale
(`flowscale bench decode`) beside PIL and torchvision on the same images (read into memory
first on both sides). Not a test.

    scripts/bench/decode_vs_pil.py --images DIR [--resolution 256] [--flowscale target/release/flowscale]

Make the images with scripts/bench/make_decode_images.py. Every pipeline produces the same
float32 [3, R, R] array per image; the PIL one is flowscale's test reference.
"""

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time

from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
from pil_preprocess import preprocess  # noqa: E402

try:
    import torch
    import torchvision
    from torchvision.io import ImageReadMode, decode_jpeg
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import v2 as T
except ImportError:  # PIL only
    torchvision = None


def pil_pipeline(r):
    # flowscale's test reference itself, so the benchmark times what the tests compare against.
    return lambda data: preprocess(io.BytesIO(data), r, Image.BICUBIC)


def torchvision_pil_pipeline(r):
    # The classic ImageNet transform stack on PIL images.
    t = T.Compose([
        T.ToImage(),
        T.Resize(r, interpolation=InterpolationMode.BICUBIC, antialias=True),
        T.CenterCrop(r),
        T.ToDtype(torch.float32, scale=True),
        T.Normalize([0.5] * 3, [0.5] * 3),
    ])
    return lambda data: t(Image.open(io.BytesIO(data)).convert("RGB"))


def torchvision_tensor_pipeline(r):
    # libjpeg-turbo straight into a uint8 tensor, resized as a tensor (no PIL).
    t = T.Compose([
        T.Resize(r, interpolation=InterpolationMode.BICUBIC, antialias=True),
        T.CenterCrop(r),
        T.ToDtype(torch.float32, scale=True),
        T.Normalize([0.5] * 3, [0.5] * 3),
    ])

    def run(data):
        return t(decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB))

    return run


def rate(fn, blobs, rounds):
    for b in blobs:
        fn(b)
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        for b in blobs:
            fn(b)
        times.append(time.perf_counter() - t)
    return len(blobs) / statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", required=True)
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--flowscale", default="target/release/flowscale")
    a = ap.parse_args()
    names = sorted(
        os.path.join(dp, f)
        for dp, _, fs in os.walk(a.images)
        for f in fs
        if f.lower().endswith((".jpg", ".jpeg", ".png", ".webp"))
    )
    blobs = [open(n, "rb").read() for n in names]
    out = subprocess.run(
        [a.flowscale, "bench", "decode", "--images", a.images, "--resolution", str(a.resolution),
         "--rounds", str(a.rounds), "--json"],
        check=True, capture_output=True, text=True,
    )
    ours = json.loads(out.stdout)
    rows = [("flowscale (zune-jpeg, f32 resampler)", ours["per_core_images_per_s"])]
    rows.append((f"PIL {Image.__version__} (libjpeg-turbo, BICUBIC)", rate(pil_pipeline(a.resolution), blobs, a.rounds)))
    if torchvision is not None:
        torch.set_num_threads(1)
        rows.append((f"torchvision {torchvision.__version__} transforms on PIL images",
                     rate(torchvision_pil_pipeline(a.resolution), blobs, a.rounds)))
        if all(b[:3] == b"\xff\xd8\xff" for b in blobs):
            rows.append((f"torchvision {torchvision.__version__} decode_jpeg + tensor transforms",
                         rate(torchvision_tensor_pipeline(a.resolution), blobs, a.rounds)))
    else:
        print("torchvision not installed: PIL only", file=sys.stderr)
    print(f"{len(blobs)} images -> {a.resolution}x{a.resolution}, one core, median of {a.rounds} rounds")
    print(f"{'pipeline':58s} {'images/s':>9s} {'flowscale /':>12s}")
    for name, r in rows:
        print(f"{name:58s} {r:9.1f} {rows[0][1] / r:11.2f}x")
    print(f"flowscale on {ours['threads']} threads: {ours['all_threads_images_per_s']:.1f} images/s")


if __name__ == "__main__":
    main()
