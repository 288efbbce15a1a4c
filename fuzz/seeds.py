#!/usr/bin/env python3
"""Writes the committed seed corpus, fuzz/corpus/<target>/seed-*: small valid (and nearly valid)
inputs of each format, so libFuzzer starts from the structure of real files instead of
discovering magic numbers and JSON keys byte by byte. Standard library only; rerun after a
format changes. scripts/fuzz also hands libFuzzer the repository's own configs/ and test
fixtures as read-only seeds."""

import gzip
import io
import json
import struct
import tarfile
from pathlib import Path

OUT = Path(__file__).resolve().parent / "corpus"


def put(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data if isinstance(data, bytes) else data.encode())


def npy(descr, shape, data):
    dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}"
    pad = (64 - (10 + len(header) + 1) % 64) % 64
    header = header + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data


def tar(members, fmt=tarfile.USTAR_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    # tarfile pads to a 10 KiB record; two zero blocks end an archive, the rest is bulk.
    body = buf.getvalue().rstrip(b"\0")
    return body + b"\0" * (-len(body) % 512 + 1024)


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


# npy: each dtype the reader takes, a scalar, an empty array.
put("npy", "f4", npy("<f4", (2, 2), struct.pack("<4f", 1, 2, 3, 4)))
put("npy", "f2", npy("<f2", (3,), struct.pack("<3e", 0.5, -1, 2)))
put("npy", "i8", npy("<i8", (), struct.pack("<q", 7)))
put("npy", "empty", npy("<f4", (0, 4), b""))

# Latent shard: two samples, one with a label and a caption with its embedding.
mean = npy("<f2", (1, 2, 2), struct.pack("<4e", 0, 1, 2, 3))
std = npy("<f2", (1, 2, 2), struct.pack("<4e", 1, 1, 1, 1))
ctx = npy("<f2", (2, 3), struct.pack("<6e", *range(6)))
pooled = npy("<f2", (3,), struct.pack("<3e", 1, 2, 3))
shard = [
    ("a0.mean.npy", mean), ("a0.std.npy", std), ("a0.cls", b"3"), ("a0.txt", b"a cat"),
    ("a0.context.npy", ctx), ("a0.pooled.npy", pooled), ("b1.mean.npy", mean),
    ("b1.std.npy", std),
]
put("latent_shard", "two-samples", tar(shard))

# Tar: ustar, pax with a long name (as Python's tarfile and webdataset write), a prefix field.
put("tar", "ustar", tar([("a.txt", b"hello"), ("a.bin", bytes(range(40)))]))
put("tar", "pax", tar([("x" * 120 + ".npy", b"data")], fmt=tarfile.PAX_FORMAT))
put("tar", "prefix", tar([("dir/" * 30 + "f.txt", b"p")], fmt=tarfile.USTAR_FORMAT))

# Manifest: as flowscale precompute writes it (text, sources, labels, two splits).
manifest = {
    "format_version": 1,
    "autoencoder": {
        "kind": "kl", "name": "sd3-vae", "weights_sha256": "ab" * 32, "latent_channels": 16,
        "downsample_factor": 8, "scaling_factor": 1.5305, "shift_factor": 0.0609,
    },
    "resolution": 256,
    "latent_shape": [16, 32, 32],
    "latent_dtype": "float16",
    "has_flip": True,
    "has_labels": True,
    "class_names": ["tench", "goldfish"],
    "has_captions": True,
    "text": {
        "encoder": "sd3", "context_shape": [154, 4096], "pooled_shape": [2048],
        "sources": [
            {"name": "clip_l", "tokens": [0, 77], "context_channels": [0, 768],
             "pooled_channels": [0, 768]},
            {"name": "t5", "tokens": [77, 154], "context_channels": [0, 4096]},
        ],
    },
    "caption_fields": ["txt", "synthetic"],
    "splits": {
        "train": [{"file": "train-000000.tar", "samples": 100, "bytes": 4096},
                  {"file": "train-000001.tar", "samples": 7, "bytes": 512}],
        "val": [{"file": "val-000000.tar", "samples": 10, "bytes": 1024}],
    },
}
put("manifest", "full", json.dumps(manifest, indent=2))
identity = {
    "format_version": 1,
    "autoencoder": {"kind": "identity", "name": "pixels", "latent_channels": 3,
                    "downsample_factor": 1, "scaling_factor": 1.0, "shift_factor": 0.0},
    "resolution": 32, "latent_shape": [3, 32, 32], "latent_dtype": "float32",
    "has_flip": False, "has_labels": False, "has_captions": False,
    "splits": {"train": [{"file": "t.tar", "samples": 1, "bytes": 1}]},
}
put("manifest", "identity", json.dumps(identity))

# state.json: a pixel run, and a latent run whose loader position fits the fuzz target's two
# shards of three samples (one mid-shard with a shuffle buffer, one at an epoch start).
state = {
    "step": 500, "images_seen": 32000, "config_hash": "0123abcd", "seed": 0,
    "rng_state": [1, 2, 3, 4], "data_epoch": 0, "data_index": 6, "lr": 0.001,
    "wall_time_s": 12.5, "skipped_steps": 0, "train_flops": 1.5e12,
    "best_val_loss": [0.25, 500], "flowscale_version": "0.1.0",
}
put("state_json", "pixels", json.dumps(state, indent=2))
position = {
    "epoch": 0, "batches": 1, "pass": 0, "next_shard": 1, "pass_samples": 3,
    "current": {"shard": 1, "offset": 1}, "buffer": [[0, 2], [1, 0]], "rng": [5, 6, 7, 8],
    "skipped_shards": 0, "rank": 0, "world_size": 1, "batch_size": 2, "shuffle_buffer": 3,
    "shards": 2,
}
latent = dict(state, data_positions=[position])
put("state_json", "latents", json.dumps(latent, indent=2))
start = dict(position, batches=0, next_shard=0, pass_samples=0, current=None, buffer=[],
             shuffle_buffer=0)
put("state_json", "latents-start", json.dumps(dict(state, data_positions=[start])))

# checksums.json: the fuzz target's folder holds model.safetensors = b"weights".
put("checksums", "match", json.dumps(
    {"model.safetensors": {"bytes": 7, "crc32c": f"{crc32c(b'weights'):08x}"}}, indent=2))
put("checksums", "other", json.dumps({"model.safetensors": {"bytes": 8, "crc32c": "00000000"}}))

# Run config: the shortest valid one, and one with --set overrides after a NUL.
minimal = '[run]\nname = "fuzz"\n\n[data]\ndataset = "fashion-mnist"\nresolution = 32\n\n' \
          '[train]\nsteps = 10\nbatch_size = 4\n'
put("run_config", "minimal", minimal)
put("run_config", "overrides", minimal + "\0model.depth=2\noptim.lr=1e-4\nema.decays=[0.9]\n")

# safetensors: F32, F16 and I64 tensors with metadata.
def safetensors(tensors, metadata=None):
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


put("safetensors", "three", safetensors({
    "w": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)),
    "b": ("F16", [2], struct.pack("<2e", 1, -1)),
    "position_ids": ("I64", [1, 3], struct.pack("<3q", 0, 1, 2)),
}, {"format": "pt"}))
put("safetensors", "bf16", safetensors({"x": ("BF16", [3], b"\x80\x3f\x00\x40\x40\x40")}))

# IDX: a labels file and an images file.
put("idx", "labels", struct.pack(">BBBBI", 0, 0, 8, 1, 4) + bytes([1, 2, 3, 9]))
put("idx", "images", struct.pack(">BBBBIII", 0, 0, 8, 3, 2, 2, 2) + bytes(range(8)))
put("idx", "gz", gzip.compress(struct.pack(">BBBBI", 0, 0, 8, 1, 2) + b"\x05\x06", mtime=0))
