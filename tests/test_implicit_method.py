"""``implicit``: how to differentiate apart from which solver solves the adjoint."""
from __future__ import annotations

import pytest
import torch

import fpibench
from fpibench import OptionError
from fpibench.solvers.implicit import adjoint_solver_names

DT = torch.float64


def _problem():
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(6, 6, generator=gen, dtype=DT)
    W = (0.8 * W / torch.linalg.matrix_norm(W, 2)).requires_grad_()
    z = torch.randn(3, 6, generator=gen, dtype=DT)
    return W, (lambda x: torch.tanh(x @ W.T + z))


def _symmetric_problem():
    """FPI_GD on E(x) = ½xᵀSx − zᵀx + Σ softplus(x Aᵀ): ∂g/∂x = I − η∇²E is symmetric."""
    gen = torch.Generator().manual_seed(1)
    A = torch.randn(5, 6, generator=gen, dtype=DT).requires_grad_()
    z = torch.randn(3, 6, generator=gen, dtype=DT)
    energy = lambda y: 0.5 * (y**2).sum(1) - (z * y).sum(1) + torch.nn.functional.softplus(y @ A.T).sum(1)  # noqa: E731
    return A, (lambda x: x - 0.3 * fpibench.energy_gradient(energy, x))


@pytest.mark.parametrize("solver", adjoint_solver_names())
def test_every_solver_gives_the_dense_gradient(solver):
    W, g = _symmetric_problem() if solver in ("cg", "minres") else _problem()
    x0 = torch.zeros(3, 6, dtype=DT)
    exact = torch.autograd.grad(fpibench.fixed_point(g, x0, backward="jacobian_inverse", tol=1e-13, max_iter=500).value.sum(), W)[0]
    sol = fpibench.fixed_point(g, x0, backward="implicit", tol=1e-13, max_iter=500, backward_options={"solver": solver, "tol": 1e-13})
    (grad,) = torch.autograd.grad(sol.value.sum(), W)
    assert float((grad - exact).norm() / exact.norm()) < 1e-9
    assert sol.stats.backward.solver == solver and sol.stats.backward.status == ["converged"] * 3


def test_presets_are_the_implicit_method_with_the_solver_fixed():
    listed = fpibench.available_methods()["backward"]
    for name in ("backward_fpi", "anderson", "broyden", "gmres"):
        assert "solver" not in listed[name]
        with pytest.raises(OptionError, match="does not take option.*'solver'"):
            fpibench.fixed_point(lambda x: 0.5 * x, torch.zeros(2, 3), backward=name, backward_options={"solver": "picard"})
    # each solver's options are declared once, by the solver: the Broyden adjoint takes them all
    assert {"on_full", "stop_on", "m", "step_size"} <= set(listed["broyden"])
    assert {k: v["default"] for k, v in listed["anderson"].items() if k in ("m", "beta", "lam")} == {
        k: v["default"] for k, v in listed["anderson"].items() if k in fpibench.available_methods()["forward"]["anderson"] and k in ("m", "beta", "lam")}
    W, g = _problem()
    sol = fpibench.fixed_point(g, torch.zeros(3, 6, dtype=DT), backward="broyden", backward_options={"on_full": "overwrite", "m": 3})
    torch.autograd.grad(sol.value.sum(), W)
    assert sol.stats.backward.status == ["converged"] * 3


def test_solver_and_its_options_are_checked_before_the_solve():
    x0 = torch.zeros(2, 3)
    with pytest.raises(OptionError, match="option solver must be one of anderson, broyden, cg, gmres, minres, picard, got 'newton'"):
        fpibench.fixed_point(lambda x: 0.5 * x, x0, backward="implicit", backward_options={"solver": "newton"})
    with pytest.raises(OptionError, match="gradient method 'implicit': option m must be an integer >= 1, got 0"):
        fpibench.FixedPointLayer(torch.nn.Identity(), backward="implicit", backward_options={"solver": "anderson", "m": 0})
    with pytest.raises(OptionError, match="does not take option.*'restart'"):
        fpibench.fixed_point(lambda x: 0.5 * x, x0, backward="implicit", backward_options={"solver": "anderson", "restart": 5})
