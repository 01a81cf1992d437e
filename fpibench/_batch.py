"""The batch contract: with ``batch=True`` dimension 0 indexes independent problems.

Per-sample convergence, freezing converged samples, per-sample solver state (Anderson's
and Broyden's histories, GMRES's Krylov bases) and the dense per-sample Jacobians all rest
on g treating each sample on its own.  A g that mixes samples (``x.mean(0)``, batch
normalisation in training mode) makes them silently wrong while they report
``converged``.  :func:`check_batch_independence` tests the contract with one
vector–Jacobian product: a cotangent on sample 0 alone must give a gradient that is zero
on every other sample.
"""
from __future__ import annotations

from typing import Callable

import torch

from .errors import FixedPointError


def check_batch_independence(g: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> None:
    """Raise :class:`FixedPointError` when g(x)'s other samples depend on sample 0 of x.

    Costs one evaluation of g and one VJP; ``fixed_point(..., strict=True)`` runs it at the
    solution.  Leaves the random number generators untouched.
    """
    if x.dim() < 1 or x.shape[0] < 2:
        return
    point = x.detach().requires_grad_()
    with torch.enable_grad():
        out = g(point)
        probe = torch.zeros_like(out)
        sample = probe[0].reshape(-1)
        sample.copy_(torch.linspace(1.0, 2.0, sample.numel(), dtype=out.dtype, device=out.device))
        (vjp,) = torch.autograd.grad(out, point, probe, allow_unused=True)
    if vjp is None:
        return
    flat = vjp.detach().reshape(vjp.shape[0], -1)
    own, leak = float(flat[0].abs().max()), float(flat[1:].abs().max())
    if leak > 1e-6 * max(own, torch.finfo(flat.dtype).tiny) or not torch.isfinite(flat).all():
        raise FixedPointError(
            "g couples the samples of the batch: the gradient through sample 0 reaches other samples "
            f"(max {leak:.3g} against {own:.3g} on sample 0). With batch=True dimension 0 must index "
            "independent problems (per-sample convergence, solver state and Jacobians assume it); "
            "pass batch=False to solve the whole tensor as one problem"
        )
