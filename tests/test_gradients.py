"""Every gradient method against an independent float64 reference on the problem zoo."""
import warnings

import pytest
import torch

import fpibench
from helpers import exact_backward_options, probe_vector, rel_err, zoo

EXACT = ["unroll", "jacobian_inverse", "backward_fpi", "neumann", "anderson", "broyden", "gmres"]
PROBLEMS = {p.name: p for p in zoo()}


def solve(problem, backward, forward="anderson", backward_options=None, tol=1e-13, max_iter=None):
    max_iter = max_iter or (6000 if problem.name == "tanh_k0.99" else 2000)
    return fpibench.fixed_point(
        problem.g, problem.x0, forward=forward, backward=backward, tol=tol, max_iter=max_iter,
        backward_options=backward_options if backward_options is not None else exact_backward_options(backward, problem.name),
        forward_options={"m": 6} if forward == "anderson" else None,
    )


@pytest.fixture(scope="module")
def references():
    out = {}
    for name, problem in PROBLEMS.items():
        v = probe_vector(problem.x0)
        out[name] = (v, problem.reference(v))
    return out


@pytest.mark.parametrize("problem_name", list(PROBLEMS))
@pytest.mark.parametrize("method", EXACT)
def test_exact_methods_match_reference(method, problem_name, references):
    problem = PROBLEMS[problem_name]
    v, ref = references[problem_name]
    forward = "picard" if method == "unroll" and problem_name != "tanh_k0.99" else "anderson"
    with warnings.catch_warnings():
        warnings.simplefilter("error", fpibench.FixedPointWarning)
        sol = solve(problem, method, forward=forward)
        grads = torch.autograd.grad(sol.value, list(problem.leaves.values()), v)
    for (name, ref_grad), grad in zip(ref.items(), grads):
        assert rel_err(grad, ref_grad) < 1e-6, f"{method} on {problem_name}: d/d{name} rel err {rel_err(grad, ref_grad):.2e}"
    assert sol.stats.backward is not None and sol.stats.backward.method == method


def test_closed_form_linear_agrees_with_dense_reference():
    problem = PROBLEMS["linear"]
    v = probe_vector(problem.x0)
    closed_form = problem.closed_form
    closed = closed_form(v)
    problem.closed_form = None
    try:
        dense = problem.reference(v)
    finally:
        problem.closed_form = closed_form
    for k in closed:
        assert rel_err(dense[k], closed[k]) < 1e-10


@pytest.mark.parametrize("method", ["jfb", "phantom", "neumann"])
def test_approximate_methods_are_not_exact_on_a_slow_problem(method, references):
    problem = PROBLEMS["tanh_k0.9"]
    v, ref = references["tanh_k0.9"]
    opts = {"terms": 3} if method == "neumann" else ({"steps": 3, "damping": 0.5} if method == "phantom" else {})
    sol = solve(problem, method, backward_options=opts)
    grad_w = torch.autograd.grad(sol.value, problem.leaves["W"], v)[0]
    assert rel_err(grad_w, ref["W"]) > 1e-3  # a truncated method that looked exact would be a bug


@pytest.mark.parametrize("method,option,values", [("neumann", "terms", [1, 4, 16, 64]), ("phantom", "steps", [1, 4, 16, 64])])
def test_approximation_error_falls_with_k(method, option, values, references):
    problem = PROBLEMS["tanh_k0.9"]
    v, ref = references["tanh_k0.9"]
    errors = []
    for k in values:
        opts = {option: k} if method == "neumann" else {option: k, "damping": 0.5}
        sol = solve(problem, method, backward_options=opts)
        errors.append(rel_err(torch.autograd.grad(sol.value, problem.leaves["W"], v)[0], ref["W"]))
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.05 * errors[0], errors


def test_backward_fpi_after_k_steps_equals_neumann_with_k_terms():
    problem = PROBLEMS["tanh_k0.9"]
    v = probe_vector(problem.x0)
    for k in (1, 3, 7):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fpibench.FixedPointWarning)
            a = solve(problem, "backward_fpi", backward_options={"tol": 1e-300, "max_iter": k, "rounding_floor": False})
            ga = torch.autograd.grad(a.value, list(problem.leaves.values()), v)
        b = solve(problem, "neumann", backward_options={"terms": k})
        gb = torch.autograd.grad(b.value, list(problem.leaves.values()), v)
        for x, y in zip(ga, gb):
            assert torch.allclose(x, y, rtol=1e-12, atol=1e-14)


def test_phantom_with_damping_one_equals_truncated_unrolling_from_the_fixed_point():
    problem = PROBLEMS["tanh_k0.9"]
    v = probe_vector(problem.x0)
    sol = solve(problem, "phantom", backward_options={"steps": 4, "damping": 1.0})
    got = torch.autograd.grad(sol.value, list(problem.leaves.values()), v)
    x = solve(problem, "backward_fpi").value.detach()
    for _ in range(4):
        x = problem.g(x)
    want = torch.autograd.grad(x, list(problem.leaves.values()), v)
    for a, b in zip(got, want):
        assert rel_err(a, b) < 1e-9


def test_jfb_equals_phantom_with_one_step():
    problem = PROBLEMS["conv"]
    v = probe_vector(problem.x0)
    a = torch.autograd.grad(solve(problem, "jfb").value, list(problem.leaves.values()), v)
    b = torch.autograd.grad(solve(problem, "phantom", backward_options={"steps": 1, "damping": 1.0}).value, list(problem.leaves.values()), v)
    for x, y in zip(a, b):
        assert torch.allclose(x, y, rtol=1e-12, atol=1e-15)
