"""FPI_GD: g is one gradient-descent step on a learned energy (Jeon, Lee & Choi 2021, §3.5).

    g(x, z) = x − γ ∇ₓ E(x, z; θ)

The fixed point is a stationary point of E.  Gradients of the layer w.r.t. θ need second
derivatives of E; they are recorded whenever autograd is recording outside g.
"""
from __future__ import annotations

import torch
from torch import nn


def energy_gradient(energy, x: torch.Tensor, *args) -> torch.Tensor:
    """∇ₓ Σ_b E(x_b, ...): the per-sample gradient, with a graph when one is being recorded."""
    record = torch.is_grad_enabled()
    with torch.enable_grad():
        point = x if x.requires_grad else x.detach().requires_grad_()
        total = energy(point, *args).sum()
        (grad,) = torch.autograd.grad(total, point, create_graph=record)
    return grad


class EnergyStep(nn.Module):
    """``EnergyStep(energy, step)(x, z) = x − step · ∇ₓ energy(x, z)``; ``energy`` returns one value per sample."""

    def __init__(self, energy: nn.Module, step: float):
        super().__init__()
        if not step > 0:
            raise ValueError(f"step must be > 0, got {step!r}")
        self.energy = energy
        self.step = float(step)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return x - self.step * energy_gradient(self.energy, x, z)

    def bind(self, z: torch.Tensor):
        """g(·, z); uses ``energy.bind(z)`` (work on z alone done once per solve) when defined,
        and the bound energy's closed-form ``gradient(x)`` when it has one (no autograd call
        per iteration; the same values and derivatives as :func:`energy_gradient`)."""
        if not hasattr(self.energy, "bind"):
            return lambda x: self(x, z)
        energy = self.energy.bind(z)
        gradient = getattr(energy, "gradient", None)
        if gradient is not None:
            return lambda x: x - self.step * gradient(x)
        return lambda x: x - self.step * energy_gradient(energy, x)

    def init_state(self, z: torch.Tensor) -> torch.Tensor:
        if hasattr(self.energy, "init_state"):
            return self.energy.init_state(z)
        return torch.zeros_like(z)
