"""SHINE: the adjoint from the forward Broyden's inverse estimate."""
from __future__ import annotations

import pytest
import torch

import fpibench
from fpibench import OptionError

DT = torch.float64


def rel(a, b):
    return float((a - b).norm() / b.norm())


def test_shine_needs_a_forward_that_keeps_an_estimate():
    with pytest.raises(OptionError, match=r"'shine' needs a forward solver that keeps an inverse-Jacobian estimate \(broyden\); 'anderson' keeps none"):
        fpibench.fixed_point(lambda x: 0.5 * x, torch.zeros(2, 3), forward="anderson", backward="shine")
    with pytest.raises(OptionError, match="keeps none"):
        fpibench.FixedPointLayer(torch.nn.Identity(), forward="picard", backward="shine")


def test_on_scalar_affine_maps_the_secant_estimate_is_exact():
    """In one dimension one Broyden update makes B = 1/(a − 1) exact, so SHINE is exact."""
    a = torch.tensor([[0.3], [-0.5], [0.8]], dtype=DT, requires_grad=True)
    b = torch.tensor([[1.0], [2.0], [-1.0]], dtype=DT)
    g = lambda x: a * x + b  # noqa: E731
    x0 = torch.zeros(3, 1, dtype=DT)
    exact = torch.autograd.grad((fpibench.fixed_point(g, x0, backward="jacobian_inverse", tol=1e-13).value ** 2).sum(), a)[0]
    sol = fpibench.fixed_point(g, x0, forward="broyden", backward="shine", tol=1e-13)
    (got,) = torch.autograd.grad((sol.value**2).sum(), a)
    assert rel(got, exact) < 1e-10
    assert sol.stats.backward.vjp_calls == 0 and sol.stats.backward.status == ["fixed_steps"] * 3


def test_refinement_steps_converge_to_the_implicit_gradient():
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(16, 16, generator=gen, dtype=DT)
    W = (0.7 * W / torch.linalg.matrix_norm(W, 2)).requires_grad_()
    z = torch.randn(4, 16, generator=gen, dtype=DT)
    g = lambda x: torch.tanh(x @ W.T + z)  # noqa: E731
    x0 = torch.zeros(4, 16, dtype=DT)
    exact = torch.autograd.grad((fpibench.fixed_point(g, x0, backward="jacobian_inverse", tol=1e-12).value ** 2).sum(), W)[0]
    errors = []
    for refine in (0, 3, 10, 40):
        sol = fpibench.fixed_point(g, x0, forward="broyden", backward="shine", tol=1e-12, max_iter=200, backward_options={"refine": refine})
        errors.append(rel(torch.autograd.grad((sol.value**2).sum(), W)[0], exact))
        assert sol.stats.backward.vjp_calls == refine
    assert errors[1] < errors[0] and errors[2] < errors[1] and errors[3] < 1e-9
