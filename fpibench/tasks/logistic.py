"""L2-regularised logistic regression with one regularisation weight per feature, as an FPI_GD layer.

For labels y_k ∈ {0, 1}ⁿ (one inner problem per row k of ``y``, solved as one batch sample)
and a design X (n × (d + 1), the last column all ones: an unregularised bias), the inner
energy of problem k is

    E_k(w) = mean_i [softplus(t_i) − y_ki t_i] + ½ Σ_{j<d} α_j w_j²,   t = X w,  α = exp(λ),

with gradient ∇E_k(w) = Xᵀ(σ(Xw) − y_k)/n + α ⊙ w and Hessian H = XᵀSX/n + diag(α, 0), so
the gradient step's Jacobian I − ηH is symmetric.  The step is η = 1/L with the bound
L = ‖X‖²_F/(4n) + max α ≥ ‖H‖₂ (computed without a graph, so the fixed point ∇E = 0 and its
implicit derivative do not depend on η).  It enters as a scale of the bound energy
(ηE, gradient η∇E) under :class:`fpibench.EnergyStep` with a unit step.

:func:`exact_hypergradient` is the closed form in float64: the inner problem solved by
Newton's method to rounding, then dL/dλ_j = −(H⁻¹∇_w L)_j α_j w_j summed over the problems.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .._energy import EnergyStep
from .._layer import FixedPointLayer


def logistic_loss(weights: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of the logits ``weights @ xᵀ`` (problems × rows) against ``y``."""
    return F.binary_cross_entropy_with_logits(weights @ x.T, y)


class _BoundEnergy:
    """ηE(·) for one training set, with its closed-form gradient (no autograd call per iteration)."""

    def __init__(self, log_alpha: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
        n = x.shape[0]
        lipschitz = float(x.detach().pow(2).sum()) / (4 * n) + float(log_alpha.detach().exp().max())
        self.scale = 1.0 / lipschitz
        self.alpha = torch.cat([log_alpha.exp(), log_alpha.new_zeros(1)])  # the bias is not regularised
        self.x, self.y, self.n = x, y, n

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        t = w @ self.x.T
        fit = (F.softplus(t) - self.y * t).mean(dim=1)
        return self.scale * (fit + 0.5 * (self.alpha * w * w).sum(dim=1))

    def gradient(self, w: torch.Tensor) -> torch.Tensor:
        residual = torch.sigmoid(w @ self.x.T) - self.y
        return self.scale * (residual @ self.x / self.n + self.alpha * w)


class RegularisedLogistic(nn.Module):
    """The inner energy; its parameter is the hyperparameter λ (log regularisation weight per feature).

    The input z of the layer is the training set ``(x, y)``: x (n × (d + 1)), y (problems × n).
    """

    def __init__(self, n_features: int, init_log_alpha: float):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.full((n_features,), float(init_log_alpha)))

    def bind(self, z: Tuple[torch.Tensor, torch.Tensor]) -> _BoundEnergy:
        return _BoundEnergy(self.log_alpha, *z)

    def forward(self, w: torch.Tensor, z: Tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return self.bind(z)(w)

    def init_state(self, z: Tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = z
        return x.new_zeros(y.shape[0], x.shape[1])


class HyperLogReg(nn.Module):
    """``model(x, y)`` → the inner solution w*(λ) (problems × (d + 1)) as the layer's fixed point."""

    def __init__(self, n_features: int, init_log_alpha: float, layer_kwargs: dict):
        super().__init__()
        self.energy = RegularisedLogistic(n_features, init_log_alpha)
        self.fpi = FixedPointLayer(EnergyStep(self.energy, 1.0), **layer_kwargs)

    @property
    def log_alpha(self) -> nn.Parameter:
        return self.energy.log_alpha

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.fpi((x, y))


def _hessians(w, x, alpha):
    """Per-problem Hessians XᵀS_kX/n + diag(α, 0) (problems × (d + 1) × (d + 1))."""
    p = torch.sigmoid(w @ x.T)
    s = p * (1 - p) / x.shape[0]
    return torch.einsum("ki,ia,ib->kab", s, x, x) + torch.diag(alpha)


def solve_inner(log_alpha: torch.Tensor, x: torch.Tensor, y: torch.Tensor, max_steps: int = 100) -> torch.Tensor:
    """The inner minimiser w*(λ) by Newton's method in float64, to rounding."""
    alpha = torch.cat([log_alpha.detach().double().exp(), log_alpha.new_zeros(1, dtype=torch.float64)])
    x, y = x.double(), y.double()
    w = x.new_zeros(y.shape[0], x.shape[1])
    for _ in range(max_steps):
        grad = (torch.sigmoid(w @ x.T) - y) @ x / x.shape[0] + alpha * w
        step = torch.linalg.solve(_hessians(w, x, alpha), grad.unsqueeze(-1)).squeeze(-1)
        w = w - step
        if float(step.abs().max()) <= 1e-14 * max(1.0, float(w.abs().max())):
            break
    return w


def exact_hypergradient(log_alpha: torch.Tensor, train: tuple, val: tuple) -> torch.Tensor:
    """dL_val/dλ at λ = ``log_alpha`` in float64 (a dense solve at the Newton-converged w*)."""
    x, y = (t.double() for t in train)
    x_val, y_val = (t.double() for t in val)
    w = solve_inner(log_alpha, x, y)
    alpha = torch.cat([log_alpha.detach().double().exp(), x.new_zeros(1)])
    w_req = w.clone().requires_grad_()
    (outer,) = torch.autograd.grad(logistic_loss(w_req, x_val, y_val), w_req)
    adjoint = torch.linalg.solve(_hessians(w, x, alpha), outer.unsqueeze(-1)).squeeze(-1)
    return -(adjoint * alpha * w)[:, :-1].sum(dim=0)
