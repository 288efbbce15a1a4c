"""Isolated timing of the two projection fusions of issue #20 in PyTorch eager (the same libtorch
flowscale links), forward + backward, alternating rounds in one process:

- q/k/v: three `linear`s on the same tokens vs one `linear` on the concatenated weights, split;
- adaLN: every block's `Linear(SiLU(c))` (2 per MMDiT block) vs one product on the concatenated
  weights, split.

The concatenation is per call, as a training step needs it: the parameters stay separate tensors
at their checkpoint keys. Prints each shape's median times and the fused/separate ratio.
    .venv/bin/python scripts/bench/fusion_probe.py [--rounds 5]
"""
import argparse
import statistics
import time

import torch


def median_ms(fn, iters):
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def probe(label, inputs, weights, biases, pre, rounds, iters):
    sizes = [w.shape[0] for w in weights]
    grads = [torch.randn(*inputs.shape[:-1], n) for n in sizes]

    def separate():
        x = pre(inputs)
        outs = [torch.nn.functional.linear(x, w, b) for w, b in zip(weights, biases)]
        torch.autograd.backward(outs, grads)

    def fused():
        x = pre(inputs)
        out = torch.nn.functional.linear(x, torch.cat(weights), torch.cat(biases))
        torch.autograd.backward(list(out.split(sizes, -1)), grads)

    a, b = [], []
    for _ in range(rounds):
        a.append(median_ms(separate, iters))
        b.append(median_ms(fused, iters))
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"{label}: separate {ma:.2f} ms, fused {mb:.2f} ms, fused/separate {mb / ma:.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    # (tokens, hidden): the demo's image stream (batch 64 x 64 tokens, H 192) and tiny-d4's
    # (batch 4 x 256, H 256), a depth-8 paper model's (batch 8 x 256, H 512).
    for tokens, h in [(64 * 64, 192), (4 * 256, 256), (8 * 256, 512)]:
        x = torch.randn(tokens, h, requires_grad=True)
        ws = [torch.randn(h, h, requires_grad=True) for _ in range(3)]
        bs = [torch.zeros(h, requires_grad=True) for _ in range(3)]
        probe(f"q/k/v  tokens {tokens} H {h}", x, ws, bs, lambda t: t, args.rounds, args.iters)
    # (batch, hidden, depth): 2 modulations of 6H per block.
    for b, h, d in [(64, 192, 3), (4, 256, 4), (8, 512, 8)]:
        c = torch.randn(b, h, requires_grad=True)
        ws = [torch.randn(6 * h, h, requires_grad=True) for _ in range(2 * d)]
        bs = [torch.zeros(6 * h, requires_grad=True) for _ in range(2 * d)]
        probe(f"adaLN  batch {b} H {h} depth {d}", c, ws, bs, torch.nn.functional.silu,
              args.rounds, args.iters)


if __name__ == "__main__":
    main()
