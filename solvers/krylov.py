"""Krylov solvers for symmetric adjoint systems: conjugate gradients and MINRES, batched.

For FPI_GD, g(x) = x − η∇ₓE, so ∂g/∂x = I − η∇²E is symmetric and the adjoint system
(I − ∂g/∂x)ᵀc = ∇x̂L is A c = v with A = η∇²E symmetric — positive definite at a strict
minimum of E (conjugate gradients, Hestenes & Stiefel 1952), indefinite at a saddle
(MINRES, Paige & Saunders 1975).  On an affine map h(c) = Mc + v (the adjoint map) A = I − M
is applied with one call of h: A p = p − (h(x₀ + p) − h(x₀)).

Neither is valid on a non-symmetric A, and CG not on an indefinite one; both say so per
sample instead of returning a silent wrong answer.  ``init`` probes symmetry with two
calls of h on fixed probe vectors u, w (⟨w, Mu⟩ = ⟨u, Mw⟩ for symmetric M): a sample that
fails is frozen with status ``nonsymmetric``; CG freezes a sample whose search direction
meets non-positive curvature (pᵀAp ≤ 0) with status ``indefinite``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from fpibench.extend import FixedPointSolver, Flag, SolverState, option

NONSYMMETRIC = "nonsymmetric"
INDEFINITE = "indefinite"
VERDICTS = (None, NONSYMMETRIC, INDEFINITE)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(dim=1)


def _probe(x0: torch.Tensor, phase: float) -> torch.Tensor:
    """A fixed, non-degenerate probe vector per sample (the random generators stay untouched)."""
    batch, n = x0.shape
    grid = torch.arange(n * batch, dtype=x0.dtype, device=x0.device).reshape(batch, n)
    return torch.sin(0.7548776662 * grid + phase) + 0.5


class _SymmetricKrylov(FixedPointSolver):
    """Shared set-up: base point, its image, the symmetry probe, frozen samples."""

    linear_only = True
    check_symmetry: bool = True

    def operator(self, f, state):
        """p ↦ A p = p − (h(x₀ + p) − h(x₀)) at the base point x₀, in the working precision."""
        dtype = state.x.dtype
        return lambda p: p - (f(state.base + p.to(dtype)) - state.base_image).to(p.dtype)

    def setup(self, f, x0) -> SolverState:
        state = SolverState(x0)
        state.base, state.base_image = x0, f(x0)
        # the recurrences run in at least float32: in half precision they would stall at its rounding
        state.r = (state.base_image - x0).to(torch.promote_types(x0.dtype, torch.float32))  # b − A x₀
        state.refused = torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device)
        state.why = torch.zeros(x0.shape[0], dtype=torch.int8, device=x0.device)  # index into VERDICTS
        if self.check_symmetry:
            apply = self.operator(f, state)
            u, w = _probe(state.r, 0.0), _probe(state.r, 1.3)
            left, right = _dot(w, apply(u)), _dot(u, apply(w))
            scale = torch.linalg.vector_norm(u, dim=1) * torch.linalg.vector_norm(w, dim=1)
            tol = 1e3 * torch.finfo(x0.dtype).eps * scale * (1 + torch.linalg.vector_norm(apply(u), dim=1) / torch.linalg.vector_norm(u, dim=1))
            self.refuse(state, (left - right).abs() > tol, NONSYMMETRIC)
        return state

    @staticmethod
    def refuse(state, mask: torch.Tensor, status: str) -> None:
        """Freeze the samples in ``mask`` with ``status`` (the first verdict stands); no host sync."""
        new = mask & ~state.refused
        state.why = torch.where(new, torch.tensor(VERDICTS.index(status), dtype=torch.int8, device=new.device), state.why)
        state.refused = state.refused | new

    @staticmethod
    def verdicts(state) -> list:
        """Per sample: the status this solver gives it, or None (read once, after the loop)."""
        return [VERDICTS[i] for i in state.why.tolist()]

    def finish_step(self, state, x_new, residual):
        """Refused samples keep their iterate and report a zero step (the loop stops them)."""
        keep = state.refused.unsqueeze(1)
        state.x = torch.where(keep, state.x, x_new.to(state.x.dtype))
        state.residual = torch.where(state.refused, torch.zeros_like(residual), residual)
        return state


@dataclass
class CG(_SymmetricKrylov):
    """Conjugate gradients on A c = b, A symmetric positive definite."""

    check_symmetry: bool = option(True, Flag())
    name = "cg"

    def init(self, f, x0):
        state = self.setup(f, x0)
        state.p = state.r.clone()
        state.rr = _dot(state.r, state.r)
        state.delta = torch.zeros_like(state.r)
        return state

    def step(self, f, state):
        ap = self.operator(f, state)(state.p)
        curvature = _dot(state.p, ap)
        tiny = torch.finfo(state.p.dtype).tiny
        self.refuse(state, (curvature <= 0) & (state.rr > tiny), INDEFINITE)
        alpha = torch.where(curvature > tiny, state.rr / curvature.clamp_min(tiny), torch.zeros_like(curvature))
        state.delta = state.delta + alpha.unsqueeze(1) * state.p
        state.r = state.r - alpha.unsqueeze(1) * ap
        rr = _dot(state.r, state.r)
        beta = torch.where(state.rr > tiny, rr / state.rr.clamp_min(tiny), torch.zeros_like(rr))
        state.p = state.r + beta.unsqueeze(1) * state.p
        state.rr = rr
        return self.finish_step(state, state.base + state.delta.to(state.base.dtype), rr.sqrt())


@dataclass
class MINRES(_SymmetricKrylov):
    """MINRES on A c = b, A symmetric (definite or not): Lanczos with Givens rotations,
    minimising ‖b − A c‖ over the Krylov space (Paige & Saunders 1975)."""

    check_symmetry: bool = option(True, Flag())
    name = "minres"

    def init(self, f, x0):
        state = self.setup(f, x0)
        zeros = torch.zeros(x0.shape[0], dtype=state.r.dtype, device=x0.device)
        state.beta = torch.linalg.vector_norm(state.r, dim=1)
        state.old_beta = zeros.clone()
        state.y, state.r1, state.r2 = state.r.clone(), state.r.clone(), state.r.clone()
        state.dbar, state.epsln, state.phibar = zeros.clone(), zeros.clone(), state.beta.clone()
        state.cs, state.sn = -torch.ones_like(zeros), zeros.clone()
        state.w, state.w2 = torch.zeros_like(state.r), torch.zeros_like(state.r)
        state.delta_x = torch.zeros_like(state.r)
        state.k = 0
        return state

    def step(self, f, state):
        tiny = torch.finfo(state.y.dtype).tiny
        beta = state.beta.clamp_min(tiny)
        v = state.y / beta.unsqueeze(1)
        y = self.operator(f, state)(v)
        if state.k >= 1:
            y = y - (state.beta / state.old_beta.clamp_min(tiny)).unsqueeze(1) * state.r1
        alpha = _dot(v, y)
        y = y - (alpha / beta).unsqueeze(1) * state.r2
        state.r1, state.r2 = state.r2, y
        state.old_beta, state.beta = state.beta, torch.linalg.vector_norm(y, dim=1)
        old_eps = state.epsln
        delta = state.cs * state.dbar + state.sn * alpha
        gbar = state.sn * state.dbar - state.cs * alpha
        state.epsln = state.sn * state.beta
        state.dbar = -state.cs * state.beta
        gamma = torch.sqrt(gbar**2 + state.beta**2).clamp_min(torch.finfo(gbar.dtype).eps)
        state.cs, state.sn = gbar / gamma, state.beta / gamma
        phi = state.cs * state.phibar
        state.phibar = state.sn * state.phibar
        w1, state.w2 = state.w2, state.w
        state.w = (v - old_eps.unsqueeze(1) * w1 - delta.unsqueeze(1) * state.w2) / gamma.unsqueeze(1)
        state.delta_x = state.delta_x + phi.unsqueeze(1) * state.w
        state.y = y
        state.k += 1
        return self.finish_step(state, state.base + state.delta_x.to(state.base.dtype), state.phibar.abs())
