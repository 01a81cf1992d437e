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
        """E(·, z); when ``net`` starts with a linear layer its z half is computed once, and
        when it is a stack of linear and ReLU layers the bound energy has ``gradient(x)``."""
        net = self.net
        if not (isinstance(net, nn.Sequential) and len(net) and isinstance(net[0], nn.Linear)):
            return lambda x: self(x, z)
        w_x, u = split_concat_linear(net[0], self.x_dim, z)
        if all(isinstance(layer, (nn.Linear, nn.ReLU)) for layer in net[1:]):
            return _BoundLinearReluMeanSquare(w_x, u, list(net[1:]))
        rest = net[1:]
        return lambda x: rest(F.linear(x, w_x) + u).pow(2).mean(dim=1)

    def init_state(self, z):
        return z.new_zeros(z.shape[0], self.x_dim)


class _BoundLinearReluMeanSquare:
    """E(x) = mean_j h(x)_j² for h = layers(W_x x + u), layers linear or ReLU, with

        ∇ₓE = W_xᵀ D₁ W₂ᵀ D₂ ⋯ (2h/m),    D = diag(1[pre-activation > 0]),

    written out (one matrix product per layer) instead of an autograd call per fixed-point
    iteration.  Under a recorded graph the products are differentiated as usual; the masks
    have zero derivative, as ReLU's backward has in autograd, so θ- and z-gradients through
    g equal those of :func:`fpibench.energy_gradient`.
    """

    def __init__(self, w_x, u, layers):
        self.w_x, self.u, self.layers = w_x, u, layers

    def _forward(self, x):
        h, masks = F.linear(x, self.w_x) + self.u, []
        for layer in self.layers:
            if isinstance(layer, nn.ReLU):
                masks.append(h > 0)
                h = torch.relu(h)
            else:
                h = layer(h)
        return h, masks

    def __call__(self, x):
        return self._forward(x)[0].pow(2).mean(dim=1)

    def gradient(self, x):
        h, masks = self._forward(x)
        grad = h * (2.0 / h.shape[1])
        for layer in reversed(self.layers):
            grad = grad * masks.pop() if isinstance(layer, nn.ReLU) else grad @ layer.weight
        return grad @ self.w_x


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
