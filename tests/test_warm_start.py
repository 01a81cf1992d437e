"""Warm-started adjoints: a layer's iterative adjoint starts from its previous solution."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import fpibench

DT = torch.float64


class Cell(nn.Module):
    def __init__(self, d=12, seed=0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        w = torch.randn(d, d, generator=gen, dtype=DT)
        self.W = nn.Parameter(0.9 * w / torch.linalg.matrix_norm(w, 2))
        self.U = nn.Parameter(torch.randn(d, d, generator=gen, dtype=DT) / d**0.5)

    def forward(self, x, z):
        return torch.tanh(x @ self.W.T + z @ self.U.T)


@pytest.mark.parametrize("method", ["backward_fpi", "anderson", "gmres"])
def test_the_second_backward_starts_from_the_first_and_stays_exact(method):
    cell = Cell()
    z = torch.randn(4, 12, generator=torch.Generator().manual_seed(1), dtype=DT)
    layer = fpibench.FixedPointLayer(cell, backward=method, tol=1e-12, max_iter=500, backward_options={"tol": 1e-10, "warm_start": True})
    exact_layer = fpibench.FixedPointLayer(cell, backward="jacobian_inverse", tol=1e-12, max_iter=500)
    exact = torch.autograd.grad((exact_layer(z) ** 2).sum(), cell.W)[0]
    iterations = []
    for _ in range(2):
        (grad,) = torch.autograd.grad((layer(z) ** 2).sum(), cell.W)
        iterations.append(int(layer.last_stats.backward.iterations.max()))
        assert float((grad - exact).norm() / exact.norm()) < 1e-8
    assert iterations[1] < iterations[0] / 2, iterations
    assert layer.memory["adjoint"].shape == (4, 12)


def test_cold_by_default_and_a_new_batch_shape_starts_cold():
    cell = Cell()
    z = torch.randn(4, 12, generator=torch.Generator().manual_seed(1), dtype=DT)
    cold = fpibench.FixedPointLayer(cell, tol=1e-12, max_iter=500, backward_options={"tol": 1e-10})
    for _ in range(2):
        torch.autograd.grad((cold(z) ** 2).sum(), cell.W)
    assert cold.memory == {}
    warm = fpibench.FixedPointLayer(cell, tol=1e-12, max_iter=500, backward_options={"tol": 1e-10, "warm_start": True})
    torch.autograd.grad((warm(z) ** 2).sum(), cell.W)
    first = int(warm.last_stats.backward.iterations.max())
    torch.autograd.grad((warm(z[:3]) ** 2).sum(), cell.W)  # another batch size: nothing to start from
    assert int(warm.last_stats.backward.iterations.max()) >= first - 2
