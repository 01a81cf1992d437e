"""Probes with exact gradients, for the gradient-accuracy study.

Each probe builds, for a seed, a batch of fixed-point problems x̂ = g(x̂) and answers
``reference(v)``: the exact gradients of ⟨v, x̂⟩ w.r.t. every parameter and input, from a
closed form (``linear``, ``quadratic_energy``) or a float64 dense solve
(``contractive_tanh``), so the error of any gradient method can be measured.

* ``contractive_tanh``: g(x) = tanh(Wx + Uz + b), W rescaled to spectral norm ``k``
  (0.5, 0.9, 0.99, and k ≥ 1 to map where methods break); ``input_scale`` keeps tanh in
  its near-linear range so ρ(∂g/∂x) ≈ k.
* ``linear``: g(x) = Ax + Bz, ‖A‖₂ = k: x̂ = (I − A)⁻¹Bz, c = (I − A)⁻ᵀv,
  ∇A = Σ_b c_b x̂_bᵀ, ∇B = Σ_b c_b z_bᵀ, ∇z_b = Bᵀc_b.
* ``quadratic_energy`` (FPI_GD): E(x) = ½xᵀQx − xᵀBz with Q ≻ 0, g(x) = x − γ∇E(x):
  x̂ = Q⁻¹Bz, c = γ⁻¹Q⁻¹v (the adjoint of I − J = γQ), ∇B = Σ_b Q⁻¹v_b z_bᵀ,
  ∇z_b = BᵀQ⁻¹v_b, ∇Q = −Σ_b Q⁻¹v_b x̂_bᵀ (Q used as given, not symmetrised).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict

import torch

from ..errors import OptionError
from ._base import register_task
from ._options import COUNT, POSITIVE, check_options, one_of


@dataclass
class ProbeInstance:
    """One batch of problems: ``g``, ``x0``, ``leaves`` (name → tensor) and ``reference``."""

    g: Callable[[torch.Tensor], torch.Tensor]
    x0: torch.Tensor
    leaves: Dict[str, torch.Tensor]
    reference: Callable[[torch.Tensor], Dict[str, torch.Tensor]]


class Probe:
    """Base: a registry entry that builds :class:`ProbeInstance` objects (no training)."""

    kind = "probe"
    name = "probe"
    PRESETS = {"quick": {}, "paper": {}}

    @dataclass
    class Config:
        dim: int = 64
        batch: int = 16
        k: float = 0.9
        dtype: str = "float64"
        device: str = "cpu"

    OPTION_RANGES = {"dim": COUNT, "batch": COUNT, "k": POSITIVE,
                     "dtype": one_of("float64", "float32", "float16", "bfloat16")}

    def __init__(self, preset: str = "quick", data_dir=None, **overrides):
        check_options(f"probe {self.name!r}", self.Config, self.OPTION_RANGES, overrides)
        if preset not in self.PRESETS:
            raise OptionError(f"probe {self.name!r} has no preset {preset!r}")
        self.preset = preset
        self.config = self.Config(**{**self.PRESETS[preset], **overrides})
        if not self.config.k > 0:
            raise OptionError(f"probe {self.name!r}: k must be > 0, got {self.config.k!r}")

    def _tensors(self, seed: int):
        c = self.config
        gen = torch.Generator().manual_seed(seed)
        dtype = getattr(torch, c.dtype)

        def randn(*shape, scale=1.0):
            return (scale * torch.randn(*shape, generator=gen, dtype=torch.float64)).to(dtype=dtype, device=c.device)

        return randn, dtype

    def _scaled(self, randn, k):
        w = randn(self.config.dim, self.config.dim)
        return w * (k / torch.linalg.matrix_norm(w.double(), 2).to(w.dtype))

    def instance(self, seed: int = 0) -> ProbeInstance:  # pragma: no cover - abstract
        raise NotImplementedError


def _leaf(t):
    return t.detach().clone().requires_grad_()


@register_task("contractive_tanh")
class ContractiveTanh(Probe):
    @dataclass
    class Config(Probe.Config):
        input_scale: float = 0.1

    def instance(self, seed=0):
        c = self.config
        randn, dtype = self._tensors(seed)
        W = _leaf(self._scaled(randn, c.k))
        U = _leaf(randn(c.dim, c.dim, scale=c.input_scale / c.dim**0.5))
        b = _leaf(randn(c.dim, scale=c.input_scale))
        z = _leaf(randn(c.batch, c.dim))
        leaves = {"W": W, "U": U, "b": b, "z": z}

        def g(x):
            return torch.tanh(x @ W.T + z @ U.T + b)

        def reference(v):
            """Newton on x − g(x) in float64 with dense per-sample Jacobians, then (I − J)ᵀc = v."""
            W64, U64, b64, z64 = (t.detach().double().cpu() for t in (W, U, b, z))
            x = torch.zeros(c.batch, c.dim, dtype=torch.float64)
            eye = torch.eye(c.dim, dtype=torch.float64)
            for _ in range(100):
                pre = x @ W64.T + z64 @ U64.T + b64
                r = x - torch.tanh(pre)
                jac = (1 - torch.tanh(pre) ** 2)[:, :, None] * W64  # (B, N, N)
                x = x - torch.linalg.solve(eye - jac, r)
                if float(r.abs().max()) < 1e-15:
                    break
            pre = x @ W64.T + z64 @ U64.T + b64
            s = 1 - torch.tanh(pre) ** 2
            jac = s[:, :, None] * W64
            cvec = torch.linalg.solve((eye - jac).transpose(1, 2), v.detach().double().cpu())
            d = cvec * s  # ∂L/∂pre
            grads = {"W": d.T @ x, "U": d.T @ z64, "b": d.sum(0), "z": d @ U64}
            return {k_: t.to(dtype=W.dtype, device=W.device) for k_, t in grads.items()}

        return ProbeInstance(g, torch.zeros(c.batch, c.dim, dtype=dtype, device=c.device), leaves, reference)


@register_task("linear")
class LinearProbe(Probe):
    def instance(self, seed=0):
        c = self.config
        randn, dtype = self._tensors(seed)
        A = _leaf(self._scaled(randn, c.k))
        B = _leaf(randn(c.dim, c.dim, scale=c.dim**-0.5))
        z = _leaf(randn(c.batch, c.dim))

        def g(x):
            return x @ A.T + z @ B.T

        def reference(v):
            A64, B64, z64, v64 = (t.detach().double().cpu() for t in (A, B, z, v))
            inv = torch.linalg.inv(torch.eye(c.dim, dtype=torch.float64) - A64)
            x_hat = z64 @ B64.T @ inv.T
            cmat = v64 @ inv
            grads = {"A": cmat.T @ x_hat, "B": cmat.T @ z64, "z": cmat @ B64}
            return {k_: t.to(dtype=A.dtype, device=A.device) for k_, t in grads.items()}

        return ProbeInstance(g, torch.zeros(c.batch, c.dim, dtype=dtype, device=c.device), {"A": A, "B": B, "z": z}, reference)


@register_task("quadratic_energy")
class QuadraticEnergy(Probe):
    """``k`` is the contraction factor of the gradient step: γ is chosen so ‖I − γQ‖₂ = k."""

    def instance(self, seed=0):
        from .._energy import energy_gradient

        c = self.config
        randn, dtype = self._tensors(seed)
        m = randn(c.dim, c.dim, scale=c.dim**-0.5)
        q = m @ m.T + 0.5 * torch.eye(c.dim, dtype=dtype, device=c.device)
        eig = torch.linalg.eigvalsh(q.double())
        lo, hi = float(eig[0]), float(eig[-1])
        if c.k >= 1:
            raise OptionError("quadratic_energy: k must be < 1 (a gradient step on a convex quadratic)")
        # ‖I − γQ‖ = max(|1 − γ lo|, |1 − γ hi|) = k: take γ = (1 − k)/lo unless that overshoots hi
        gamma = min((1 - c.k) / lo, (1 + c.k) / hi)
        Q = _leaf(q)
        B = _leaf(randn(c.dim, c.dim, scale=c.dim**-0.5))
        z = _leaf(randn(c.batch, c.dim))

        def energy(x, zz):
            return 0.5 * ((x @ Q) * x).sum(-1) - (x * (zz @ B.T)).sum(-1)

        def g(x):
            return x - gamma * energy_gradient(energy, x, z)

        def reference(v):
            Q64, B64, z64, v64 = (t.detach().double().cpu() for t in (Q, B, z, v))
            sym = 0.5 * (Q64 + Q64.T)
            x_hat = torch.linalg.solve(sym, (z64 @ B64.T).T).T
            w = torch.linalg.solve(sym.T, v64.T).T  # rows Q⁻ᵀ v_b
            # ∇ₓE = ½(Q + Qᵀ)x − Bz, so ∂/∂Q of ⟨w, ∇ₓE⟩ = ½(w xᵀ + x wᵀ)
            grads = {"Q": -0.5 * (w.T @ x_hat + x_hat.T @ w), "B": w.T @ z64, "z": w @ B64}
            return {k_: t.to(dtype=Q.dtype, device=Q.device) for k_, t in grads.items()}

        return ProbeInstance(g, torch.zeros(c.batch, c.dim, dtype=dtype, device=c.device), {"Q": Q, "B": B, "z": z}, reference)
