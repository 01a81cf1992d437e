"""cg and minres: Krylov adjoints for symmetric Jacobians, with honest per-sample refusals."""
from __future__ import annotations

import warnings

import pytest
import torch

import fpibench
from fpibench import FixedPointError, FixedPointWarning


def energy_map(dtype, d=6, batch=3, seed=0):
    """FPI_GD: g = x − η∇E, E convex: ∂g/∂x = I − η∇²E is symmetric, I − ∂g/∂x positive definite."""
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(d + 2, d, generator=gen, dtype=dtype).requires_grad_()
    z = torch.randn(batch, d, generator=gen, dtype=dtype)
    energy = lambda y: 0.5 * ((y - z) ** 2).sum(1) + torch.nn.functional.softplus(y @ A.T).sum(1)  # noqa: E731
    return A, (lambda x: x - 0.3 * fpibench.energy_gradient(energy, x)), torch.zeros(batch, d, dtype=dtype)


def saddle_map(dtype=torch.float64):
    """g = x − η(xH − b) with H symmetric indefinite: the fixed point is a saddle of the energy."""
    gen = torch.Generator().manual_seed(1)
    Q, _ = torch.linalg.qr(torch.randn(5, 5, generator=gen, dtype=dtype))
    H = Q @ torch.diag(torch.tensor([2.0, 1.0, 0.5, -0.7, -1.5], dtype=dtype)) @ Q.T
    b = torch.randn(5, generator=gen, dtype=dtype).requires_grad_()
    return b, (lambda x: x - 0.3 * (x @ H - b)), torch.zeros(3, 5, dtype=dtype)


def grad(g, x0, param, backward, **options):
    sol = fpibench.fixed_point(g, x0, forward="anderson", backward=backward, tol=1e-12, max_iter=500, backward_options=options or None)
    return sol, torch.autograd.grad((sol.value**3).sum(), param)[0]


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
@pytest.mark.parametrize("method", ["cg", "minres"])
def test_symmetric_positive_definite_adjoint_matches_the_dense_solve(method, dtype, tolerance):
    A, g, x0 = energy_map(dtype, d=32, batch=8)
    _, exact = grad(g, x0, A, "jacobian_inverse")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FixedPointWarning)
        sol, got = grad(g, x0, A, method, tol=1e-12 if dtype == torch.float64 else 1e-6)
    assert float((got - exact).norm() / exact.norm()) < tolerance
    assert set(sol.stats.backward.status) == {"converged"}
    assert int(sol.stats.backward.iterations.max()) <= 2 * 32  # Krylov: about the dimension (exactly it without rounding)


def test_cg_refuses_an_indefinite_system_and_minres_solves_it():
    b, g, x0 = saddle_map()
    _, exact = grad(g, x0, b, "jacobian_inverse")
    with pytest.warns(FixedPointWarning, match=r"\(cg\).*indefinite"):
        sol, _ = grad(g, x0, b, "cg")
    assert sol.stats.forward.status == ["converged"] * 3 and sol.stats.backward.status == ["indefinite"] * 3
    sol, got = grad(g, x0, b, "minres")
    assert sol.stats.backward.status == ["converged"] * 3
    assert float((got - exact).norm() / exact.norm()) < 1e-10


@pytest.mark.parametrize("method", ["cg", "minres"])
def test_a_non_symmetric_jacobian_is_refused_not_solved(method):
    gen = torch.Generator().manual_seed(2)
    W = (0.3 * torch.randn(5, 5, generator=gen, dtype=torch.float64)).requires_grad_()
    g = lambda x: torch.tanh(x @ W.T) + 0.1  # noqa: E731
    x0 = torch.zeros(3, 5, dtype=torch.float64)
    with pytest.warns(FixedPointWarning, match="nonsymmetric"):
        sol, _ = grad(g, x0, W, method)
    assert sol.stats.backward.status == ["nonsymmetric"] * 3
    sol = fpibench.fixed_point(g, x0, backward=method, strict=True)
    with pytest.raises(FixedPointError, match="nonsymmetric"):
        torch.autograd.grad(sol.value.sum(), W)


def test_the_symmetry_probe_can_be_turned_off_and_leaves_the_rng_alone():
    A, g, x0 = energy_map(torch.float64)
    state = torch.get_rng_state()
    sol, _ = grad(g, x0, A, "minres", check_symmetry=False)
    assert torch.equal(state, torch.get_rng_state())
    assert sol.stats.backward.status == ["converged"] * 3
