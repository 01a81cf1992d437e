"""Statuses never claim more than was done: every reproduction of a silently wrong or
misleadingly labelled result becomes a test here."""
from __future__ import annotations

import gc
import warnings

import pytest
import torch

import fpibench
from fpibench import FixedPointError, FixedPointWarning

DT = torch.float64


def _expanding_problem():
    """An affine map with spectral radius 1.3 > 1: Anderson still finds its fixed point."""
    gen = torch.Generator().manual_seed(0)
    W = (1.3 * torch.eye(4, dtype=DT) + 0.05 * torch.randn(4, 4, generator=gen, dtype=DT)).requires_grad_()
    return W, (lambda x: x @ W.T - 1.0)


def test_neumann_on_an_expanding_map_reports_diverged_warns_and_raises_under_strict():
    W, g = _expanding_problem()
    x0 = torch.zeros(2, 4, dtype=DT)
    exact = torch.autograd.grad(fpibench.fixed_point(g, x0, backward="jacobian_inverse", tol=1e-12).value.sum(), W)[0]
    with pytest.warns(FixedPointWarning, match=r"neumann.*diverged.*grew"):
        sol = fpibench.fixed_point(g, x0, forward="anderson", backward="neumann", tol=1e-12)
        (grad,) = torch.autograd.grad(sol.value.sum(), W)
    assert sol.stats.forward.status == ["converged"] * 2
    assert sol.stats.backward.status == ["diverged"] * 2
    assert float((grad - exact).norm() / exact.norm()) > 1  # the result the status now flags is far off
    sol = fpibench.fixed_point(g, x0, forward="anderson", backward="neumann", tol=1e-12, strict=True)
    with pytest.raises(FixedPointError, match="neumann"):
        torch.autograd.grad(sol.value.sum(), W)


def _nan_in_vjp():
    """g is finite, but ∂g/∂a is NaN (sqrt at 0 times 0)."""
    gen = torch.Generator().manual_seed(1)
    W = (0.3 * torch.randn(4, 4, generator=gen, dtype=DT)).requires_grad_()
    a = torch.full((4,), 0.5, dtype=DT, requires_grad=True)
    return (W, a), (lambda x: torch.tanh(x @ W.T) + torch.sqrt(a * 0.0) + 0.1)


@pytest.mark.parametrize("method", ["jfb", "phantom", "unroll", "backward_fpi", "gmres", "jacobian_inverse", "neumann"])
def test_nan_reaching_the_gradient_through_a_vjp_is_nonfinite(method):
    params, g = _nan_in_vjp()
    x0 = torch.zeros(3, 4, dtype=DT)
    with pytest.warns(FixedPointWarning, match=rf"\({method}\).*nonfinite.*NaN or Inf"):
        sol = fpibench.fixed_point(g, x0, forward="picard", backward=method, tol=1e-10)
        grads = torch.autograd.grad(sol.value.sum(), params)
    assert not torch.isfinite(grads[1]).all()
    assert sol.stats.backward.status == ["nonfinite"] * 3
    sol = fpibench.fixed_point(g, x0, forward="picard", backward=method, tol=1e-10, strict=True)
    with pytest.raises(FixedPointError, match="nonfinite"):
        torch.autograd.grad(sol.value.sum(), params)


@pytest.mark.parametrize("method", ["jfb", "phantom", "unroll"])
def test_nan_arriving_from_the_loss_is_nonfinite(method):
    gen = torch.Generator().manual_seed(2)
    W = (0.3 * torch.randn(4, 4, generator=gen, dtype=DT)).requires_grad_()
    sol = fpibench.fixed_point(lambda x: torch.tanh(x @ W.T) + 0.1, torch.zeros(3, 4, dtype=DT), forward="picard", backward=method, tol=1e-10)
    upstream = torch.ones(3, 4, dtype=DT)
    upstream[1, 2] = float("nan")
    with pytest.warns(FixedPointWarning, match="nonfinite"):
        torch.autograd.grad(sol.value, W, upstream)
    # sample 1's NaN reaches the shared W, so no sample's parameter gradient is finite
    assert sol.stats.backward.status == ["nonfinite"] * 3


def test_finite_backward_through_steps_stays_quiet_and_counts_passes():
    gen = torch.Generator().manual_seed(3)
    W = (0.3 * torch.randn(4, 4, generator=gen, dtype=DT)).requires_grad_()
    for method in ("jfb", "phantom", "unroll"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", FixedPointWarning)
            sol = fpibench.fixed_point(lambda x: torch.tanh(x @ W.T) + 0.1, torch.zeros(3, 4, dtype=DT), forward="anderson", backward=method, tol=1e-10)
            torch.autograd.grad(sol.value.sum(), W, retain_graph=True)
            torch.autograd.grad(sol.value.sum(), W)
        assert sol.stats.backward.status == ["fixed_steps"] * 3
        assert sol.stats.backward.calls == 2


def test_phantom_at_a_converged_float32_point_is_not_called_diverged():
    """Steps at rounding level may wobble; that is not growth."""
    torch.manual_seed(0)
    d, batch = 256, 64
    W = torch.randn(d, d) / d**0.5
    W = (0.8 * W / torch.linalg.matrix_norm(W, 2)).requires_grad_()
    z = torch.randn(batch, d)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FixedPointWarning)
        sol = fpibench.fixed_point(lambda x: torch.tanh(x @ W.T + z), torch.zeros(batch, d), backward="phantom", tol=1e-5, max_iter=300)
        torch.autograd.grad((sol.value**2).sum(), W)
    assert set(sol.stats.backward.status) == {"fixed_steps"}


def test_hooks_on_parameters_go_with_the_graph():
    W = (0.3 * torch.randn(4, 4)).requires_grad_()
    for method in ("unroll", "jfb", "phantom"):
        for _ in range(3):
            x = fpibench.fixed_point(lambda x: torch.tanh(x @ W.T) + 1, torch.zeros(2, 4), forward="picard", backward=method).value
            del x
        gc.collect()
        assert not W._backward_hooks, f"{method} left hooks on a parameter"


def test_tol_none_runs_fixed_steps_without_calling_it_a_failure():
    W = (0.3 * torch.randn(4, 4, dtype=DT)).requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FixedPointWarning)
        sol = fpibench.fixed_point(lambda x: torch.tanh(x @ W.T) + 0.1, torch.zeros(2, 4, dtype=DT), forward="picard", backward="jfb", tol=None, max_iter=5)
    assert sol.stats.forward.status == ["fixed_steps"] * 2
    with pytest.warns(FixedPointWarning, match="diverged"):  # fixed steps that blow up are still reported
        sol = fpibench.fixed_point(lambda x: 2.0 * x + 1.0, torch.zeros(2, 4, dtype=DT), forward="picard", tol=None, max_iter=20)
    assert sol.stats.forward.status == ["diverged"] * 2


@pytest.mark.parametrize("method", ["gmres", "jacobian_inverse", "backward_fpi", "unroll"])
def test_samples_coupled_through_the_batch_are_refused_under_strict(method):
    gen = torch.Generator().manual_seed(4)
    W = (0.3 * torch.randn(5, 5, generator=gen, dtype=DT)).requires_grad_()
    coupled = lambda x: torch.tanh(x @ W.T + x.mean(0)) + 0.2  # noqa: E731
    with pytest.raises(FixedPointError, match="couples the samples"):
        fpibench.fixed_point(coupled, torch.zeros(4, 5, dtype=DT), backward=method, strict=True)
    # the same map as one problem is fine, and so is an independent map under strict
    fpibench.fixed_point(coupled, torch.zeros(4, 5, dtype=DT), backward=method, batch=False, strict=True)
    fpibench.fixed_point(lambda x: torch.tanh(x @ W.T) + 0.2, torch.zeros(4, 5, dtype=DT), backward=method, strict=True)


def test_batch_probe_accepts_energy_steps_and_leaves_the_rng_alone():
    gen = torch.Generator().manual_seed(5)
    A = torch.randn(6, 5, generator=gen, dtype=DT).requires_grad_()
    g = lambda x: x - 0.2 * fpibench.energy_gradient(lambda y: (torch.nn.functional.softplus(y @ A.T)).sum(1) + 0.5 * (y**2).sum(1), x)  # noqa: E731
    state = torch.get_rng_state()
    fpibench.check_batch_independence(g, torch.randn(3, 5, generator=gen, dtype=DT))
    assert torch.equal(state, torch.get_rng_state())
