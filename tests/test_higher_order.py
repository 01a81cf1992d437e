"""Derivatives of every order through every exact gradient method, as researchers use them.

Each use (a gradient penalty in the same pass as the loss, a Hessian-vector product of a
loss nonlinear in x̂, Jacobian regularisation, a MAML-style inner step,
``torch.autograd.functional.hessian``, a third derivative) × every exact method in the
registry × an FPI_NN map and an FPI_GD map, in float64, against two independent
references: unrolling a converged forward (plain autograd through every iteration) and
central finite differences of the first-order gradient.  Losses are nonlinear in x̂ and
mix first- and second-order terms in one backward pass — ``gradgradcheck`` alone is linear
in x̂ and misses exactly the bugs these catch.
"""
from __future__ import annotations

import pytest
import torch

import fpibench
from fpibench._options import declared
from fpibench._registry import BACKWARD

DT = torch.float64
TOL = 1e-7
#: every registered method that claims the exact implicit gradient (unroll is the reference)
METHODS = [name for name in BACKWARD.names() if BACKWARD.get(name).exact and name != "unroll"]
#: those that need nothing of the Jacobian (the tests on non-symmetric maps below use these)
GENERAL = [name for name in METHODS if BACKWARD.get(name).requires is None]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


class NNMap:
    """FPI_NN: x ↦ tanh(x Wᵀ + z Uᵀ + b), contractive (‖W‖₂ = 0.6)."""

    name = "fpi_nn"
    symmetric = False

    def __init__(self, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        w = torch.randn(5, 5, generator=gen, dtype=DT)
        self.params = {
            "W": (0.6 * w / torch.linalg.matrix_norm(w, 2)).requires_grad_(),
            "U": (0.5 * torch.randn(5, 4, generator=gen, dtype=DT)).requires_grad_(),
            "b": (0.3 * torch.randn(5, generator=gen, dtype=DT)).requires_grad_(),
        }
        self.z = torch.randn(3, 4, generator=gen, dtype=DT).requires_grad_()
        self.w = torch.randn(3, 5, generator=gen, dtype=DT)

    def g(self, params, z):
        W, U, b = params["W"], params["U"], params["b"]
        return lambda x: torch.tanh(x @ W.T + z @ U.T + b)

    def x0(self):
        return torch.zeros(3, 5, dtype=DT)


class GDMap:
    """FPI_GD: one gradient step x ↦ x − η ∇ₓE on E(x) = ½‖x − zUᵀ‖² + Σ softplus(x Aᵀ) · s."""

    name = "fpi_gd"
    symmetric = True  # ∂g/∂x = I − η∇²E

    def __init__(self, seed: int = 1):
        gen = torch.Generator().manual_seed(seed)
        self.params = {
            "A": (0.5 * torch.randn(6, 5, generator=gen, dtype=DT)).requires_grad_(),
            "U": (0.5 * torch.randn(5, 4, generator=gen, dtype=DT)).requires_grad_(),
            "s": (0.5 + torch.rand(6, generator=gen, dtype=DT)).requires_grad_(),
        }
        self.z = torch.randn(3, 4, generator=gen, dtype=DT).requires_grad_()
        self.w = torch.randn(3, 5, generator=gen, dtype=DT)

    def g(self, params, z):
        A, U, s = params["A"], params["U"], params["s"]
        target = z @ U.T

        def energy(x):
            return 0.5 * ((x - target) ** 2).sum(1) + (torch.nn.functional.softplus(x @ A.T) * s).sum(1)

        return lambda x: x - 0.4 * fpibench.energy_gradient(energy, x)

    def x0(self):
        return torch.zeros(3, 5, dtype=DT)


MAPS = {m.name: m for m in (NNMap(), GDMap())}


def skip_unless_applicable(problem, method):
    """Like benchopt's ``skip()``: a method that needs a symmetric Jacobian skips FPI_NN maps."""
    if BACKWARD.get(method).requires == "symmetric" and not problem.symmetric:
        pytest.skip(f"{method} needs a symmetric Jacobian; {problem.name}'s is not")


def solve(problem, method, params=None, z=None):
    params = problem.params if params is None else params
    z = problem.z if z is None else z
    if method == "unroll":
        forward, options = "picard", None
    else:
        forward, options = "anderson", {"m": 5}
    iterative = "tol" in declared(BACKWARD.get(method))
    sol = fpibench.fixed_point(
        problem.g(params, z), problem.x0(), forward=forward, backward=method, tol=1e-13, max_iter=3000,
        forward_options=options, backward_options={"tol": 1e-13, "max_iter": 3000} if iterative else None, strict=True,
    )
    return sol.value


def loss(problem, x):
    """Nonlinear in x̂."""
    return torch.log1p(((x * problem.w).sum(1)) ** 2).sum() + 0.1 * (x**3).sum()


def leaves(problem):
    return list(problem.params.values()) + [problem.z]


# --- the uses -------------------------------------------------------------------------


def penalty_in_one_pass(problem, method):
    """∇θ [L + ‖∇θL‖²] in one backward pass (gradient penalty)."""
    inputs = leaves(problem)
    L = loss(problem, solve(problem, method))
    grads = torch.autograd.grad(L, inputs, create_graph=True)
    P = sum((g**2).sum() for g in grads)
    return torch.autograd.grad(L + P, inputs)


def hvp(problem, method, direction):
    """Hessian-vector product of the nonlinear loss w.r.t. every parameter and z."""
    inputs = leaves(problem)
    L = loss(problem, solve(problem, method))
    grads = torch.autograd.grad(L, inputs, create_graph=True)
    dot = sum((g * d).sum() for g, d in zip(grads, direction))
    return torch.autograd.grad(dot, inputs)


def jacobian_regularisation(problem, method):
    """L + ‖∂(w·x̂)/∂z‖²: a penalty on the layer's input Jacobian, differentiated w.r.t. θ."""
    x = solve(problem, method)
    L = loss(problem, x)
    (jz,) = torch.autograd.grad((x * problem.w).sum(), problem.z, create_graph=True)
    return torch.autograd.grad(L + (jz**2).sum(), list(problem.params.values()))


def maml_step(problem, method):
    """One inner gradient step θ' = θ − α∇θL_inner(θ), outer loss at θ', gradient w.r.t. θ."""
    params = problem.params
    inner = loss(problem, solve(problem, method, params))
    grads = torch.autograd.grad(inner, list(params.values()), create_graph=True)
    adapted = {k: p - 0.3 * g for (k, p), g in zip(params.items(), grads)}
    outer = (solve(problem, method, adapted) ** 2).sum()
    return torch.autograd.grad(outer, list(params.values()))


def full_hessian(problem, method):
    """``torch.autograd.functional.hessian`` of the loss w.r.t. one small parameter."""
    name = "b" if "b" in problem.params else "s"

    def f(p):
        params = dict(problem.params, **{name: p})
        return loss(problem, solve(problem, method, params))

    return (torch.autograd.functional.hessian(f, problem.params[name].detach()),)


def third_derivative(problem, method, direction):
    """d³/dt³ L(θ + t d) at t = 0, by three nested reverse passes."""
    inputs = list(problem.params.values())
    L = loss(problem, solve(problem, method))
    first = torch.autograd.grad(L, inputs, create_graph=True)
    d1 = sum((g * d).sum() for g, d in zip(first, direction))
    second = torch.autograd.grad(d1, inputs, create_graph=True)
    d2 = sum((g * d).sum() for g, d in zip(second, direction))
    return torch.autograd.grad(d2, inputs)


USES = {
    "penalty_in_one_pass": penalty_in_one_pass,
    "jacobian_regularisation": jacobian_regularisation,
    "maml_step": maml_step,
    "full_hessian": full_hessian,
}


def directions(problem, inputs):
    gen = torch.Generator().manual_seed(7)
    return [torch.randn(t.shape, generator=gen, dtype=DT) for t in inputs]


_reference_cache: dict = {}


def unrolled(key, fn):
    if key not in _reference_cache:
        _reference_cache[key] = fn()
    return _reference_cache[key]


@pytest.mark.parametrize("map_name", list(MAPS))
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("use", list(USES))
def test_use_matches_unrolled_reference(use, method, map_name):
    problem = MAPS[map_name]
    skip_unless_applicable(problem, method)
    reference = unrolled((use, map_name), lambda: USES[use](problem, "unroll"))
    got = USES[use](problem, method)
    for g, r in zip(got, reference):
        assert rel(g, r) < TOL, f"{use} via {method} on {map_name}: rel err {rel(g, r):.2e}"


@pytest.mark.parametrize("map_name", list(MAPS))
@pytest.mark.parametrize("method", METHODS)
def test_hessian_vector_product_matches_finite_differences(method, map_name):
    """HVP against central differences of the method's own first-order gradient, and unrolling."""
    problem = MAPS[map_name]
    skip_unless_applicable(problem, method)
    inputs = leaves(problem)
    direction = directions(problem, inputs)
    got = hvp(problem, method, direction)
    eps = 1e-5

    def gradient_at(t):
        with torch.no_grad():
            shifted = [(x + t * d).detach().requires_grad_() for x, d in zip(inputs, direction)]
        params = dict(zip(problem.params, shifted[:-1]))
        L = loss(problem, solve(problem, method, params, shifted[-1]))
        return torch.autograd.grad(L, shifted)

    fd = [(a - b) / (2 * eps) for a, b in zip(gradient_at(eps), gradient_at(-eps))]
    reference = unrolled(("hvp", map_name), lambda: hvp(problem, "unroll", direction))
    for g, f, r in zip(got, fd, reference):
        assert rel(g, r) < TOL, f"HVP via {method} on {map_name} vs unrolled: {rel(g, r):.2e}"
        assert rel(g, f) < 1e-6, f"HVP via {method} on {map_name} vs finite differences: {rel(g, f):.2e}"


@pytest.mark.parametrize("map_name", list(MAPS))
@pytest.mark.parametrize("method", ["jacobian_inverse", "backward_fpi", "gmres", "minres"])
def test_third_derivative_matches_unrolled(method, map_name):
    problem = MAPS[map_name]
    skip_unless_applicable(problem, method)
    direction = directions(problem, list(problem.params.values()))
    reference = unrolled(("third", map_name), lambda: third_derivative(problem, "unroll", direction))
    got = third_derivative(problem, method, direction)
    for g, r in zip(got, reference):
        assert rel(g, r) < 1e-6, f"third derivative via {method} on {map_name}: {rel(g, r):.2e}"


def test_reproduction_penalty_plus_loss_equals_sum_of_passes():
    """The one-pass gradient of L + P equals grad L + grad P, for every exact method."""
    gen = torch.Generator().manual_seed(0)
    W = (0.3 * torch.randn(5, 5, generator=gen, dtype=DT)).requires_grad_()
    b, z, w = (torch.randn(*s, generator=gen, dtype=DT) for s in ((5,), (3, 5), (3, 5)))
    for method in GENERAL:
        sol = fpibench.fixed_point(lambda x: torch.tanh(x @ W.T + b + z), torch.zeros(3, 5, dtype=DT), backward=method, tol=1e-12, max_iter=500)
        L = (sol.value * w).sum()
        (gW,) = torch.autograd.grad(L, W, create_graph=True)
        P = (gW**2).sum()
        (one,) = torch.autograd.grad(L + P, W, retain_graph=True)
        (gl,) = torch.autograd.grad(L, W, retain_graph=True)
        (gp,) = torch.autograd.grad(P, W)
        assert rel(one, gl + gp) < 1e-9, f"{method}: {rel(one, gl + gp):.2e}"


def test_tied_weights_are_not_counted_twice():
    """A θ computed from another θ (z = W-dependent input) gets each path once, at orders 1 and 2."""
    gen = torch.Generator().manual_seed(3)
    W = (0.4 * torch.randn(4, 4, generator=gen, dtype=DT)).requires_grad_()
    inp = torch.randn(2, 4, generator=gen, dtype=DT)

    def run(method):
        z = torch.sin(inp @ W)  # non-leaf input that depends on the same W as g
        x = solve_tied(W, z, method)
        L = torch.log1p((x**2).sum())
        (gW,) = torch.autograd.grad(L, W, create_graph=True)
        (hW,) = torch.autograd.grad(L + (gW**2).sum(), W)
        return gW.detach(), hW

    def solve_tied(W, z, method):
        forward = "picard" if method == "unroll" else "anderson"
        return fpibench.fixed_point(lambda x: torch.tanh(x @ W.T + z), torch.zeros(2, 4, dtype=DT), forward=forward, backward=method, tol=1e-13, max_iter=3000).value

    ref_g, ref_h = run("unroll")
    for method in GENERAL:
        g, h = run(method)
        assert rel(g, ref_g) < TOL and rel(h, ref_h) < TOL, f"{method}: {rel(g, ref_g):.2e} {rel(h, ref_h):.2e}"


def test_gradient_reaches_a_parameter_only_an_opaque_op_reads():
    """A parameter read by an operation that bypasses torch's function modes is still found
    (the graph walk adds it), so its gradient is never silently zero."""

    class Opaque(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            return x * w

        @staticmethod
        def backward(ctx, grad):
            x, w = ctx.saved_tensors
            return grad * w, (grad * x).sum(0)

    gen = torch.Generator().manual_seed(4)
    W = (0.4 * torch.randn(4, 4, generator=gen, dtype=DT)).requires_grad_()
    scale = (0.5 + torch.rand(4, generator=gen, dtype=DT)).requires_grad_()
    hidden = [scale]

    def g(x):
        with torch._C.DisableTorchFunction():
            scaled = Opaque.apply(x, hidden[0])
        return torch.tanh(scaled @ W.T + 0.3)

    results = {}
    for method in ("unroll", "backward_fpi"):
        forward = "picard" if method == "unroll" else "anderson"
        x = fpibench.fixed_point(g, torch.zeros(2, 4, dtype=DT), forward=forward, backward=method, tol=1e-13, max_iter=3000).value
        results[method] = torch.autograd.grad((x**2).sum(), [W, scale])
    for got, ref in zip(results["backward_fpi"], results["unroll"]):
        assert float(ref.norm()) > 0
        assert rel(got, ref) < TOL
