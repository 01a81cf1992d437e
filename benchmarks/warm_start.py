"""Warm-started adjoints in training: backward iterations and gradient error, cold vs warm.

An FPI_NN classifier (x̂ = tanh(x̂Wᵀ + zUᵀ + b), linear head, cross-entropy) trains with
Adam on scikit-learn's bundled digits images (real data, 8×8, 64 features) with the
backward FPI, once starting each adjoint from zero (cold) and once from the previous
step's adjoint (``warm_start``), from the same initialisation and batches.  Two regimes:
full batch (consecutive steps solve nearly the same adjoint problem) and minibatches (each
step's samples differ, so the previous adjoint belongs to other samples).  Every step
records the backward iterations; every ``--check-every`` steps the gradient is compared
with the dense implicit gradient at the same parameters.

    python benchmarks/warm_start.py --steps 120 --out results/warm_start/warm_start.csv
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch
from sklearn.datasets import load_digits
from torch import nn

import fpibench


class Cell(nn.Module):
    """g(x, z) = tanh(x Wᵀ + z Uᵀ + b) with W = κ V / ‖V‖₂: a contraction throughout training."""

    def __init__(self, d_in: int, d: int, contraction: float, gen: torch.Generator):
        super().__init__()
        self.contraction = contraction
        self.V = nn.Parameter(torch.randn(d, d, generator=gen) / d**0.5)
        self.U = nn.Parameter(torch.randn(d, d_in, generator=gen) / d_in**0.5)
        self.b = nn.Parameter(torch.zeros(d))

    def bind(self, z):
        W = self.contraction * self.V / torch.linalg.matrix_norm(self.V, 2)  # once per solve
        injection = z @ self.U.T + self.b
        return lambda x: torch.tanh(x @ W.T + injection)

    def forward(self, x, z):
        return self.bind(z)(x)


def run(regime: str, warm: bool, steps: int, batch: int, check_every: int, seed: int) -> list[dict]:
    digits = load_digits()
    X = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    gen = torch.Generator().manual_seed(seed)
    cell, head = Cell(64, 64, 0.9, gen), nn.Linear(64, 10)
    torch.manual_seed(seed)
    head.reset_parameters()
    options = {"tol": 1e-6, "max_iter": 500, "warm_start": warm}
    layer = fpibench.FixedPointLayer(cell, forward="anderson", backward="backward_fpi", tol=1e-6, max_iter=500, backward_options=options)
    reference = fpibench.FixedPointLayer(cell, forward="anderson", backward="jacobian_inverse", tol=1e-6, max_iter=500)
    opt = torch.optim.Adam(list(cell.parameters()) + list(head.parameters()), lr=3e-3)
    order = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed + 1))
    rows = []
    for step in range(steps):
        idx = order[:batch] if regime == "full_batch" else order[(step * batch) % (len(X) - batch):][:batch]
        z, target = X[idx], y[idx]
        start = time.perf_counter()
        loss = nn.functional.cross_entropy(head(layer(z)), target)
        params = list(cell.parameters())
        grads = torch.autograd.grad(loss, params, retain_graph=False)
        elapsed = time.perf_counter() - start
        row = {"regime": regime, "start": "warm" if warm else "cold", "step": step, "loss": float(loss.detach()),
               "backward_iterations": float(layer.last_stats.backward.iterations.double().mean()), "step_seconds": elapsed}
        if step % check_every == 0:
            ref_loss = nn.functional.cross_entropy(head(reference(z)), target)
            ref = torch.autograd.grad(ref_loss, params)
            row["gradient_error"] = float(torch.cat([(g - r).flatten() for g, r in zip(grads, ref)]).norm()
                                          / torch.cat([r.flatten() for r in ref]).norm())
        rows.append(row)
        opt.zero_grad()
        for p, g in zip(params, grads):
            p.grad = g
        head_grads = torch.autograd.grad(nn.functional.cross_entropy(head(layer(z).detach()), target), list(head.parameters()))
        for p, g in zip(head.parameters(), head_grads):
            p.grad = g
        opt.step()
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--check-every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/warm_start/warm_start.csv"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for regime in ("full_batch", "minibatch"):
        for warm in (False, True):
            rows += run(regime, warm, args.steps, args.batch, args.check_every, args.seed)
    frame = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    summary = frame.groupby(["regime", "start"]).agg(
        backward_iterations=("backward_iterations", "mean"), gradient_error_median=("gradient_error", "median"),
        gradient_error_max=("gradient_error", "max"), step_ms=("step_seconds", lambda s: 1e3 * s.median()), final_loss=("loss", "last"))
    print(summary.to_string(float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
