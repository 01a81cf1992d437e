"""The networks of the equilibrium image classifier (``deq_classify``).

The DEQ block is the residual block of the DEQ literature (Bai, Kolter & Koltun, "Deep
Equilibrium Models", 2019; Bai et al., "Multiscale Deep Equilibrium Models", 2020; the
ResNet layer of the "Deep Implicit Layers" tutorial) with the input injection u:

    g(z; u) = GN₃(ReLU(z + GN₂(u + conv₂(GN₁(ReLU(conv₁(z))))))),

conv₁: C → C_inner and conv₂: C_inner → C (3×3, padding 1, no bias, weights N(0, init_std²)),
GN group normalisation (per sample and per channel group: dimension 0 stays a batch of
independent problems, which the solvers require; no batch norm).  The classifier is

    u = GN(conv3×3(image)),  z* = g(z*; u) from z₀ = 0,  logits = Linear(pool(ReLU(GN(z*)))),

with ``pool`` an adaptive average pool to P×P.  The feedforward baseline applies the same block
``steps`` times from z = 0 and backpropagates through them (a weight-tied network of that depth).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from .._layer import FixedPointLayer


class DEQBlock(nn.Module):
    """g(z; u), the map the fixed-point layer iterates; ``bind(u)`` gives z ↦ g(z; u)."""

    def __init__(self, channels: int, inner: int, groups: int, init_std: float):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, inner, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(inner, channels, 3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(groups, inner)
        self.norm2 = nn.GroupNorm(groups, channels)
        self.norm3 = nn.GroupNorm(groups, channels)
        with torch.no_grad():
            self.conv1.weight.normal_(0.0, init_std)
            self.conv2.weight.normal_(0.0, init_std)

    def forward(self, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        y = self.norm1(F.relu(self.conv1(z)))
        return self.norm3(F.relu(z + self.norm2(u + self.conv2(y))))

    def bind(self, u: torch.Tensor):
        return lambda z: self(z, u)

    def init_state(self, u: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(u)


class RepeatedBlock(nn.Module):
    """The block applied ``steps`` times from z = 0, differentiated by ordinary backprop."""

    def __init__(self, block: DEQBlock, steps: int):
        super().__init__()
        self.g, self.steps = block, steps

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        z = self.g.init_state(u)
        for _ in range(self.steps):
            z = self.g(z, u)
        return z


class EquilibriumClassifier(nn.Module):
    """Stem (the injection), an equilibrium core and a classifier head."""

    def __init__(self, in_channels: int, classes: int, channels: int, inner: int, groups: int, pool: int,
                 init_std: float, layer_kwargs: Optional[dict] = None, feedforward_steps: int = 0):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
                                  nn.GroupNorm(groups, channels))
        block = DEQBlock(channels, inner, groups, init_std)
        self.core = (RepeatedBlock(block, feedforward_steps) if feedforward_steps
                     else FixedPointLayer(block, **(layer_kwargs or {})))
        self.head = nn.Sequential(nn.GroupNorm(groups, channels), nn.ReLU(), nn.AdaptiveAvgPool2d(pool),
                                  nn.Flatten(), nn.Linear(channels * pool * pool, classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.core(self.stem(images)))
