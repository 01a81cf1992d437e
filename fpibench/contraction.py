"""ρ(∂g/∂x) at an FPI layer's output: what decides whether the backward FPI converges.

The backward FPI c ← (∂g/∂x̂)ᵀc + v (Jeon, Lee & Choi 2021, eq. 10) converges iff
ρ(∂g/∂x̂) < 1; their Proposition 1 assumes g is a contraction.  A plain forward FPI that
converged to x̂ implies ρ ≤ 1 there, but Anderson or Broyden can also converge to a
repelling fixed point (ρ > 1), where the backward FPI diverges while Krylov adjoints
(GMRES) still solve (I − Jᵀ)c = v.

``python -m fpibench.contraction --task bibtex --forward anderson --steps 200`` trains a
vector task's FPI model the way the harness does (same model, data, batches, optimiser)
and every ``--every`` steps records, for the batch just trained on, the loss, the forward
and backward solve statuses and the estimate of ρ at each sample's x̂ (max and median).
"""
from __future__ import annotations

import argparse
import collections
import csv
import sys
import warnings
from pathlib import Path
from typing import Callable

import torch

from .errors import FixedPointWarning


def spectral_radius(g: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, iters: int = 40,
                    seed: int = 0) -> torch.Tensor:
    """Per-sample estimate of ρ(∂g/∂x) at x (B, N), by power iteration on Jᵀ with VJPs.

    ρ(J) = ρ(Jᵀ) = lim ‖(Jᵀ)ᵏv‖^{1/k}; the estimate is the geometric mean of the growth
    factors ‖Jᵀv_k‖ (v_k normalised) over the last half of the iterations, which also
    settles when the dominant eigenvalues are a complex pair.  VJPs work through g's own
    autograd calls (FPI_GD), where forward-mode JVPs do not.
    """
    if x.dim() != 2:
        raise ValueError(f"x must be (batch, n), got shape {tuple(x.shape)}")
    if iters < 2:
        raise ValueError(f"iters must be >= 2, got {iters}")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    with torch.enable_grad():
        point = x.detach().requires_grad_()
        out = g(point)
        v = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
        v = v / torch.linalg.vector_norm(v, dim=1, keepdim=True)
        logs = []
        for _ in range(iters):
            (jtv,) = torch.autograd.grad(out, point, v, retain_graph=True)
            growth = torch.linalg.vector_norm(jtv, dim=1).clamp_min(torch.finfo(x.dtype).tiny)
            logs.append(growth.log())
            v = jtv / growth[:, None]
    return torch.stack(logs[iters // 2:]).mean(0).exp().detach()


def _statuses(stats) -> str:
    return " ".join(f"{k}:{n}" for k, n in sorted(collections.Counter(stats.status).items()))


def trace(task_name: str, model_kind: str, forward: str, backward: str, steps: int, every: int,
          seed: int = 0, data_dir=None, iters: int = 40) -> list[dict]:
    """Train ``steps`` steps and record ρ at the trained batch's fixed points every ``every`` steps."""
    from .tasks import FPIConfig, get as get_task
    from .tasks.vector_models import FPIModel

    task = get_task(task_name, preset="paper", data_dir=data_dir)
    model = task.build_model(model_kind, FPIConfig(forward=forward, backward=backward), seed=seed)
    if not isinstance(model, FPIModel):
        raise ValueError(f"{task_name}/{model_kind} is not a vector FPI model (its layer input must be the batch input)")
    optimizer = task.optimizer(model)
    rows, step, epoch = [], 0, 0
    while step < steps:
        epoch += 1
        for batch in task.train_batches(epoch, seed):
            loss = task.train_step(model, optimizer, batch)
            if step % every == 0:
                stats = model.fpi.last_stats
                g = model.fpi.map_for(batch[0])
                rho = spectral_radius(g, model.fpi.last_solution.value.detach(), iters=iters, seed=step)
                rows.append({
                    "step": step, "loss": loss, "forward_status": _statuses(stats.forward),
                    "backward_status": _statuses(stats.backward) if stats.backward is not None else "",
                    "rho_max": float(rho.max()), "rho_median": float(rho.median()),
                    "rho_above_1": int((rho > 1).sum()), "batch": len(rho),
                })
            step += 1
            if step >= steps:
                break
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fpibench.contraction", description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="bibtex")
    p.add_argument("--model", default="fpi_nn")
    p.add_argument("--forward", default="anderson")
    p.add_argument("--backward", default="backward_fpi")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="CSV file to write (default: print only)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FixedPointWarning)
        rows = trace(a.task, a.model, a.forward, a.backward, a.steps, a.every, a.seed, a.data_dir)
    for r in rows:
        print(f"step {r['step']:4d} loss {r['loss']:.4f} rho max {r['rho_max']:.3f} median {r['rho_median']:.3f} "
              f"(>1: {r['rho_above_1']}/{r['batch']})  forward {r['forward_status']}  backward {r['backward_status']}")
    if a.out:
        from .results import provenance

        setting = {"task": a.task, "model": a.model, "forward": a.forward, "backward": a.backward, "seed": a.seed}
        prov = {k: v for k, v in provenance().items() if k in ("git_commit", "torch_version", "cpu_name", "gpu_name")}
        table = [{**setting, **r, **prov} for r in rows]
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        with open(a.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(table[0]))
            w.writeheader()
            w.writerows(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
