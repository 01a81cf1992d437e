"""Anderson acceleration (Anderson 1965; Walker & Ni 2011), batched per sample.

With the last n ≤ m iterates x_i and their images f_i = g(x_i), residuals r_i = f_i − x_i:

    α = argmin_{Σα=1} ‖Σ α_i r_i‖² + λ̃‖α‖²,     x_{k+1} = Σ α_i (f_i − (1−β) r_i)

(β = mixing, λ̃ = λ · mean diag of the Gram matrix: a ridge relative to the residual scale,
so the regularisation does not dominate near convergence).  The Gram matrix and the small
solve for α are kept in at least float32 (LAPACK has no half-precision kernels, and the
Gram entries of small float16 residuals would underflow); α is cast back to the state's
dtype for the mixing.  The Gram matrix is updated
incrementally, one row per step (O(B·m·N) per step instead of O(B·m²·N)); every batched
product is written as a row vector times a matrix, (B,1,K)×(B,K,·), which CPU bmm runs
several times faster than the matrix-times-column form (B,m,N)×(B,N,1).
The same class solves the forward problem on g and the adjoint problem on
h(c) = (∂g/∂x)ᵀ c + v (Bai, Kolter & Koltun 2019, "Deep Equilibrium Models").
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from fpibench.extend import FixedPointSolver, Integer, Number, SolverState, option, register_forward, write_slot


@register_forward("anderson")
@dataclass
class Anderson(FixedPointSolver):
    """Anderson acceleration with window ``m``, mixing ``beta`` and relative ridge ``lam``."""

    m: int = option(5, Integer(1))
    beta: float = option(1.0, Number(0, 1))
    lam: float = option(1e-4, Number(0, low_closed=True))
    name = "anderson"
    stops_on_growth = False  # quasi-Newton steps swing before they settle

    def init(self, f, x0):
        b, n = x0.shape
        m = self.m
        small = torch.promote_types(x0.dtype, torch.float32)  # dtype of the m×m algebra
        return SolverState(
            x0,
            images=x0.new_zeros(b, m, n),     # f_i
            residuals=x0.new_zeros(b, m, n),  # r_i = f_i − x_i
            gram=x0.new_zeros(b, m, m, dtype=small),  # ⟨r_i, r_j⟩
            eye=torch.eye(m, dtype=small, device=x0.device),
            k=0,
        )

    def step(self, f, state):
        x = state.x
        fx = f(x)
        r = fx - x
        slot = state.k % self.m
        state.images = write_slot(state.images, slot, fx)
        state.residuals = write_slot(state.residuals, slot, r)
        # new Gram row/column: ⟨r, r_j⟩ for every stored j, as rᵀ Rᵀ (row-vector form)
        small = state.gram.dtype  # .to is a no-op unless the state is in reduced precision
        row = torch.bmm(r.unsqueeze(1).to(small), state.residuals.transpose(1, 2).to(small)).squeeze(1)  # (B, m)
        state.gram = write_slot(state.gram, slot, row, dim=1)
        state.gram = write_slot(state.gram, slot, row, dim=2)
        state.k += 1
        n = min(state.k, self.m)
        if n == 1:
            state.x = x + self.beta * r
            return state
        gram = state.gram[:, :n, :n]
        tiny = torch.finfo(small).tiny
        scale = torch.diagonal(gram, dim1=1, dim2=2).mean(dim=1).clamp_min(tiny)
        regularised = gram + (self.lam * scale + tiny)[:, None, None] * state.eye[:n, :n]
        # min αᵀHα s.t. Σα = 1  ⇒  α = H⁻¹1 / (1ᵀH⁻¹1)
        alpha = torch.linalg.solve_ex(regularised, torch.ones_like(regularised[:, :, 0]))[0]  # ridge ⇒ nonsingular: skip the error check
        # linalg.solve returns a batch-strided (column-major) result; bmm on it is ~20x slower on CPU
        alpha = (alpha / alpha.sum(dim=1, keepdim=True)).to(x.dtype).contiguous()  # (B, n)
        images = state.images[:, :n]
        mixed = torch.bmm(alpha.unsqueeze(1), images).squeeze(1)
        if self.beta != 1:
            mixed = mixed - (1 - self.beta) * torch.bmm(alpha.unsqueeze(1), state.residuals[:, :n]).squeeze(1)
        state.x = mixed
        return state
