"""Gradient methods: how ∇L flows through the fixed point x̂ = g(x̂).

Implicit differentiation (Jeon, Lee & Choi 2021, eq. 10; Almeida–Pineda RBP):

    c = (∂g/∂x)ᵀ c + ∇x̂L,        ∇θL = (∂g/∂θ)ᵀ c

The adjoint map h(c) = (∂g/∂x)ᵀc + v is itself a fixed-point problem, so the iterative
gradient methods reuse the forward solvers (Picard = backward FPI, Anderson, Broyden) or
GMRES on it.  Under ``create_graph`` the adjoint solve is itself an implicit fixed point
differentiated by the same method, and ∇θL is evaluated at a point that carries the
implicit derivative, so derivatives of every order are exact (the paper's §3.3).

Three families share the machinery here:

* :class:`AdjointGradient` — the fixed point as one autograd node of the tensors θ that g
  closes over, whose backward solves the adjoint (iterative: :class:`IterativeAdjoint`;
  dense: ``jacobian_inverse``).  Bytes saved for backward do not depend on forward iterations.
* :class:`UnrolledGradient` — keep the forward iterations in the autograd graph.
* :class:`TruncatedGradient` — k damped steps from x̂ with the graph on (phantom, JFB).
"""
from __future__ import annotations

import dataclasses
import warnings
import weakref
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

from ._inputs import evaluate_with_inputs
from ._iterate import CONVERGED, DIVERGED, FIXED_STEPS, NONFINITE, IterationControl, IterationStats, iterate
from ._options import Flag, GradientOptions, Integer, Number, option, same_as
from ._stats import BackwardStats, SolveStats
from .errors import OptionError
from .errors import FixedPointError, FixedPointWarning

Map = Callable[[torch.Tensor], torch.Tensor]


def _registry():
    from . import _registry as registry  # the registry imports the methods: resolve it late

    return registry


@dataclass
class SolveContext:
    """What a gradient method needs besides g: where to record stats, strictness, defaults."""

    stats: SolveStats
    strict: bool
    forward_control: IterationControl
    forward_solver: object
    #: the tensors g closes over, when the caller knows them (inner solves); None: find them
    params: Optional[list] = None
    #: y ↦ Bᵀy for the forward solver's final inverse-Jacobian estimate B ≈ (∂g/∂x − I)⁻¹,
    #: when the method asked for it and the solver keeps one (Broyden); used by SHINE
    inverse_jacobian_t: Optional[Callable] = None
    #: a dict owned by the caller (a layer) that persists between solves: warm-started adjoints
    memory: Optional[dict] = None


class GradientMethod:
    """Base: run the forward solve, then make the result differentiable."""

    name = "gradient"
    #: whether the method computes the exact implicit gradient (up to its tolerance)
    exact = True
    #: what the method needs of ∂g/∂x beyond a fixed point: None, or "symmetric" (cg,
    #: minres: FPI_GD maps); test suites and sweeps skip the maps that lack it
    requires: Optional[str] = None

    #: True for methods that use the forward solver's inverse-Jacobian estimate (SHINE)
    needs_inverse_jacobian = False

    def check_forward(self, solver) -> None:
        """Refuse, before anything runs, a forward solver this method cannot work with."""
        if self.needs_inverse_jacobian and not hasattr(solver, "inverse_jacobian_t"):
            keeps = [name for name in _registry().FORWARD.names() if hasattr(_registry().FORWARD.get(name), "inverse_jacobian_t")]
            raise OptionError(
                f"gradient method {self.name!r} needs a forward solver that keeps an inverse-Jacobian "
                f"estimate ({', '.join(keeps)}); {getattr(solver, 'name', type(solver).__name__)!r} keeps none"
            )

    def forward(self, f: Map, x0: torch.Tensor, ctx: SolveContext):
        """Solve x = f(x) from x0 without recording a graph, then attach the gradient."""
        capture = None
        if self.needs_inverse_jacobian:
            def capture(state):
                ctx.inverse_jacobian_t = ctx.forward_solver.inverse_jacobian_t(state)
        with torch.no_grad():
            x, stats = iterate(ctx.forward_solver, f, x0, ctx.forward_control, on_finish=capture)
        ctx.stats.forward = stats
        return self.attach(f, x.detach(), ctx)

    def attach(self, f: Map, x_star: torch.Tensor, ctx: SolveContext) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def check_size(self, x: torch.Tensor) -> None:
        """Refuse up front when the method cannot run at this size (dense Jacobians)."""


#: graph tasks (autograd engine runs) that compute partial derivatives: gates stop them
_partial_tasks: set = set()


class _PartialMarker(torch.autograd.Function):
    """Identity at the root of a partial-derivative pass: its backward runs first in that pass
    and registers the pass's graph task, so that gates stop this pass and no other (the engine
    may run nodes of an enclosing pass on the same thread while this one is in progress)."""

    @staticmethod
    def forward(ctx, x, registered):
        ctx.registered = registered
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        task = torch._C._current_graph_task_id()
        ctx.registered.append(task)
        _partial_tasks.add(task)
        return grad, None


def partial_grad(output: torch.Tensor, inputs: list, grad_output: torch.Tensor, create_graph: bool) -> tuple:
    """Reverse mode from ``output`` that stops at every :class:`_Gate`: partial derivatives
    with respect to ``inputs``, whatever the gated tensors depend on upstream."""
    registered: list = []
    with torch.enable_grad():
        root = _PartialMarker.apply(output, registered)
    try:
        return torch.autograd.grad(root, inputs, grad_output, retain_graph=True, create_graph=create_graph, allow_unused=True)
    finally:
        _partial_tasks.difference_update(registered)


class _Gate(torch.autograd.Function):
    """Identity whose backward is cut in a :func:`partial_grad` pass and open in every other.

    The backward of an implicit node needs (∂g/∂θ)ᵀc — a partial derivative, with the point
    and each θ held fixed — but the expression must keep its dependence on them for the
    next order.  Gating the point and the non-leaf θ gives both: the node's own products
    stop at the gates, later passes go through them.
    """

    @staticmethod
    def forward(ctx, x):
        ctx.set_materialize_grads(False)
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        if grad is None or (_partial_tasks and torch._C._current_graph_task_id() in _partial_tasks):
            return None
        return grad


def gate(x: torch.Tensor) -> torch.Tensor:
    return _Gate.apply(x)


class _Substitute(TorchFunctionMode):
    """Reads of the given tensors inside an evaluation of g see their stand-ins instead."""

    def __init__(self, stand_ins: dict):
        super().__init__()
        self.stand_ins = stand_ins

    def __torch_function__(self, func, types, args=(), kwargs=None):
        swap = lambda t: self.stand_ins.get(id(t), t) if isinstance(t, torch.Tensor) else t  # noqa: E731
        return func(*tree_map(swap, args), **tree_map(swap, kwargs or {}))


class Linearisation:
    """g linearised at a point: ``fx = g(point)`` evaluated once with its graph.

    ``vjp(c)`` = (∂g/∂x)ᵀc and ``param_vjp(c)`` = (∂g/∂θ)ᵀc for the tensors ``params`` that g
    closes over — partial derivatives, each by reverse mode through that one evaluation.
    With ``create_graph`` the point and the parameters keep their graphs, so every product
    is itself differentiable (in x through the point, in θ, and in c).  Non-leaf θ are read
    through gated stand-ins (``stand_in=True``), so that a θ computed from another θ (tied
    weights) is not counted twice; ``targets`` are what the products differentiate against.
    ``vjp_calls`` counts the batched VJPs with respect to x.
    """

    def __init__(self, f: Map, point: torch.Tensor, params: list, create_graph: bool, stand_in: bool = True):
        self.f, self.point, self.params, self.create_graph = f, point, params, create_graph
        with torch.enable_grad():
            stand_ins = {id(t): gate(t) for t in params if stand_in and t.grad_fn is not None}
            self.targets = [stand_ins.get(id(t), t) for t in params]
            with _Substitute(stand_ins) if stand_ins else nullcontext():
                self.fx = f(point)
        self.vjp_calls = 0

    def vjp(self, c: torch.Tensor) -> torch.Tensor:
        self.vjp_calls += 1
        graph = self.create_graph and torch.is_grad_enabled()
        (jtc,) = torch.autograd.grad(self.fx, self.point, c, retain_graph=True, create_graph=graph)
        return jtc

    def adjoint_map(self, v: torch.Tensor) -> Map:
        """h(c) = (∂g/∂x)ᵀc + v, the map whose fixed point is the adjoint."""

        def h(c: torch.Tensor) -> torch.Tensor:
            return self.vjp(c) + v  # not in place: the engine may hand back c itself (g(x) = x + b)

        return h

    def param_vjp(self, c: torch.Tensor) -> tuple:
        """(∂g/∂θ)ᵀc for each θ (None where g does not depend on it)."""
        if not self.targets:
            return ()
        return partial_grad(self.fx, self.targets, c, self.create_graph and torch.is_grad_enabled())


@dataclass
class _Attachment:
    """What the backward of one implicit solution needs (kept out of autograd's saved tensors)."""

    method: "AdjointGradient"
    f: Map
    point: torch.Tensor  # p = g(x̂): where g is linearised
    ctx: SolveContext
    #: read non-leaf θ through gated stand-ins (a user's g); inner solves gate their θ themselves
    stand_in: bool = True


class _ImplicitSolution(torch.autograd.Function):
    """x = g(p), p = g(x̂), as a function of the tensors θ that g closes over, with the implicit
    derivative dx/dθ = (I − ∂g/∂x)⁻¹ ∂g/∂θ at every order.

    Backward: c solves (I − ∂g/∂x)ᵀ c = u at p, and the node returns (∂g/∂θ)ᵀc.  Under
    ``create_graph`` that expression is built from differentiable pieces — g evaluated at
    a point that is this node's own output (so its derivative is again the implicit one),
    the adjoint solve (itself an implicit fixed point), and θ — so differentiating it gives
    every term of d²x̂ = (I − J)⁻¹[g_θθ + 2 g_xθ x̂′ + g_xx x̂′x̂′], and so on for higher orders.
    """

    @staticmethod
    def forward(ctx, attachment, value, *params):
        ctx.attachment, ctx.saved_params = attachment, params
        ctx.set_materialize_grads(False)  # a gradient cut at a gate arrives as None: nothing to solve
        out = value.clone()
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, u):
        att: _Attachment = ctx.attachment
        if u is None:
            return (None, None, *(None for _ in ctx.saved_params))
        create_graph = torch.is_grad_enabled()
        if create_graph:
            (out,) = ctx.saved_tensors
            point = gate(out) + (att.point - out).detach()  # the value p, the derivative of this node
        else:
            point = att.point.detach().requires_grad_()
        params = list(ctx.saved_params)
        lin = Linearisation(att.f, point, params, create_graph, att.stand_in)
        c, stats = att.method.adjoint(lin, u, att.ctx)
        grads = lin.param_vjp(c)
        finite = [torch.isfinite(g).all() for g in grads if g is not None]
        if finite and not bool(torch.stack(finite).all()):  # a NaN/Inf inside (∂g/∂θ)ᵀ: every sample shares θ
            stats.status = [NONFINITE] * len(stats.status)
        report_backward(stats, att.ctx.strict)
        att.ctx.stats.record_backward(stats)
        return (None, None, *grads)


def report_backward(stats: BackwardStats, strict: bool) -> None:
    bad = [s for s in stats.status if s not in (CONVERGED, FIXED_STEPS)]
    if not bad:
        return
    counts = {s: bad.count(s) for s in sorted(set(bad))}
    msg = (
        f"backward solve ({stats.method}) failed for {len(bad)}/{len(stats.status)} samples: {counts}; "
        f"max residual {float(stats.residual.max()):.3g} after {int(stats.iterations.max())} iterations"
    )
    if NONFINITE in counts:
        msg += "; a NaN or Inf reached the gradient (from the incoming gradient or a derivative of g)"
    if DIVERGED in counts:
        msg += "; its iteration grew instead of converging"

    if strict:
        raise FixedPointError(msg)
    warnings.warn(msg, FixedPointWarning, stacklevel=3)


class AdjointGradient(GradientMethod):
    """The fixed point as one autograd node of the tensors θ that g closes over
    (Jeon, Lee & Choi 2021, §3.3: the backward of an FPI layer is again an FPI layer).

        p = g(x̂),   x = g(p)      (values; two steps past the solver's iterate)
        backward:   u ↦ (∂g/∂θ)ᵀ c   with   (I − ∂g/∂x)ᵀ c = u   at p

    θ is found by evaluating g once (:func:`evaluate_with_inputs`); inner solves pass their
    own θ explicitly.  Saved for backward: p and x — two states, independent of the number
    of forward iterations; g is evaluated again in backward.  Derivatives of every order
    are exact to the solves' tolerances (see :class:`_ImplicitSolution`).
    """

    def attach(self, f, x_star, ctx):
        if not torch.is_grad_enabled():
            return x_star  # inference: nothing to attach, so no extra evaluation of g
        if ctx.params is None:
            y00, params = evaluate_with_inputs(f, x_star)
            point = y00.detach()
        else:
            with torch.no_grad():
                point = f(x_star)
            params = ctx.params
        params = [t for t in params if t.requires_grad]
        if not params:
            return point
        with torch.no_grad():
            value = f(point)
        attachment = _Attachment(self, f, point, ctx, stand_in=ctx.params is None)
        out = _ImplicitSolution.apply(attachment, value, *params)
        return out

    def adjoint(self, lin: Linearisation, v: torch.Tensor, ctx: SolveContext):  # pragma: no cover - abstract
        """Return (c, BackwardStats) solving (I − ∂g/∂x)ᵀ c = v for g linearised in ``lin``."""
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
    #: start from the previous backward's adjoint (kept in the caller's ``memory``: a
    #: FixedPointLayer's, so consecutive training steps warm-start each other, as DEQ code does)
    warm_start: bool = option(False, Flag())


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

    #: start from the previous backward's adjoint (``warm_start`` option, where a method has it)
    warm_start = False

    def start(self, v, ctx):
        """c₀: zero, or with ``warm_start`` the previous solve's adjoint kept in the caller's memory."""
        if self.warm_start and ctx.memory is not None:
            previous = ctx.memory.get("adjoint")
            if previous is not None and previous.shape == v.shape and previous.dtype == v.dtype and previous.device == v.device:
                return previous.clone()
        return torch.zeros_like(v)

    def remember(self, c, ctx):
        if self.warm_start and ctx.memory is not None:
            ctx.memory["adjoint"] = c.detach()

    def adjoint(self, lin, v, ctx):
        control = self.control(ctx)
        h = lin.adjoint_map(v)
        c0 = self.start(v, ctx)
        if lin.create_graph and control.tol is not None:
            # The backward is itself a fixed-point layer: differentiate it implicitly too,
            # as a function of everything h reads (the point, g's θ and the incoming v).
            inner_stats = SolveStats(forward=None)  # type: ignore[arg-type]
            v = gate(v)  # a θ of the inner problem: its product stops here, later passes go on
            h = lin.adjoint_map(v)
            params = [*lin.targets, lin.point, v]
            inner_ctx = SolveContext(inner_stats, ctx.strict, control, self.make_solver(), params=params)
            c = self.forward(h, c0, inner_ctx)
            stats = inner_stats.forward
        else:
            # no graph, or a fixed number of steps (Neumann) differentiated exactly as run
            c, stats = iterate(self.make_solver(), h, c0, control)
        self.remember(c, ctx)
        return c, BackwardStats.from_iterations(stats, self.name, lin.vjp_calls)


class GradientWatch:
    """Backward statistics of the methods that backpropagate through recorded steps (unroll,
    phantom, JFB), with honest statuses.

    The tensors g reads are found on the first step (:func:`evaluate_with_inputs`, no extra
    evaluation) and hooked; in a backward pass that reaches this solve's output, the
    gradient arriving there is checked per sample and the gradients reaching g's inputs as
    they pass.  At the end of the pass (one host read) the statuses are the steps' own
    (``fixed_steps``, or ``diverged`` when they grew) with ``nonfinite`` where a NaN or Inf
    reached the sample's gradient — every sample, for a non-finite parameter gradient —
    then recorded, warned about, or raised under ``strict``.  The hooks go with the output.
    """

    def __init__(self, ctx: SolveContext, method: str):
        self.ctx, self.method = ctx, method
        self.stats: Optional[IterationStats] = None
        self._found = False
        self._task = None
        self._incoming = None
        self._params: list = []

    def map(self, f: Map) -> Map:
        """f, finding (and hooking) the tensors it reads on its first call."""

        def watched(x):
            if self._found:
                return f(x)
            self._found = True
            y, inputs = evaluate_with_inputs(f, x)
            # the parameters hold only a weak reference: the hooks go when this watch does,
            # that is when the graph of the solve's output is freed
            ref = weakref.ref(self)

            def param_grad(grad):
                watch = ref()
                if watch is not None:
                    watch._param_grad(grad)

            handles = [t.register_hook(param_grad) for t in inputs]
            weakref.finalize(self, lambda: [h.remove() for h in handles])
            return y

        return watched

    def attach(self, y: torch.Tensor, stats: IterationStats) -> None:
        self.stats = stats
        y.register_hook(self._arrived)

    def _arrived(self, grad):
        if grad is None:
            return grad
        self._task = torch._C._current_graph_task_id()
        self._incoming = torch.isfinite(grad).reshape(grad.shape[0], -1).all(dim=1)
        torch.autograd.Variable._execution_engine.queue_callback(self._finish)
        return grad

    def _param_grad(self, grad):
        if grad is not None and self._task is not None and torch._C._current_graph_task_id() == self._task:
            self._params.append(torch.isfinite(grad).all())

    def _finish(self):
        stats, batch = self.stats, self.stats.iterations.numel()
        finite = self._incoming.cpu()
        if self._params and not bool(torch.stack(self._params).all()):
            finite[:] = False
        status = [s if ok else NONFINITE for s, ok in zip(stats.status, finite.tolist())]
        self._task, self._incoming, self._params = None, None, []
        record = BackwardStats.from_iterations(
            stats, self.method, stats.nfev, residual=torch.zeros_like(stats.residual),
            residual_trace=torch.empty(0, batch), status=status, solver="autograd",
        )
        self.ctx.stats.record_backward(record)
        report_backward(record, self.ctx.strict)


class UnrolledGradient(GradientMethod):
    """Naive unrolling: the forward iterations themselves are recorded and backpropagated."""

    def forward(self, f, x0, ctx):
        watch = GradientWatch(ctx, self.name)
        x, stats = iterate(ctx.forward_solver, watch.map(f) if torch.is_grad_enabled() else f, x0, ctx.forward_control)
        ctx.stats.forward = stats
        if x.requires_grad:
            # backward through the recorded iterations is exact for the iterate returned
            watch.attach(x, dataclasses.replace(stats, status=[FIXED_STEPS] * len(stats.status)))
        return x


@dataclass
class TruncatedOptions(GradientOptions):
    steps: int = option(5, Integer(1))
    damping: float = option(0.5, Number(0, 1))


class TruncatedGradient(GradientMethod):
    """k damped steps x ← (1−λ)x + λ g(x) from x̂ with the graph on (Geng et al. 2021)."""

    def attach(self, f, x_star, ctx):
        from ._registry import FORWARD  # by name: the core imports no solver module

        control = IterationControl(tol=None, max_iter=self.steps)
        watch = GradientWatch(ctx, self.name)
        y, stats = iterate(FORWARD.create("picard", {"beta": self.damping}), watch.map(f) if torch.is_grad_enabled() else f, x_star, control)
        if y.requires_grad:
            watch.attach(y, stats)
        return y
