"""Gradient methods: how ∇L flows through the fixed point x̂ = g(x̂).

Implicit differentiation (Jeon, Lee & Choi 2021, eq. 10; Almeida–Pineda RBP):

    c = (∂g/∂x)ᵀ c + ∇x̂L,        ∇θL = (∂g/∂θ)ᵀ c

The adjoint map h(c) = (∂g/∂x)ᵀc + v is itself a fixed-point problem, so the iterative
gradient methods reuse the forward solvers (Picard = backward FPI, Anderson, Broyden) or
GMRES on it.  Under ``create_graph`` the adjoint solve is itself run through
:func:`fixed_point` with the same gradient method, so derivatives of every order work
(the paper's §3.3).

Three families share the machinery here:

* :class:`AdjointGradient` — attach one differentiable step y = g(x̂) and replace the
  gradient arriving at y by the adjoint c (iterative: :class:`IterativeAdjoint`; dense:
  ``jacobian_inverse``).  Bytes saved for backward do not depend on forward iterations.
* :class:`UnrolledGradient` — keep the forward iterations in the autograd graph.
* :class:`TruncatedGradient` — k damped steps from x̂ with the graph on (phantom, JFB).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ._iterate import CONVERGED, FIXED_STEPS, IterationControl, IterationStats, iterate
from ._options import GradientOptions, Integer, Number, option, same_as
from ._stats import BackwardStats, SolveStats
from .errors import FixedPointError, FixedPointWarning

Map = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class SolveContext:
    """What a gradient method needs besides g: where to record stats, strictness, defaults."""

    stats: SolveStats
    strict: bool
    forward_control: IterationControl
    forward_solver: object


class GradientMethod:
    """Base: run the forward solve, then make the result differentiable."""

    name = "gradient"
    #: whether the method computes the exact implicit gradient (up to its tolerance)
    exact = True

    def forward(self, f: Map, x0: torch.Tensor, ctx: SolveContext):
        """Solve x = f(x) from x0 without recording a graph, then attach the gradient."""
        with torch.no_grad():
            x, stats = iterate(ctx.forward_solver, f, x0, ctx.forward_control)
        ctx.stats.forward = stats
        return self.attach(f, x.detach(), ctx)

    def attach(self, f: Map, x_star: torch.Tensor, ctx: SolveContext) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def check_size(self, x: torch.Tensor) -> None:
        """Refuse up front when the method cannot run at this size (dense Jacobians)."""


def vjp_map(f: Map, x: torch.Tensor, v: torch.Tensor, create_graph: bool):
    """Return (h, counter): h(c) = (∂f/∂x)ᵀ c + v at the point x, counting VJPs.

    Without ``create_graph`` the point is detached and f is evaluated once; with it the
    point keeps its graph so second derivatives flow through x, the parameters and v.
    """
    if create_graph:
        point = x
    else:
        point = x.detach().requires_grad_()
    with torch.enable_grad():
        fx = f(point)
    counter = {"vjp": 0}

    def h(c: torch.Tensor) -> torch.Tensor:
        counter["vjp"] += 1
        (jtc,) = torch.autograd.grad(fx, point, c, retain_graph=True, create_graph=torch.is_grad_enabled() and create_graph)
        return jtc + v  # not in place: the engine may hand back c itself (g(x) = x + b)

    return h, counter, fx, point


class _PassLink:
    """Shared by the two nodes of one attachment: tells the point node to drop the
    first-order gradient that reaches it in the same backward pass."""

    __slots__ = ("drop",)

    def __init__(self):
        self.drop = False


def _run_adjoint(ctx, point, v):
    create_graph = torch.is_grad_enabled()
    c, stats = ctx.method.adjoint(ctx.f, point, v, create_graph, ctx.solve_ctx)
    report_backward(stats, ctx.solve_ctx.strict)
    return c, stats


class _ImplicitPoint(torch.autograd.Function):
    """p = x̂ as a tensor whose derivative is the implicit one: identity forward, adjoint backward.

    The first-order gradient that reaches p through y₀ = g(p) is dropped (the output node
    already accounts for it); in a later pass — differentiating the first-order gradient —
    gradients through p are passed on, supplying the cross terms ∂²g/∂θ∂x · dx̂/dθ.
    """

    @staticmethod
    def forward(ctx, y00, link, method, f, solve_ctx):
        p = y00.clone()
        ctx.link, ctx.method, ctx.f, ctx.solve_ctx = link, method, f, solve_ctx
        ctx.save_for_backward(p)
        return p

    @staticmethod
    def backward(ctx, u):
        if ctx.link.drop:
            ctx.link.drop = False
            return None, None, None, None, None
        (point,) = ctx.saved_tensors
        c, _ = _run_adjoint(ctx, point, u)
        return c, None, None, None, None


class _ImplicitOutput(torch.autograd.Function):
    """y = y₀ = g(p) in the forward pass; backward replaces the incoming v by the adjoint
    c = (I − ∂g/∂x)⁻ᵀ v evaluated at p, so that ∇θL = (∂g/∂θ)ᵀ c flows on through y₀."""

    @staticmethod
    def forward(ctx, y0, point, link, method, f, solve_ctx):
        ctx.link, ctx.method, ctx.f, ctx.solve_ctx = link, method, f, solve_ctx
        ctx.save_for_backward(point)
        return y0.clone()

    @staticmethod
    def backward(ctx, v):
        (point,) = ctx.saved_tensors
        ctx.link.drop = True
        c, stats = _run_adjoint(ctx, point, v)
        ctx.solve_ctx.stats.record_backward(stats)
        return c, None, None, None, None, None


def report_backward(stats: BackwardStats, strict: bool) -> None:
    bad = [s for s in stats.status if s not in (CONVERGED, FIXED_STEPS)]
    if not bad:
        return
    counts = {s: bad.count(s) for s in sorted(set(bad))}
    msg = (
        f"backward solve ({stats.method}) failed for {len(bad)}/{len(stats.status)} samples: {counts}; "
        f"max residual {float(stats.residual.max()):.3g} after {int(stats.iterations.max())} iterations"
    )
    if strict:
        raise FixedPointError(msg)
    warnings.warn(msg, FixedPointWarning, stacklevel=3)


class AdjointGradient(GradientMethod):
    """Attach the fixed point behind adjoint nodes (Jeon, Lee & Choi 2021, §3.3).

        p  = ImplicitPoint(g(sg x̂))     value g(x̂) ≈ x̂, derivative (I − J)⁻¹ ∂g/∂θ
        y  = ImplicitOutput(g(p); p)    backward: v ↦ c solving (I − J(p))ᵀ c = v

    First order: ∇θL = (∂g/∂θ)ᵀ c at p, exactly one adjoint solve, and the gradient
    reaching p through g(p) is dropped.  Second order: differentiating that expression
    goes through p (whose derivative is implicit) and through the adjoint solve (itself
    a fixed-point layer under ``create_graph``), giving all four terms of
    d²x̂ = (I − J)⁻¹[g_θθ + 2 g_xθ x̂' + g_xx x̂' x̂'].  Saved tensors: two evaluations of g,
    independent of the number of forward iterations.
    """

    def attach(self, f, x_star, ctx):
        if not torch.is_grad_enabled():
            return x_star  # inference: nothing to attach, so no extra evaluation of g
        y00 = f(x_star)
        if not y00.requires_grad:
            return y00.detach()
        link = _PassLink()
        point = _ImplicitPoint.apply(y00, link, self, f, ctx)
        y0 = f(point)
        return _ImplicitOutput.apply(y0, point, link, self, f, ctx)

    def adjoint(self, f, y, v, create_graph, ctx):  # pragma: no cover - abstract
        """Return (c, BackwardStats) solving (I − ∂g/∂x)ᵀ c = v at the point y."""
        raise NotImplementedError


_FORWARD = "the forward solve's value"


@dataclass
class IterativeOptions(GradientOptions):
    """Options shared by the iterative adjoint solvers; ``None`` inherits the forward's."""

    tol: Optional[float] = same_as(IterationControl, "tol", inherit=_FORWARD)
    max_iter: Optional[int] = same_as(IterationControl, "max_iter", inherit=_FORWARD)
    criterion: Optional[str] = same_as(IterationControl, "criterion", inherit=_FORWARD)
    check_every: int = same_as(IterationControl, "check_every")
    divergence_factor: Optional[float] = same_as(IterationControl, "divergence_factor", inherit=_FORWARD)
    rounding_floor: Optional[bool] = same_as(IterationControl, "rounding_floor", inherit=_FORWARD)


class IterativeAdjoint(AdjointGradient):
    """Solve c = h(c) = (∂g/∂x)ᵀ c + v from c₀ = 0 with a fixed-point solver."""

    def make_solver(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def control(self, ctx: SolveContext) -> IterationControl:
        fwd = ctx.forward_control
        return IterationControl(
            tol=fwd.tol if self.tol is None else self.tol,
            max_iter=fwd.max_iter if self.max_iter is None else self.max_iter,
            criterion=fwd.criterion if self.criterion is None else self.criterion,
            check_every=self.check_every,
            divergence_factor=fwd.divergence_factor if self.divergence_factor is None else self.divergence_factor,
            rounding_floor=fwd.rounding_floor if self.rounding_floor is None else self.rounding_floor,
        )

    def adjoint(self, f, y, v, create_graph, ctx):
        control = self.control(ctx)
        h, counter, _, _ = vjp_map(f, y, v, create_graph)
        c0 = torch.zeros_like(v)
        if create_graph and control.tol is None:
            # a fixed number of steps (Neumann): differentiate the truncated series exactly
            c, stats = iterate(self.make_solver(), h, c0, control)
        elif create_graph:
            # The backward is itself a fixed-point layer: differentiate it implicitly too.
            inner_stats = SolveStats(forward=None)  # type: ignore[arg-type]
            inner_ctx = SolveContext(inner_stats, ctx.strict, control, self.make_solver())
            c = self.forward(h, c0, inner_ctx)
            stats = inner_stats.forward
        else:
            c, stats = iterate(self.make_solver(), h, c0, control)
        return c, BackwardStats.from_iterations(stats, self.name, counter["vjp"])


class UnrolledGradient(GradientMethod):
    """Naive unrolling: the forward iterations themselves are recorded and backpropagated."""

    def forward(self, f, x0, ctx):
        x, stats = iterate(ctx.forward_solver, f, x0, ctx.forward_control)
        ctx.stats.forward = stats
        if x.requires_grad:
            hook_backward_stats(x, ctx, self.name, stats)
        return x


def hook_backward_stats(y: torch.Tensor, ctx: SolveContext, method: str, stats: IterationStats) -> None:
    """Record backward stats when the gradient reaches y (backprop through recorded steps)."""

    def record(grad):
        batch = stats.iterations.numel()
        ctx.stats.record_backward(
            BackwardStats.from_iterations(
                stats, method, stats.nfev, residual=torch.zeros_like(stats.residual),
                residual_trace=torch.empty(0, batch), status=[FIXED_STEPS] * batch, solver="autograd",
            )
        )
        return grad

    y.register_hook(record)


@dataclass
class TruncatedOptions(GradientOptions):
    steps: int = option(5, Integer(1))
    damping: float = option(0.5, Number(0, 1))


class TruncatedGradient(GradientMethod):
    """k damped steps x ← (1−λ)x + λ g(x) from x̂ with the graph on (Geng et al. 2021)."""

    def attach(self, f, x_star, ctx):
        from fpibench.solvers.picard import Picard

        control = IterationControl(tol=None, max_iter=self.steps)
        y, stats = iterate(Picard(beta=self.damping), f, x_star, control)
        if y.requires_grad:
            hook_backward_stats(y, ctx, self.name, stats)
        return y
