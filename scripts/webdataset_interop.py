#!/usr/bin/env python3
"""Latent shards between flowscale and Python `webdataset`.

    webdataset_interop.py read SHARD.tar
        Reads a flowscale shard with webdataset.WebDataset(...).decode() and prints one JSON line
        per sample: key, label, caption, and for every .npy entry its dtype, shape and sum
        (float64), which crates/data/tests/webdataset.rs compares with what it wrote.
    webdataset_interop.py write OUT.tar
        Writes the fixture crates/data/tests/fixtures/webdataset_writer.tar with
        webdataset.TarWriter: 3 samples with seeded arrays (float16/float32), labels, captions
        (one non-ASCII), one sample without a caption. Made with Python 3.11.7, webdataset 1.0.2,
        numpy 2.4.6 (the versions `scripts/setup` installs into .venv).
"""
import json
import sys

import numpy as np
import webdataset as wds


def read(path):
    for sample in wds.WebDataset(path, shardshuffle=False, empty_check=False).decode():
        out = {"key": sample["__key__"]}
        for name, value in sorted(sample.items()):
            if name.startswith("__"):
                continue
            if isinstance(value, np.ndarray):
                out[name] = {
                    "dtype": str(value.dtype),
                    "shape": list(value.shape),
                    "sum": float(value.astype(np.float64).sum()),
                }
            elif isinstance(value, bytes):
                out[name] = value.decode("utf-8")
            else:
                out[name] = value
        print(json.dumps(out, sort_keys=True))


def write(path):
    rng = np.random.default_rng(0)
    with wds.TarWriter(path) as sink:
        for i, (caption, dtype) in enumerate(
            [("a photo of a pullover", np.float16), ("une robe d'été", np.float32), (None, np.float16)]
        ):
            sample = {
                "__key__": f"sample{i:04d}",
                "mean.npy": rng.standard_normal((4, 4, 4)).astype(dtype),
                "std.npy": (0.1 + rng.random((4, 4, 4))).astype(dtype),
                "cls": str(i * 3),
            }
            if caption is not None:
                sample["txt"] = caption
            sink.write(sample)


if __name__ == "__main__":
    {"read": read, "write": write}[sys.argv[1]](sys.argv[2])
