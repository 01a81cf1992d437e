"""Restarted GMRES(m) for affine fixed-point problems c = h(c), batched per sample.

With h affine, h(c) = M c + b, the fixed point solves (I − M) c = b.  From a base point
x₀ (the start, then each restart) the correction solves (I − M) δ = h(x₀) − x₀, and
M v = h(x₀ + v) − h(x₀), so each Arnoldi step costs one call of h and a restart one more.
The iterate is x₀ + V_k y_k with y_k the small least-squares solution, and the residual
‖b − (I − M) x_k‖ = ‖h(x_k) − x_k‖ is reported to the loop (Saad & Schultz 1986).
Orthogonalisation is classical Gram–Schmidt applied twice (CGS2), batched.  The Hessenberg
matrix and its least-squares solve are kept in at least float32 (LAPACK has no
half-precision QR); the Krylov basis stays in the state's dtype.  In fpibench h is the
adjoint map c ↦ (∂g/∂x)ᵀc + ∇x̂L, so every step costs one vector–Jacobian product.

Only valid for affine maps, so it is registered as a gradient method, not a forward solver.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from fpibench.extend import FixedPointSolver, Integer, SolverState, option


@dataclass
class GMRES(FixedPointSolver):
    """Restarted GMRES with Krylov dimension ``restart``."""

    restart: int = option(20, Integer(1))
    name = "gmres"
    option_kind = "adjoint solver"
    linear_only = True

    def init(self, f, x0):
        state = SolverState(x0)
        self._restart(f, state, x0)
        return state

    def _restart(self, f, state, x0):
        batch, n = x0.shape
        m = self.restart
        state.base_image = f(x0)
        r0 = state.base_image - x0
        beta = torch.linalg.vector_norm(r0, dim=1)
        state.base = x0
        state.basis = x0.new_zeros(batch, m + 1, n)
        state.basis[:, 0] = r0 / beta.clamp_min(torch.finfo(x0.dtype).tiny).unsqueeze(1)
        state.hessenberg = x0.new_zeros(batch, m + 1, m, dtype=torch.promote_types(x0.dtype, torch.float32))
        state.beta = beta
        state.j = 0

    def step(self, f, state):
        if state.j == self.restart:
            self._restart(f, state, state.x)
        j = state.j
        v = state.basis[:, j]
        w = v - (f(state.base + v) - state.base_image)  # (I − M) v
        basis = state.basis[:, : j + 1]
        h = torch.zeros_like(state.hessenberg[:, : j + 1, j])
        for _ in range(2):  # CGS2: classical Gram–Schmidt, applied twice
            coeff = torch.bmm(basis, w.unsqueeze(2)).squeeze(2)
            w = w - torch.bmm(coeff.unsqueeze(1), basis).squeeze(1)
            h = h + coeff  # accumulated in the Hessenberg dtype
        norm = torch.linalg.vector_norm(w, dim=1)
        state.hessenberg[:, : j + 1, j] = h
        state.hessenberg[:, j + 1, j] = norm
        tiny = torch.finfo(w.dtype).tiny
        state.basis[:, j + 1] = torch.where((norm > tiny).unsqueeze(1), w / norm.clamp_min(tiny).unsqueeze(1), torch.zeros_like(w))
        state.j = j + 1
        k = state.j
        hk = state.hessenberg[:, : k + 1, :k]
        e1 = torch.zeros_like(hk[:, :, 0])
        e1[:, 0] = state.beta
        y = _least_squares(hk, e1)
        state.x = state.base + torch.bmm(y.unsqueeze(1).to(state.basis.dtype), state.basis[:, :k]).squeeze(1)
        state.residual = torch.linalg.vector_norm(e1 - torch.bmm(hk, y.unsqueeze(2)).squeeze(2), dim=1)
        return state


def _least_squares(h: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """min_y ‖h y − rhs‖ for a batch of small (k+1)×k Hessenberg matrices, via QR."""
    q, r = torch.linalg.qr(h, mode="reduced")
    qtb = torch.bmm(q.transpose(1, 2), rhs.unsqueeze(2))
    diag = torch.diagonal(r, dim1=1, dim2=2)
    # happy breakdown gives a zero pivot: regularise it so the solve stays finite
    eps = torch.finfo(h.dtype).eps * h.abs().amax(dim=(1, 2), keepdim=True).squeeze(2).clamp_min(1)
    r = r + torch.diag_embed(torch.where(diag.abs() < eps, eps.expand_as(diag), torch.zeros_like(diag)))
    return torch.linalg.solve_triangular(r, qtb, upper=True).squeeze(2)
