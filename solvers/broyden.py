"""Limited-memory ("good") Broyden's method on r(x) = g(x) − x, batched per sample.

The inverse Jacobian of r is approximated as B = −I + Σ u_i v_iᵀ (rank ≤ m, oldest pair
overwritten), updated by Sherman–Morrison with Δx = x_{k+1} − x_k, Δr = r_{k+1} − r_k:

    x_{k+1} = x_k − B r_k,      u = (Δx − B Δr) / (vᵀΔr),   vᵀ = Δxᵀ B

(Broyden 1965; the limited-memory form used by Bai et al. 2019 for DEQs).

When the m pairs are full, ``on_full="restart"`` (default) drops them all and starts again
from B = −I at the current point; ``"overwrite"`` replaces the oldest pair, as Bai et al.'s
and torchdeq's code do.  Overwriting is not a Broyden update: each pair was computed against
the B that held the older ones, so dropping the oldest leaves a B that matches no secant
history.  On a 64-dimensional quadratic-energy gradient step (contraction 0.9, float64)
overwriting with m = 30 takes the residual from 1e-7 at step 50 to 5e21 at step 100
(m = 10: 2e1 at step 30); restarting keeps converging.

Cost per step: one call of g and two products with the stored pairs, Bᵀ Δx and B r_{k+1};
B Δr = B r_{k+1} − B r_k reuses the previous product, and the next step's B' r_{k+1}
follows from B r_{k+1} by the rank-one update (minus the overwritten pair once the memory
is full).  Only the min(k, m) stored pairs are applied, the memory grows geometrically up
to m (no B·m·N allocation for a solve that stops early), and products are written as row
vectors times matrices, (B,1,K)×(B,K,·), which CPU bmm runs several times faster than
(B,m,N)×(B,N,1).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from fpibench.extend import FixedPointSolver, Integer, Number, OneOf, SolverState, option, register_forward, write_slot


@register_forward("broyden")
@dataclass
class Broyden(FixedPointSolver):
    """Limited-memory Broyden with ``m`` stored rank-one updates and step size ``step_size``.

    ``on_full``: ``"restart"`` or ``"overwrite"`` once m pairs are stored (see the module text).
    ``stop_on``: ``"step"`` (the loop's default, ‖x_{k+1} − x_k‖) or ``"residual"``: the
    stopping test reads ‖g(x_{k+1}) − x_{k+1}‖ of the returned point, which the step computes
    anyway (the rule of torchdeq and of most DEQ code).
    """

    m: int = option(30, Integer(1))
    step_size: float = option(1.0, Number(0))
    stop_on: str = option("step", OneOf(("step", "residual")))
    on_full: str = option("restart", OneOf(("restart", "overwrite")))
    name = "broyden"
    stops_on_growth = False  # quasi-Newton steps swing before they settle

    #: initial number of allocated pair slots (grown by doubling up to m)
    initial_slots = 8

    def init(self, f, x0):
        b, n = x0.shape
        slots = min(self.m, self.initial_slots)
        r = f(x0) - x0
        return SolverState(
            x0,
            r=r,
            br=-r,  # B r for B = −I
            us=x0.new_zeros(b, slots, n),
            vs=x0.new_zeros(b, slots, n),
            k=0,
        )

    def _grow(self, state):
        """Double the allocated slots (at most m), keeping the stored pairs."""
        b, slots, n = state.us.shape
        extra = min(self.m, 2 * slots) - slots
        state.us = torch.cat([state.us, state.us.new_zeros(b, extra, n)], dim=1)
        state.vs = torch.cat([state.vs, state.vs.new_zeros(b, extra, n)], dim=1)

    @staticmethod
    def _apply(us, vs, y):
        """B y = −y + U (Vᵀ y), computed as ((yᵀVᵀ) U)ᵀ."""
        if us.shape[1] == 0:
            return -y
        return -y + torch.bmm(torch.bmm(y.unsqueeze(1), vs.transpose(1, 2)), us).squeeze(1)

    @staticmethod
    def _apply_transposed(us, vs, y):
        """Bᵀ y = −y + V (Uᵀ y), computed as ((yᵀUᵀ) V)ᵀ."""
        if us.shape[1] == 0:
            return -y
        return -y + torch.bmm(torch.bmm(y.unsqueeze(1), us.transpose(1, 2)), vs).squeeze(1)

    def inverse_jacobian_t(self, state):
        """y ↦ Bᵀy for the final estimate B ≈ (∂g/∂x − I)⁻¹ (the pairs since the last restart);
        detached: SHINE differentiates its estimate as a constant."""
        used = min(state.k, self.m)
        us, vs = state.us[:, :used].detach(), state.vs[:, :used].detach()
        return lambda y: self._apply_transposed(us, vs, y)

    def step(self, f, state):
        if state.k == self.m and self.on_full == "restart":
            # B = −I again; the stored pairs are ignored (only the first k slots are read)
            state.k, state.br = 0, -state.r
        x, r, br = state.x, state.r, state.br
        used = min(state.k, self.m)  # slots beyond k are empty or hold pairs from before a restart: skip them
        us, vs = state.us[:, :used], state.vs[:, :used]
        dx = -self.step_size * br
        x_new = x + dx
        r_new = f(x_new) - x_new
        dr = r_new - r
        v = self._apply_transposed(us, vs, dx)
        br_new = self._apply(us, vs, r_new)
        denom = (v * dr).sum(dim=1, keepdim=True)
        # skip the update where vᵀΔr is rounding noise relative to ‖v‖‖Δr‖ (near convergence,
        # or once the memory spans a small state's whole space): dividing by it blows B up,
        scale = torch.linalg.vector_norm(v, dim=1, keepdim=True) * torch.linalg.vector_norm(dr, dim=1, keepdim=True)
        eps = torch.finfo(x.dtype).eps
        safe = denom.abs() > eps * scale + torch.finfo(x.dtype).tiny ** 0.5
        # and where the step itself is rounding noise (a few ulps of x): its secant pair is
        # noise too, and a rank-one update of noise/noise can still be O(1) in B
        safe = safe & (torch.linalg.vector_norm(dx, dim=1, keepdim=True) > 8 * eps * torch.linalg.vector_norm(x_new, dim=1, keepdim=True))
        # u = (Δx − B Δr) / (vᵀΔr) with B Δr = B r_{k+1} − B r_k
        u = torch.where(safe, (dx - (br_new - br)) / torch.where(safe, denom, torch.ones_like(denom)), torch.zeros_like(dx))
        slot = state.k % self.m
        # B' = B − u_old v_oldᵀ + u vᵀ, so B' r_{k+1} = B r_{k+1} − u_old⟨v_old, r_{k+1}⟩ + u⟨v, r_{k+1}⟩
        br_new = br_new + u * (v * r_new).sum(dim=1, keepdim=True)
        if state.k >= self.m:
            br_new = br_new - state.us[:, slot] * (state.vs[:, slot] * r_new).sum(dim=1, keepdim=True)
        elif slot == state.us.shape[1]:
            self._grow(state)
        state.us = write_slot(state.us, slot, u)
        state.vs = write_slot(state.vs, slot, v)
        state.k += 1
        state.x, state.r, state.br = x_new, r_new, br_new
        if self.stop_on == "residual":
            state.residual = torch.linalg.vector_norm(r_new.detach(), dim=1)
        return state
