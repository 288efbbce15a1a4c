#!/usr/bin/env python3
"""Checks flowscale TensorBoard event files with TensorBoard's own reader.

Usage: check_tensorboard.py LOGDIR --expect TAG=COUNT ... [--scalar TAG@STEP=VALUE ...]

Loads every event file under LOGDIR with tensorboard's EventAccumulator (the code the TensorBoard
UI uses) and checks that each expected tag has exactly COUNT events, that scalars are finite, that
images decode with their stated size, and that given scalar values match to 1e-6 relative.
Prints one line per tag; exits 1 on the first failure. Needs `pip install tensorboard`.
"""
import argparse
import math
import struct
import sys
import zlib

from tensorboard.backend.event_processing import event_accumulator


def png_size(data):
    # PNG signature, then the IHDR chunk: width and height as big-endian u32.
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    zlib.crc32(data)  # touch the whole buffer
    return height, width


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("logdir")
    ap.add_argument("--expect", action="append", default=[], help="TAG=COUNT")
    ap.add_argument("--scalar", action="append", default=[], help="TAG@STEP=VALUE")
    args = ap.parse_args()

    acc = event_accumulator.EventAccumulator(
        args.logdir, size_guidance={event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0}
    )
    acc.Reload()
    tags = acc.Tags()
    scalars, images = set(tags["scalars"]), set(tags["images"])
    for spec in args.expect:
        tag, count = spec.rsplit("=", 1)
        if tag in scalars:
            events = acc.Scalars(tag)
            bad = [e for e in events if not math.isfinite(e.value)]
            if bad:
                sys.exit(f"FAIL {tag}: non-finite values at steps {[e.step for e in bad]}")
        elif tag in images:
            events = acc.Images(tag)
            for e in events:
                h, w = png_size(e.encoded_image_string)
                if (h, w) != (e.height, e.width):
                    sys.exit(f"FAIL {tag}: PNG is {h}x{w}, event says {e.height}x{e.width}")
        else:
            sys.exit(f"FAIL {tag}: no such tag (scalars: {sorted(scalars)}, images: {sorted(images)})")
        if len(events) != int(count):
            sys.exit(f"FAIL {tag}: {len(events)} events, expected {count}")
        print(f"ok {tag}: {len(events)} events, steps {[e.step for e in events]}")
    for spec in args.scalar:
        lhs, value = spec.rsplit("=", 1)
        tag, step = lhs.rsplit("@", 1)
        found = [e.value for e in acc.Scalars(tag) if e.step == int(step)]
        want = float(value)
        if not found or abs(found[0] - want) > 1e-6 * max(1.0, abs(want)):
            sys.exit(f"FAIL {tag}@{step}: got {found}, expected {want}")
        print(f"ok {tag}@{step} = {found[0]}")


if __name__ == "__main__":
    main()
