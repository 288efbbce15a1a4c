"""CPU bf16 attention: libtorch's SDPA (flash kernel) against the explicit form flowscale uses
for short sequences (crates/models/src/attention.rs, `attend_explicit_bf16`).

For each shape [batch, heads, tokens, head_dim] it times forward + backward of
  sdpa      F.scaled_dot_product_attention on bf16 q, k, v
  explicit  fp32 logits and softmax, bf16 probabilities @ bf16 v (flowscale's form)
and, with --accuracy, the relative L2 error of the output and of dq, dk, dv against the same
attention in float64, for both. Median of --rounds alternating rounds.

    .venv/bin/python scripts/bench/attention_forms.py --threads 2 --accuracy
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = [
    (64, 8, 65, 64),  # the demo at depth 8: 64 image tokens + 1 context token, batch 64
    (64, 3, 65, 64),  # the demo at depth 3
    (4, 4, 96, 64),
    (2, 12, 128, 64),
    (8, 8, 128, 64),
    (32, 16, 128, 64),
    (2, 12, 192, 64),
    (8, 8, 192, 64),
    (32, 16, 192, 64),
    (8, 8, 256, 64),
    (8, 8, 512, 64),
    (2, 24, 1178, 64),  # depth 24 at 256 px: 1024 image + 154 text tokens
]


def sdpa(q, k, v):
    return F.scaled_dot_product_attention(q, k, v)


def explicit(q, k, v):
    logits = (q.float() @ k.float().transpose(-2, -1)) * q.shape[-1] ** -0.5
    return logits.softmax(-1).to(torch.bfloat16) @ v.to(torch.bfloat16)


def time_fwd_bwd(f, qkv, grad):
    for t in qkv:
        t.grad = None
    start = time.perf_counter()
    f(*qkv).backward(grad)
    return 1e3 * (time.perf_counter() - start)


def errors(f, base, grad):
    """Relative L2 errors of the output and gradients of f on bf16 inputs against float64."""

    def run(fn, kind):
        x = [t.detach().to(kind).requires_grad_() for t in base]
        out = fn(*x)
        out.backward(grad.to(out.dtype))
        return [out.detach().double()] + [t.grad.double() for t in x]

    ref = run(sdpa, torch.float64)
    got = run(f, torch.bfloat16)
    return [((a - b).norm() / b.norm()).item() for a, b in zip(got, ref)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--accuracy", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'shape':>22} {'sdpa ms':>9} {'explicit ms':>12} {'explicit/sdpa':>14}")
    for shape in SHAPES:
        torch.manual_seed(0)
        qkv = [torch.randn(shape, dtype=torch.bfloat16, requires_grad=True) for _ in range(3)]
        grad = torch.randn(shape, dtype=torch.bfloat16)
        forms = {"sdpa": sdpa, "explicit": explicit}
        for f in forms.values():  # warm-up
            time_fwd_bwd(f, qkv, grad)
        times = {name: [] for name in forms}
        for _ in range(args.rounds):
            for name, f in forms.items():
                times[name].append(time_fwd_bwd(f, qkv, grad))
        a, b = (statistics.median(times[n]) for n in ("sdpa", "explicit"))
        print(f"{str(shape):>22} {a:>9.1f} {b:>12.1f} {b / a:>14.2f}", flush=True)
        if args.accuracy and shape[2] <= 192:
            # q and k scaled so that the logits' standard deviation is about 4.
            base = [torch.randn(shape, dtype=torch.float64) * s for s in (2.0, 2.0, 1.0)]
            g = torch.randn(shape, dtype=torch.float64)
            for name, f in forms.items():
                e = errors(f, base, g)
                print(f"{'':>22} {name} error out/dq/dk/dv: " + " / ".join(f"{x:.1e}" for x in e))


if __name__ == "__main__":
    main()
