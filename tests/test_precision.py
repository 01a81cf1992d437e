"""Every forward solver and gradient method runs on float16 and bfloat16 states.

Their small linear algebra (Anderson's Gram solve, GMRES's least squares, the dense
Jacobian solve) runs in float32 and is cast back.  On a small contractive map each pair
converges (the rounding floor ends a solve whose tolerance is below the dtype's
resolution), stays finite, and its gradient is close to the same method's in float64.
"""
from __future__ import annotations

import warnings

import pytest
import torch

import fpibench

FORWARD = sorted(fpibench.available_methods()["forward"])
BACKWARD = sorted(fpibench.available_methods()["backward"])
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine"))]
#: relative gradient error allowed, in units of the dtype's machine epsilon
ULPS = 4


def problem(dtype, device):
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(8, 8, generator=gen, dtype=torch.float64)
    w = 0.6 * w / torch.linalg.matrix_norm(w, 2)
    z = 0.5 * torch.randn(3, 8, generator=gen, dtype=torch.float64)
    v = torch.randn(3, 8, generator=gen, dtype=torch.float64)
    return [t.to(device=device, dtype=dtype) for t in (w, z, v)]


def gradient(forward, backward, dtype, device, tol):
    w, z, v = problem(dtype, device)
    if fpibench.BACKWARD.get(backward).requires == "symmetric":  # cg, minres: a symmetric Jacobian
        w = 0.5 * (w + w.T)
        w.requires_grad_()
        g = lambda x: x @ w.T + z  # noqa: E731
    else:
        w.requires_grad_()
        g = lambda x: torch.tanh(x @ w.T + z)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("error", fpibench.FixedPointWarning)
        sol = fpibench.fixed_point(g, torch.zeros_like(z),
                                   forward=forward, backward=backward, tol=tol, max_iter=300)
        (gw,) = torch.autograd.grad((sol.value * v).sum(), w)
    return sol, gw


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("forward", FORWARD)
def test_every_method_runs_in_reduced_precision(forward, dtype, device):
    eps = torch.finfo(dtype).eps
    for backward in BACKWARD:
        method = fpibench.BACKWARD.get(backward)
        if method.needs_inverse_jacobian and forward != "broyden":
            continue  # shine reads Broyden's estimate; other forwards are refused up front
        _, reference = gradient(forward, backward, torch.float64, device, 1e-12)
        # the default tol (1e-6) is below the dtype's resolution: the rounding floor ends the solve
        sol, gw = gradient(forward, backward, dtype, device, 1e-6)
        assert sol.value.dtype == gw.dtype == dtype
        assert torch.isfinite(sol.value).all() and torch.isfinite(gw).all(), backward
        assert set(sol.stats.forward.status) == {"converged"}, (backward, sol.stats.forward.status)
        assert set(sol.stats.backward.status) <= {"converged", "fixed_steps"}, (backward, sol.stats.backward.status)
        if method.needs_inverse_jacobian:
            continue  # the estimate follows the forward's path, which the dtype changes
        error = float((gw.double() - reference).norm() / reference.norm())
        assert error < ULPS * eps, (backward, error)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_dense_budget_counts_the_float32_solve(dtype):
    from fpibench.solvers.jacobian_inverse import JacobianInverse, dense_jacobian_bytes

    x = torch.zeros(2, 16, dtype=dtype)
    need = dense_jacobian_bytes(2, 16, 4)
    JacobianInverse(memory_budget=need).check_size(x)
    with pytest.raises(fpibench.JacobianTooLargeError):
        JacobianInverse(memory_budget=need - 1).check_size(x)
