#!/usr/bin/env python3
"""flowscale vs PyTorch eager + diffusers, side by side on one machine (benchmarks, not tests).

    python scripts/bench/vs_diffusers.py train-step [--config configs/demo.toml] [--rounds 3]
                                             [--precision fp32|bf16] [--set KEY=VALUE ...]
        A full training step of a run config (data batch, class conditioning with CFG dropout,
        rf/lognorm timesteps, forward, backward, grad-norm clipping, AdamW, EMA): flowscale's
        `bench train-step` against the same step written in PyTorch with diffusers'
        SD3Transformer2DModel (built from the config.json flowscale writes for its backbone) and
        torch.optim.AdamW (default implementation, and fused=True). `--precision bf16` runs
        flowscale with train.precision = "bf16" (CPU autocast where the CPU has bf16 matrix
        instructions) and the PyTorch forward and loss under torch.autocast("cpu", bfloat16);
        `--set` overrides run-config keys on both sides (e.g. model.depth=8).

    python scripts/bench/vs_diffusers.py fwd-bwd [--batch 4] [--latent 32 32] [--context 77]
                                             [--joint-dim 384] [--pooled-dim 384] [--depth D]
                                             [--device cpu|cuda] [--precision fp32|bf16]
                                             [--optimizer] [--json OUT]
        MMDiT forward + backward on random inputs: flowscale's `bench fwd-bwd` against
        SD3Transformer2DModel, both built from one config.json written here. `--depth D` takes
        the paper's model of depth D (hidden 64 D, 16 latent channels, 4096/2048-d text) instead
        of tiny-d4; `--precision bf16` runs both forwards under bf16 autocast; `--optimizer`
        adds the AdamW update (flowscale's fused kernel, torch.optim.AdamW(fused=True)): the
        backbone's whole training step. `--json OUT` also writes the rows and medians there.

Rounds alternate flowscale and PyTorch so both see the same machine state; the table reports
every round and the ratio of medians. `scripts/bench/run` installs diffusers and runs this.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib

import torch
from diffusers import SD3Transformer2DModel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# FLOWSCALE_BIN: another build of the binary (e.g. target/debug/flowscale, optimised in this
# workspace), recorded with the figures.
BIN = os.environ.get("FLOWSCALE_BIN", os.path.join(ROOT, "target", "release", "flowscale"))


def flowscale(*args):
    out = subprocess.run([BIN, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def resolved_config(path, overrides):
    sets = [a for o in overrides for a in ("--set", o)]
    text = subprocess.run(
        [BIN, "config", path, *sets], check=True, capture_output=True, text=True
    ).stdout
    return tomllib.loads(text)


class ClassEmbedding(torch.nn.Module):
    """flowscale's learned class conditioning: one context row and one pooled row per class."""

    def __init__(self, classes, tokens, context_dim, pooled_dim):
        super().__init__()
        self.tokens, self.context_dim = tokens, context_dim
        self.context = torch.nn.Parameter(torch.randn(classes, tokens * context_dim))
        self.pooled = torch.nn.Parameter(torch.randn(classes, pooled_dim))

    def forward(self, labels, keep):
        keep = keep[:, None]
        ctx = (self.context[labels] * keep).view(-1, self.tokens, self.context_dim)
        return ctx, self.pooled[labels] * keep


def decays(name, p):
    """flowscale's rule (crates/train/src/optim/groups.rs): matrices decay, except embeddings."""
    embedding = name.startswith("cond.") or "embedding" in name or name.endswith(".emb")
    return p.dim() >= 2 and not embedding


class TorchTrainStep:
    def __init__(self, cfg, model_config, fused, bf16):
        name = cfg["formulation"]["name"].replace(" ", "")
        if name != "rf/lognorm(0.00,1.00)" or cfg["formulation"].get("shift", 1.0) != 1.0:
            sys.exit(f"the PyTorch peer implements rf/lognorm(0.00, 1.00) without shift, not {name}")
        torch.manual_seed(0)
        self.model = SD3Transformer2DModel.from_config(model_config)
        self.model.train()
        c = cfg["conditioning"]
        self.cond = ClassEmbedding(10, c["context_tokens"], c["context_dim"], c["pooled_dim"])
        self.dropout = c["dropout"]
        self.batch = cfg["train"]["batch_size"]
        res = cfg["data"]["resolution"]
        chans = model_config["in_channels"]
        # Fashion-MNIST-sized pool in memory; pixel values do not change the step's cost.
        self.images = torch.rand(60000, chans, res, res) * 2 - 1
        self.labels = torch.randint(0, 10, (60000,))
        named = [("model." + n, p) for n, p in self.model.named_parameters()]
        named += [("cond." + n, p) for n, p in self.cond.named_parameters()]
        self.params = [p for _, p in named]
        o = cfg["optim"]
        groups = [
            {"params": [p for n, p in named if decays(n, p)], "weight_decay": o["weight_decay"]},
            {"params": [p for n, p in named if not decays(n, p)], "weight_decay": 0.0},
        ]
        self.opt = torch.optim.AdamW(
            groups, lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"], fused=fused or None
        )
        self.base_lr, self.warmup, self.clip = o["lr"], o["warmup_steps"], o.get("grad_clip")
        e = cfg["ema"]
        self.decays, self.ema_warmup = e["decays"], e["warmup"]
        self.ema = [[p.detach().clone() for p in self.params] for _ in self.decays]
        self.step_count = 0
        self.bf16 = bf16

    def step(self):
        b = self.batch
        idx = torch.randint(0, self.images.shape[0], (b,))
        x0, labels = self.images[idx], self.labels[idx]
        keep = (torch.rand(b) >= self.dropout).float()
        ctx, pooled = self.cond(labels, keep)
        t = torch.sigmoid(torch.randn(b))
        noise = torch.randn_like(x0)
        tt = t.view(-1, 1, 1, 1)
        zt = (1 - tt) * x0 + tt * noise
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            out = self.model(
                zt, encoder_hidden_states=ctx, pooled_projections=pooled, timestep=1000 * t,
                return_dict=False,
            )[0]
        # The loss in fp32, as flowscale computes it.
        loss = ((out.float() - (noise - x0)) ** 2).mean()
        loss.backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        lr = self.base_lr * min(1.0, (self.step_count + 1) / max(1, self.warmup))
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.opt.step()
        self.opt.zero_grad()
        self.step_count += 1
        with torch.no_grad():
            for decay, shadow in zip(self.decays, self.ema):
                if self.ema_warmup:
                    n = self.step_count - 1
                    decay = min(decay, (1 + n) / (10 + n))
                torch._foreach_lerp_(shadow, self.params, 1 - decay)
        return loss


def time_torch(step, warmup, steps):
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        last = step()
    last.item()
    return 1e3 * (time.perf_counter() - start) / steps


def report(rows, ours, peers):
    print(f"{'round':>5} " + " ".join(f"{k:>22}" for k in rows[0]))
    for i, r in enumerate(rows):
        print(f"{i + 1:>5} " + " ".join(f"{v:>22.1f}" for v in r.values()))
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    for p in peers:
        print(f"median {p} / median {ours} = {med[p] / med[ours]:.2f}x (flowscale speed-up)")


def train_step(args):
    overrides = [f'train.precision="{args.precision}"', 'run.device="cpu"', *args.set]
    cfg = resolved_config(args.config, overrides)
    sets = [a for o in overrides for a in ("--set", o)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model_json = os.path.join(tmp, "config.json")
        for _ in range(args.rounds):
            ours = flowscale(
                "bench", "train-step", args.config, "--warmup", str(args.warmup),
                "--steps", str(args.steps), "--json", "--model-json", model_json, *sets,
            )
            with open(model_json) as f:
                model_config = json.load(f)
            row = {"flowscale ms/step": ours["ms_per_step"]}
            for fused in (False, True):
                peer = TorchTrainStep(cfg, model_config, fused, args.precision == "bf16")
                key = "torch fused ms/step" if fused else "torch ms/step"
                row[key] = time_torch(peer.step, args.warmup, args.steps)
                del peer
            rows.append(row)
    print(f"config {args.config} {' '.join(overrides)}: batch {cfg['train']['batch_size']}, "
          f"precision {args.precision}, flowscale threads "
          f"{ours['threads']}, torch threads {torch.get_num_threads()}, torch {torch.__version__}")
    report(rows, "flowscale ms/step", ["torch ms/step", "torch fused ms/step"])


# tiny-d4 (hidden 256, 4 heads of 64), patch 2, 4 latent channels, 384-d text (MiniLM-sized);
# scripts/gpu-check times the same file.
with open(os.path.join(ROOT, "scripts", "bench", "mmdit-tiny-d4.json")) as _f:
    FWD_BWD_MODEL = json.load(_f)


def paper_model(depth):
    """The paper's scaling rule, as flowscale's MmditConfig::from_depth."""
    return dict(
        sample_size=128, patch_size=2, in_channels=16, num_layers=depth, attention_head_dim=64,
        num_attention_heads=depth, joint_attention_dim=4096, caption_projection_dim=64 * depth,
        pooled_projection_dim=2048, out_channels=16, pos_embed_max_size=192,
    )


def fwd_bwd(args):
    torch.manual_seed(0)
    device = torch.device(args.device)
    if args.depth:
        model_cfg = paper_model(args.depth)
    else:
        # Text widths of the conditioning (MiniLM: 384/384; SD3's stack at reduced width, e.g.
        # 1024/512 for a quarter of 4096/2048): flowscale reads the same config.json.
        model_cfg = dict(FWD_BWD_MODEL, joint_attention_dim=args.joint_dim,
                         pooled_projection_dim=args.pooled_dim)
    h, w = args.latent
    b = args.batch
    bf16 = args.precision == "bf16"

    def peer():
        """Builds the diffusers model on the device, times its step, and lets it go: one side
        at a time holds the GPU (a depth-24 model with AdamW state is ~32 GB per side)."""
        torch.manual_seed(0)
        with device:
            model = SD3Transformer2DModel(**model_cfg)
            x = torch.randn(b, model_cfg["in_channels"], h, w)
            t = torch.rand(b) * 1000
            ctx = torch.randn(b, args.context, model_cfg["joint_attention_dim"])
            pooled = torch.randn(b, model_cfg["pooled_projection_dim"])
        model.train()
        opt = (torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0, fused=True)
               if args.optimizer else None)

        def step():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                out = model(x, encoder_hidden_states=ctx, pooled_projections=pooled,
                            timestep=t, return_dict=False)[0]
            loss = out.float().square().mean()
            loss.backward()
            if opt is not None:
                opt.step()
            model.zero_grad()
            return loss

        ms = time_torch(step, args.warmup, args.steps)
        del model, opt
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
        return ms

    rows = []
    ours = {}
    sets = ["--device", args.device, "--precision", args.precision]
    if args.optimizer:
        sets.append("--optimizer")
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(dict(model_cfg, _class_name="SD3Transformer2DModel"), f)
        for _ in range(args.rounds):
            ours = flowscale(
                "bench", "fwd-bwd", "--config-json", os.path.join(tmp, "config.json"),
                "--latent", str(h), str(w), "--context", str(args.context), "--batch", str(b),
                "--warmup", str(args.warmup), "--steps", str(args.steps), "--json", *sets,
            )
            rows.append({
                "flowscale ms/iter": ours["ms_per_iter"],
                "diffusers ms/iter": peer(),
            })
    peak_mib = (torch.cuda.max_memory_allocated(device) / 2**20
                if device.type == "cuda" else None)
    print(f"MMDiT {model_cfg}, batch {b}, latent {h}x{w}, context {args.context}, "
          f"{args.device}, {args.precision}, optimizer {args.optimizer}, "
          f"flowscale threads {ours['threads']}, torch threads {torch.get_num_threads()}, "
          f"torch {torch.__version__}")
    report(rows, "flowscale ms/iter", ["diffusers ms/iter"])
    if args.json:
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        with open(args.json, "w") as f:
            json.dump({
                "model": model_cfg, "batch": b, "latent": [h, w], "context": args.context,
                "device": args.device, "precision": args.precision,
                "optimizer": args.optimizer, "rounds": rows, "median": med,
                "speedup_vs_diffusers": med["diffusers ms/iter"] / med["flowscale ms/iter"],
                "flowscale_last": ours, "diffusers_peak_mib": peak_mib,
                "torch": torch.__version__,
            }, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    ts = sub.add_parser("train-step")
    ts.add_argument("--config", default=os.path.join(ROOT, "configs", "demo.toml"))
    ts.add_argument("--warmup", type=int, default=5)
    ts.add_argument("--steps", type=int, default=20)
    ts.add_argument("--rounds", type=int, default=3)
    ts.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ts.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    fb = sub.add_parser("fwd-bwd")
    fb.add_argument("--batch", type=int, default=4)
    fb.add_argument("--latent", type=int, nargs=2, default=[32, 32])
    fb.add_argument("--context", type=int, default=77)
    fb.add_argument("--joint-dim", type=int, default=384)
    fb.add_argument("--pooled-dim", type=int, default=384)
    fb.add_argument("--warmup", type=int, default=3)
    fb.add_argument("--steps", type=int, default=10)
    fb.add_argument("--rounds", type=int, default=3)
    fb.add_argument("--depth", type=int, default=0)
    fb.add_argument("--device", default="cpu")
    fb.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    fb.add_argument("--optimizer", action="store_true")
    fb.add_argument("--json", default=None)
    args = ap.parse_args()
    {"train-step": train_step, "fwd-bwd": fwd_bwd}[args.what](args)


if __name__ == "__main__":
    main()
