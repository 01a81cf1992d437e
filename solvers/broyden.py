"""Limited-memory ("good") Broyden's method on r(x) = g(x) − x, batched per sample.

The inverse Jacobian of r is approximated as B = −I + Σ u_i v_iᵀ (rank ≤ m, oldest pair
overwritten), updated by Sherman–Morrison with Δx = x_{k+1} − x_k, Δr = r_{k+1} − r_k:

    x_{k+1} = x_k − B r_k,      u = (Δx − B Δr) / (vᵀΔr),   vᵀ = Δxᵀ B

(Broyden 1965; the limited-memory form used by Bai et al. 2019 for DEQs).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from fpibench._iterate import FixedPointSolver, SolverState, write_slot
from fpibench._registry import register_forward
from fpibench.errors import OptionError


@register_forward("broyden")
@dataclass
class Broyden(FixedPointSolver):
    """Limited-memory Broyden with ``m`` stored rank-one updates and step size ``step_size``."""

    m: int = 30
    step_size: float = 1.0
    name = "broyden"

    def __post_init__(self):
        if not isinstance(self.m, int) or isinstance(self.m, bool) or self.m < 1:
            raise OptionError(f"broyden: memory m must be an integer >= 1, got {self.m!r}")
        if not self.step_size > 0:
            raise OptionError(f"broyden: step_size must be > 0, got {self.step_size!r}")

    def init(self, f, x0):
        b, n = x0.shape
        return SolverState(
            x0,
            r=f(x0) - x0,
            us=x0.new_zeros(b, self.m, n),
            vs=x0.new_zeros(b, self.m, n),
            k=0,
        )

    @staticmethod
    def _apply(us, vs, y):
        """B y = −y + U (Vᵀ y)."""
        return -y + torch.bmm(torch.bmm(vs, y.unsqueeze(2)).transpose(1, 2), us).squeeze(1)

    @staticmethod
    def _apply_transposed(us, vs, y):
        """Bᵀ y = −y + V (Uᵀ y)."""
        return -y + torch.bmm(torch.bmm(us, y.unsqueeze(2)).transpose(1, 2), vs).squeeze(1)

    def step(self, f, state):
        x, r = state.x, state.r
        dx = -self.step_size * self._apply(state.us, state.vs, r)
        x_new = x + dx
        r_new = f(x_new) - x_new
        dr = r_new - r
        v = self._apply_transposed(state.us, state.vs, dx)
        denom = (v * dr).sum(dim=1, keepdim=True)
        tiny = torch.finfo(x.dtype).tiny ** 0.5
        safe = denom.abs() > tiny
        u = torch.where(safe, (dx - self._apply(state.us, state.vs, dr)) / torch.where(safe, denom, torch.ones_like(denom)), torch.zeros_like(dx))
        slot = state.k % self.m
        state.us = write_slot(state.us, slot, u)
        state.vs = write_slot(state.vs, slot, v)
        state.k += 1
        state.x, state.r = x_new, r_new
        return state
