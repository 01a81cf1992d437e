"""SHINE: the adjoint from the forward solver's own inverse-Jacobian estimate.

Ramzi, Mannel, Banert & Ciuciu, "SHINE: SHaring the INverse Estimate from the forward pass
for bi-level optimization and implicit models" (ICLR 2022).  Limited-memory Broyden on
r(x) = g(x) − x ends with B ≈ (∂r/∂x)⁻¹ = (∂g/∂x − I)⁻¹, so the adjoint
c = (I − ∂g/∂x)⁻ᵀ ∇x̂L is estimated at no cost in VJPs as

    c ≈ −Bᵀ ∇x̂L,

optionally refined by ``refine`` Picard steps of the adjoint map c ← (∂g/∂x)ᵀc + ∇x̂L
started from that estimate (one VJP each).  Not exact: its accuracy is that of the
secant estimate along the directions the forward explored.  A forward solver that keeps
no estimate is refused before the solve.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from fpibench.extend import (
    FORWARD, AdjointGradient, BackwardStats, GradientOptions, Integer, IterationControl, iterate, option,
    register_backward,
)


@register_backward("shine")
@dataclass
class Shine(GradientOptions, AdjointGradient):
    """c = −Bᵀ∇x̂L from the forward Broyden's inverse estimate B, then ``refine`` adjoint steps."""

    refine: int = option(0, Integer(0))
    name = "shine"
    exact = False
    needs_inverse_jacobian = True

    def adjoint(self, lin, v, ctx):
        estimate = -ctx.inverse_jacobian_t(v)
        if self.refine == 0:
            batch = v.shape[0]
            zeros = torch.zeros(batch, dtype=v.dtype)  # no VJP is spent on measuring the residual
            stats = BackwardStats(
                iterations=torch.zeros(batch, dtype=torch.long), residual=zeros, residual_trace=torch.empty(0, batch),
                status=["fixed_steps" if ok else "nonfinite" for ok in torch.isfinite(estimate).all(dim=1).tolist()],
                nfev=1, solver="broyden estimate", method=self.name, vjp_calls=lin.vjp_calls,
            )
            return estimate, stats
        control = IterationControl(tol=None, max_iter=self.refine)
        c, stats = iterate(FORWARD.create("picard"), lin.adjoint_map(v), estimate, control)
        return c, BackwardStats.from_iterations(stats, self.name, lin.vjp_calls)
