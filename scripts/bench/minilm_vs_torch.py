#!/usr/bin/env python3
"""all-MiniLM-L6-v2 sentence embeddings: flowscale vs sentence-transformers (PyTorch eager), side
by side on one machine (a benchmark, not a test).

    PYTHON scripts/bench/minilm_vs_torch.py [--repeat 16] [--batch 32] [--rounds 3] [--threads N]
        [--binary target/release/flowscale]

PYTHON needs sentence-transformers (the fixture versions: sentence-transformers 6.2.0,
transformers 5.24.0) over the same torch 2.11.0 that flowscale links; .venv does not carry them.
Both sides encode the same prompts (crates/encoders/tests/fixtures/text/prompts.txt repeated
--repeat times) from the real weights in .assets/all-minilm-l6-v2 (scripts/setup), on the CPU,
tokenisation included, batches grouped by length (sentence-transformers' own grouping). Rounds
alternate flowscale and PyTorch; the ratio is of medians.
"""
import argparse
import json
import os
import statistics
import subprocess
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=16)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/flowscale"))
    a = ap.parse_args()

    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(a.threads)
    model_dir = os.path.join(ROOT, ".assets/all-minilm-l6-v2")
    prompt_file = os.path.join(ROOT, "crates/encoders/tests/fixtures/text/prompts.txt")
    lines = open(prompt_file, encoding="utf-8").read().split("\n")[:-1]
    prompts = lines * a.repeat
    model = SentenceTransformer(model_dir, device="cpu").eval()

    def torch_round() -> float:
        t = time.perf_counter()
        with torch.inference_mode():
            model.encode(prompts, batch_size=a.batch, convert_to_tensor=True)
        return len(prompts) / (time.perf_counter() - t)

    def flowscale_round() -> float:
        out = subprocess.run(
            [a.binary, "bench", "minilm", "--model", model_dir, "--prompts", prompt_file,
             "--repeat", str(a.repeat), "--batch-size", str(a.batch), "--warmup", "1",
             "--rounds", "1", "--json"],
            check=True, capture_output=True, text=True, cwd=ROOT,
            env={**os.environ, "OMP_NUM_THREADS": str(a.threads)},
        )
        return json.loads(out.stdout.strip().splitlines()[-1])["prompts_per_s"]

    torch_round()  # warm-up
    ours, peer = [], []
    for r in range(a.rounds):
        ours.append(flowscale_round())
        peer.append(torch_round())
        print(f"round {r + 1}: flowscale {ours[-1]:.1f} prompts/s, sentence-transformers {peer[-1]:.1f} prompts/s")
    mo, mp = statistics.median(ours), statistics.median(peer)
    print(f"median: flowscale {mo:.1f} prompts/s, sentence-transformers (PyTorch {torch.__version__} eager) "
          f"{mp:.1f} prompts/s, ratio {mo / mp:.2f} ({len(prompts)} prompts, batch {a.batch}, {a.threads} threads)")


if __name__ == "__main__":
    main()
