"""FPI_NN, FPI_GD and feedforward models on vectors (box constraint, Bibtex).

FPI_NN: x̂ = g([x; z]) with g a small MLP.  FPI_GD: x̂ = x̂ − γ∇ₓE([x; z]) with E a small
network closed by a mean-squared term (IEEE Access appendix B: "we attached a
mean-squared layer at the end of the network").  x₀ = 0 as in the paper.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .._energy import EnergyStep
from .._layer import FixedPointLayer


def split_concat_linear(linear: nn.Linear, x_dim: int, z: torch.Tensor):
    """L[x; z] = W_x x + (W_z z + b): returns (W_x, W_z z + b), the part fixed for a solve.

    A fixed-point solve applies L to [x_n; z] at every iteration with the same z; computing
    W_z z + b once (Bibtex: 1836 of the 1995 input columns) leaves an (x_dim × hidden)
    product per iteration.  Gradients reach W and b through both halves as before.
    """
    w_x, w_z = linear.weight[:, :x_dim], linear.weight[:, x_dim:]
    return w_x, F.linear(z, w_z, linear.bias)


class ConcatMLP(nn.Module):
    """g(x, z) = out(L₂ ReLU(L₁ [x; z])), with an optional output nonlinearity."""

    def __init__(self, x_dim: int, z_dim: int, hidden: int, out_dim: int, out: Optional[nn.Module] = None):
        super().__init__()
        self.x_dim = x_dim
        self.l1 = nn.Linear(x_dim + z_dim, hidden)
        self.l2 = nn.Linear(hidden, out_dim)
        self.out = out or nn.Identity()

    def forward(self, x, z):
        return self.out(self.l2(torch.relu(self.l1(torch.cat([x, z], dim=1)))))

    def bind(self, z):
        """g(·, z), with L₁'s z half computed once (see :func:`split_concat_linear`)."""
        w_x, u = split_concat_linear(self.l1, self.x_dim, z)
        return lambda x: self.out(self.l2(torch.relu(F.linear(x, w_x) + u)))

    def init_state(self, z):
        return z.new_zeros(z.shape[0], self.x_dim)


class MeanSquaredEnergy(nn.Module):
    """E(x, z) = mean_j (h([x; z])_j)²: a network with a mean-squared head, one value per sample."""

    def __init__(self, net: nn.Module, x_dim: int):
        super().__init__()
        self.net, self.x_dim = net, x_dim

    def forward(self, x, z):
        return self.net(torch.cat([x, z], dim=1)).pow(2).mean(dim=1)

    def bind(self, z):
        """E(·, z); when ``net`` starts with a linear layer its z half is computed once."""
        net = self.net
        if not (isinstance(net, nn.Sequential) and len(net) and isinstance(net[0], nn.Linear)):
            return lambda x: self(x, z)
        w_x, u = split_concat_linear(net[0], self.x_dim, z)
        rest = net[1:]
        return lambda x: rest(F.linear(x, w_x) + u).pow(2).mean(dim=1)

    def init_state(self, z):
        return z.new_zeros(z.shape[0], self.x_dim)


class FPIModel(nn.Module):
    """An FPI layer followed by an optional readout (e.g. the sigmoid after FPI_GD)."""

    def __init__(self, layer: FixedPointLayer, readout: Optional[nn.Module] = None):
        super().__init__()
        self.fpi = layer
        self.readout = readout or nn.Identity()

    def forward(self, z):
        return self.readout(self.fpi(z))


class Feedforward(nn.Module):
    """The non-FPI baseline: the same g applied once to z (no iteration)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, z):
        return self.net(z)


def mlp(in_dim: int, hidden: int, out_dim: int, out: Optional[nn.Module] = None) -> nn.Sequential:
    layers = [nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim)]
    if out is not None:
        layers.append(out)
    return nn.Sequential(*layers)


def fpi_nn(x_dim, z_dim, hidden, layer_kwargs, out=None) -> FPIModel:
    return FPIModel(FixedPointLayer(ConcatMLP(x_dim, z_dim, hidden, x_dim, out), **layer_kwargs))


def fpi_gd(x_dim, z_dim, energy_net, step, layer_kwargs, readout=None) -> FPIModel:
    energy = MeanSquaredEnergy(energy_net, x_dim)
    return FPIModel(FixedPointLayer(EnergyStep(energy, step), **layer_kwargs), readout)
