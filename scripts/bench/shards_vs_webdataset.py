#!/usr/bin/env python3
"""Latent-shard loading: flowscale's streaming loader vs Python webdataset + torch DataLoader on
the same shards, side by side on one machine (a benchmark, not a test).

    flowscale bench shards --dir DIR --make 4096      # write the benchmark set once
    .venv/bin/python scripts/bench/shards_vs_webdataset.py --dir DIR [--batch 64]
        [--workers 1 2] [--rounds 3] [--binary PATH/TO/flowscale]

Both sides read one epoch of the train split listed in DIR/manifest.json with a 1000-sample
shuffle buffer, decode every .npy (mean, std, flip_mean, flip_std) and the label, and collate
batches of float32 [B, C, H, W] tensors and int64 labels; partial last batches are dropped.
Python: webdataset 1.0.2 `WebDataset(urls, shardshuffle=...).shuffle(1000).decode()` mapped to
tuples, `DataLoader(batch_size, num_workers=N)` with the default collate, float16 -> float32 in
the consumer. Rounds alternate the two; the ratio is of medians.
"""
import argparse
import json
import os
import statistics
import subprocess
import time

import torch
import webdataset as wds

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEYS = ("mean.npy", "std.npy", "flip_mean.npy", "flip_std.npy", "cls")


def to_tuple(sample):
    return tuple(sample[k] for k in KEYS)


def webdataset_round(urls, batch, workers, seed):
    ds = (
        wds.WebDataset(urls, shardshuffle=len(urls), seed=seed, empty_check=False)
        .shuffle(1000)
        .decode()
        .map(to_tuple)
    )
    loader = torch.utils.data.DataLoader(
        ds, batch_size=batch, num_workers=workers, drop_last=True, persistent_workers=False
    )
    t = time.perf_counter()
    n = 0
    for mean, std, fmean, fstd, cls in loader:
        mean, std, fmean, fstd = (x.float() for x in (mean, std, fmean, fstd))
        assert mean.shape[0] == batch and cls.dtype == torch.int64
        n += mean.shape[0]
    return n / (time.perf_counter() - t)


def flowscale_round(binary, shard_dir, batch, workers):
    out = subprocess.run(
        [binary, "bench", "shards", "--dir", shard_dir, "--batch", str(batch),
         "--workers", str(workers), "--rounds", "1", "--json"],
        check=True, capture_output=True, text=True, cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["samples_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/flowscale"))
    a = ap.parse_args()

    manifest = json.load(open(os.path.join(a.dir, "manifest.json")))
    urls = [os.path.join(a.dir, s["file"]) for s in manifest["splits"]["train"]]
    samples = sum(s["samples"] for s in manifest["splits"]["train"])
    torch.set_num_threads(1)
    for workers in a.workers:
        webdataset_round(urls, a.batch, workers, 0)  # warm-up (page cache, imports)
        ours, peer = [], []
        for r in range(a.rounds):
            ours.append(flowscale_round(a.binary, a.dir, a.batch, workers))
            peer.append(webdataset_round(urls, a.batch, workers, r))
            print(f"workers {workers} round {r + 1}: flowscale {ours[-1]:.0f} samples/s, "
                  f"webdataset+DataLoader {peer[-1]:.0f} samples/s")
        mo, mp = statistics.median(ours), statistics.median(peer)
        print(f"workers {workers} median: flowscale {mo:.0f} samples/s, webdataset {wds.__version__} + "
              f"torch {torch.__version__} DataLoader {mp:.0f} samples/s, ratio {mo / mp:.2f} "
              f"({samples} samples, {len(urls)} shards, batch {a.batch})")


if __name__ == "__main__":
    main()
