"""The one iteration loop shared by every solver, forward and backward.

A solver is a small object with ``init(f, x0) -> state`` and ``step(f, state) -> state``
acting on a batch of flattened problems ``x`` of shape ``(B, N)``; ``state.x`` is the
current iterate.  :func:`iterate` owns everything else: per-sample convergence with the
paper's criterion ``‖x_{n+1} − x_n‖ / ‖x_n‖ < tol`` (or the absolute one), freezing
converged samples, divergence and NaN detection, residual traces, and the statuses.

Host synchronisation happens only at the convergence test, which runs every
``check_every`` iterations; traces and counters stay on the device until the end, where
the per-sample statistics are read off the stacked traces in one pass (on the CPU the
per-sample bookkeeping uses numpy views, which cost no synchronisation there).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Optional

import numpy as np
import torch

from ._options import Flag, Integer, Number, OneOf, OrNone, Validated, declared, option

CONVERGED = "converged"
NOT_CONVERGED = "not_converged"
DIVERGED = "diverged"
NONFINITE = "nonfinite"
FIXED_STEPS = "fixed_steps"

Map = Callable[[torch.Tensor], torch.Tensor]


class SolverState:
    """Mutable per-solve state; solvers add their own attributes.

    ``x``: the current iterate ``(B, N)``.  ``residual``: optional ``(B,)`` absolute
    residual a solver may supply for the iterate it just produced (GMRES does); when
    absent the loop uses the step length ``‖x_{n+1} − x_n‖``.
    """

    def __init__(self, x: torch.Tensor, **kwargs: Any):
        self.x = x
        self.residual: Optional[torch.Tensor] = None
        self.__dict__.update(kwargs)


class FixedPointSolver(Validated):
    """Base class of solvers; subclasses are dataclasses whose fields are their options,
    declared with :func:`~fpibench._options.option` (checked on construction)."""

    name = "solver"
    option_kind = "forward solver"
    #: True when the solver is only valid for affine maps (GMRES).
    linear_only = False
    #: False for quasi-Newton solvers (Anderson, Broyden), whose steps may legitimately swing
    #: far above their smallest before converging: the loop then stops a sample early only on
    #: convergence or non-finite values; unconverged at the end with a grown step is still
    #: reported as ``diverged``.
    stops_on_growth = True

    def init(self, f: Map, x0: torch.Tensor) -> SolverState:
        return SolverState(x0)

    def step(self, f: Map, state: SolverState) -> SolverState:  # pragma: no cover - abstract
        raise NotImplementedError


def write_slot(buffer: torch.Tensor, index: int, value: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """``buffer[:, index] = value`` in place when no graph is recorded, out of place otherwise.

    Unrolled differentiation records the solver's iterations, and an in-place write into a
    history buffer would invalidate tensors autograd saved earlier.
    """
    if torch.is_grad_enabled() and (buffer.requires_grad or value.requires_grad):
        idx = torch.tensor([index], device=buffer.device)
        return buffer.index_copy(dim, idx, value.unsqueeze(dim))
    buffer.select(dim, index).copy_(value)
    return buffer


@dataclass
class IterationControl(Validated):
    """Stopping rule of :func:`iterate`.

    ``tol=None`` runs exactly ``max_iter`` steps (Neumann terms, phantom steps).
    ``criterion``: ``"relative"`` (the paper's ‖x_{n+1}−x_n‖/‖x_n‖) or ``"absolute"`` (‖x_{n+1}−x_n‖).
    ``check_every``: run the (host-synchronising) convergence test every k iterations.
    ``divergence_factor``: stop a sample early (status ``diverged``) once its step length
    ‖x_{n+1} − x_n‖ exceeds this multiple of the smallest step it has taken; a sample that
    ends unconverged with a step over √divergence_factor times its smallest is ``diverged``
    too (otherwise ``not_converged``).  Steps below the rounding floor √ε·‖x_n‖ of the dtype
    count as that floor, so a solver that stalls at rounding level (float32 plateaus) and
    then moves by a small amount is not mistaken for a divergent one.
    ``rounding_floor``: a step ‖x_{n+1} − x_n‖ ≤ ε‖x_n‖ (ε the dtype's machine epsilon: the
    iterate moves by at most about one rounding unit) counts as converged whatever ``tol``
    says, so a tolerance below the dtype's resolution (the paper's relative 1e-8 in float32)
    ends once the iterate is exact to rounding instead of cycling between neighbouring floats
    until ``max_iter``.  ``False`` keeps the bare tolerance.
    """

    option_kind = "iteration loop"
    #: the options given as arguments of ``fixed_point`` (the others go in ``forward_options``)
    arguments: ClassVar[tuple] = ("tol", "max_iter")
    #: guards the relative criterion ‖Δx‖/(‖x‖ + eps) against ‖x‖ = 0; internal, not an option
    eps: ClassVar[float] = 1e-12

    tol: Optional[float] = option(1e-6, OrNone(Number(0), "run exactly max_iter steps"))
    max_iter: int = option(200, Integer(1))
    criterion: str = option("relative", OneOf(("relative", "absolute")))
    check_every: int = option(1, Integer(1))
    divergence_factor: float = option(1e4, Number(1))
    rounding_floor: bool = option(True, Flag())

    @classmethod
    def option_names(cls) -> set[str]:
        return set(declared(cls))

    @classmethod
    def forward_option_names(cls) -> set[str]:
        """The loop options a caller gives in ``forward_options``."""
        return cls.option_names() - set(cls.arguments)


@dataclass
class IterationStats:
    """What one solve did, per sample.  Tensors live on the CPU.

    ``iterations`` (B,), ``residual`` (B,) final residual, ``residual_trace`` (n, B) with
    NaN after a sample stopped, ``status`` list of str per sample, ``nfev`` calls of the map.
    """

    iterations: torch.Tensor
    residual: torch.Tensor
    residual_trace: torch.Tensor
    status: list
    nfev: int
    solver: str = ""

    @property
    def converged(self) -> bool:
        return all(s in (CONVERGED, FIXED_STEPS) for s in self.status)

    def summary(self) -> dict:
        it = self.iterations.double()
        counts: dict = {}
        for s in self.status:
            counts[s] = counts.get(s, 0) + 1
        return {
            "solver": self.solver,
            "iterations_mean": float(it.mean()) if it.numel() else 0.0,
            "iterations_max": int(self.iterations.max()) if it.numel() else 0,
            "residual_max": float(self.residual.max()) if self.residual.numel() else 0.0,
            "nfev": self.nfev,
            "status": counts,
        }


class CountingMap:
    """Wraps a map and counts its calls (no host synchronisation)."""

    def __init__(self, f: Map):
        self.f = f
        self.calls = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.f(x)


def host_any(mask: torch.Tensor) -> bool:
    """The loop's one host synchronisation: does any sample still iterate?"""
    return bool(mask.any())


def _norm(x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(x, dim=1)


#: dtypes whose per-sample bookkeeping can live in numpy on the CPU
_HOST_DTYPES = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}


class _Ledger:
    """Per-sample bookkeeping of one solve: step lengths, scales, active set, counts.

    Rows of ``(B,)`` step norms go into growable ``(capacity, B)`` buffers — numpy arrays
    on the CPU (a numpy op on 64 numbers costs a microsecond, a torch op ten), tensors on
    the device otherwise (nothing synchronises but :func:`host_any`).  The divergence test
    compares floored steps max(‖x_{n+1} − x_n‖, √ε‖x_n‖), so a stall at rounding level is
    not mistaken for a minimum that a later, still small, step "blows up" from.
    """

    def __init__(self, batch: int, dtype: torch.dtype, device: torch.device, host: bool, max_iter: int):
        self.host, self.batch, self.max_iter = host, batch, max_iter
        self.machine_eps = float(torch.finfo(dtype).eps) if dtype.is_floating_point else 0.0
        self.floor = self.machine_eps**0.5
        if host:
            self.xp, np_dtype = np, _HOST_DTYPES[dtype]
            self._empty = lambda rows: np.empty((rows, batch), dtype=np_dtype)
            self.active = np.ones(batch, dtype=bool)
            self.best = np.full(batch, np.inf, dtype=np_dtype)
            self.iters = np.zeros(batch, dtype=np.int64)
            self._arange = np.arange
        else:
            self.xp = torch
            self._empty = lambda rows: torch.empty((rows, batch), dtype=dtype, device=device)
            self.active = torch.ones(batch, dtype=torch.bool, device=device)
            self.best = torch.full((batch,), float("inf"), dtype=dtype, device=device)
            self.iters = torch.zeros(batch, dtype=torch.long, device=device)
            self._arange = lambda n: torch.arange(n, device=device)
        self.capacity = min(max_iter, 64)
        self.steps, self.scales, self.floored = (self._empty(self.capacity) for _ in range(3))
        self.n = self.last_check = 0
        self.scaled = False

    def record(self, step, scale) -> None:
        """Append one iteration's step lengths (and ‖x_n‖, or None)."""
        if self.n == self.capacity:
            self.capacity = min(self.max_iter, 2 * self.capacity)
            grown = []
            for old in (self.steps, self.scales, self.floored):
                new = self._empty(self.capacity)
                new[: self.n] = old[: self.n]
                grown.append(new)
            self.steps, self.scales, self.floored = grown
        i = self.n
        self.steps[i] = step
        self.scaled = scale is not None
        if scale is not None:
            self.scales[i] = scale
            self.floored[i] = self.xp.maximum(step, self.floor * scale)
        self.n = i + 1

    def check(self, control: IterationControl, relative: bool, stop_on_growth: bool = True):
        """The convergence test after iteration n: stop samples that converged (step < tol,
        relative to ‖x_n‖ or absolute), went non-finite, or (``stop_on_growth``) blew up
        (step > factor × smallest)."""
        n, start = self.n, self.last_check
        block = self.floored[n - 1] if n - start == 1 else self.xp.amin(self.floored[start:n], 0)
        self.iters += self.active * (n - start)  # active was constant through the block
        self.best = self.xp.minimum(self.best, block)
        step = self.steps[n - 1]
        threshold = self.threshold(control, relative, self.scales[n - 1])
        self.blown = ~self.xp.isfinite(step)  # went non-finite at this step
        self.active = self.active & (step >= threshold) & ~self.blown
        if stop_on_growth:
            self.active = self.active & (step <= control.divergence_factor * self.best)
        self.last_check = n
        return self.active

    def threshold(self, control: IterationControl, relative: bool, scale):
        """The step length under which a sample has converged, given ‖x_n‖ (``scale``)."""
        threshold = control.tol * (scale + control.eps) if relative else control.tol
        if control.rounding_floor:
            threshold = (self.machine_eps * scale).clip(min=threshold)
        return threshold

    def finish(self, control: IterationControl, relative: bool, fixed_steps: bool, finite_x: torch.Tensor):
        """Per-sample iterations, residual trace (NaN after a sample stopped), final residual
        and status, read off the buffers in one pass; returned as CPU tensors and a list."""
        xp, n = self.xp, self.n
        steps = self.steps[:n]
        with np.errstate(all="ignore"):  # NaN/inf steps are judged here, not warned about
            res = steps / (self.scales[:n] + control.eps) if relative else steps
            iters = xp.full_like(self.iters, n) if fixed_steps else self.iters
            taken = self._arange(n)[:, None] < iters[None, :]
            trace = xp.where(taken, res, float("nan"))
            last, cols = (iters - 1).clip(min=0), self._arange(self.batch)
            final, step_final = trace[last, cols], steps[last, cols]
            smallest = xp.amin(xp.where(taken, steps if fixed_steps else self.floored[:n], float("inf")), 0)
            finite = xp.isfinite(final) & (finite_x.numpy() if self.host else finite_x)
            diverged = finite & (step_final > control.divergence_factor * smallest)
            grew = step_final > control.divergence_factor**0.5 * smallest
            if fixed_steps:
                converged = xp.zeros_like(finite)
                # a fixed number of steps claims nothing, but its steps must not grow: a last
                # step over twice the first (and over the rounding floor) means the truncated
                # series or iteration blew up (e.g. a Neumann series with spectral radius > 1)
                floor_last = self.floor * self.scales[last, cols] if self.scaled else 0 * step_final
                diverged = finite & (step_final > 2 * xp.maximum(steps[0], floor_last))
            else:
                converged = ~self.active & (step_final < self.threshold(control, relative, self.scales[last, cols]))
        flags = [finite, diverged, converged, grew]
        cpu = (lambda a: torch.from_numpy(np.ascontiguousarray(a))) if self.host else (lambda t: t.cpu())
        finite_l, diverged_l, converged_l, grew_l = (cpu(f).tolist() for f in flags)
        status = []
        for i in range(self.batch):
            if not finite_l[i]:
                status.append(NONFINITE)
            elif diverged_l[i]:
                status.append(DIVERGED)
            elif fixed_steps:
                status.append(FIXED_STEPS)
            elif diverged_l[i]:
                status.append(DIVERGED)
            elif converged_l[i]:
                status.append(CONVERGED)
            elif grew_l[i]:
                status.append(DIVERGED)  # unconverged, and the step grew far above its minimum
            else:
                status.append(NOT_CONVERGED)
        return cpu(iters), cpu(final), cpu(trace), status


def iterate(solver: FixedPointSolver, f: Map, x0: torch.Tensor, control: IterationControl, on_finish: Optional[Callable] = None):
    """Run ``solver`` on ``x = f(x)`` from ``x0`` (B, N) under ``control``.

    Returns ``(x, IterationStats)``.  Whether a graph is recorded is the caller's choice
    (``torch.no_grad()`` for implicit methods, enabled for unrolling).

    Per iteration the loop measures the step (two norms) and, at the convergence test,
    updates the active set; everything per sample lives in a :class:`_Ledger` and is read
    off once at the end.
    """
    counted = CountingMap(f)
    batch, device = x0.shape[0], x0.device
    fixed_steps = control.tol is None
    relative = control.criterion == "relative"
    need_scale = relative or not fixed_steps
    host = device.type == "cpu" and x0.dtype in _HOST_DTYPES
    dtype = x0.dtype if x0.dtype.is_floating_point else torch.float32
    ledger = _Ledger(batch, dtype, device, host, control.max_iter)
    graph = torch.is_grad_enabled()  # unrolling records the loop: measure on detached values
    stop_on_growth = getattr(solver, "stops_on_growth", True)
    state = solver.init(counted, x0)
    frozen = None  # torch mask of the samples still iterating, once one has stopped
    for n in range(1, control.max_iter + 1):
        x_prev = state.x
        state.residual = None
        state = solver.step(counted, state)
        x_new, x_old = (state.x.detach(), x_prev.detach()) if graph else (state.x, x_prev)
        # divergence is judged on the absolute step ‖x_{n+1} − x_n‖: under geometric
        # divergence the relative step stays constant while the absolute one grows.
        step = state.residual.detach() if state.residual is not None else _norm(x_new - x_old)
        scale = _norm(x_old) if need_scale else None
        if step.dtype != dtype:
            step = step.to(dtype)
        if scale is not None and scale.dtype != dtype:
            scale = scale.to(dtype)
        if host:
            step, scale = step.numpy(), (None if scale is None else scale.numpy())
        ledger.record(step, scale)
        if fixed_steps:
            continue
        if frozen is not None:
            state.x = torch.where(frozen.unsqueeze(1), state.x, x_prev)
        if n % control.check_every == 0 or n == control.max_iter:
            active = ledger.check(control, relative, stop_on_growth)
            # a sample whose step just went non-finite keeps its last iterate (status nonfinite)
            if not host:
                state.x = torch.where(ledger.blown.unsqueeze(1), x_prev, state.x)
            elif not active.all() and ledger.blown.any():
                state.x = torch.where(torch.from_numpy(ledger.blown).unsqueeze(1), x_prev, state.x)
            if not host_any(active):
                break
            if not host:
                frozen = active
            elif frozen is not None or not active.all():
                frozen = torch.from_numpy(active)
    if on_finish is not None:  # e.g. SHINE reads the solver's final inverse-Jacobian estimate
        on_finish(state)
    finite_x = torch.isfinite(state.x.detach()).all(dim=1)
    iterations, residual, trace, status = ledger.finish(control, relative, fixed_steps, finite_x.cpu() if host else finite_x)
    verdicts = getattr(solver, "verdicts", None)  # a solver's own per-sample verdict (e.g. CG: indefinite)
    if verdicts is not None:
        refusal = verdicts(state)
        status = [s if why is None else why for s, why in zip(status, refusal)]
    stats = IterationStats(
        iterations=iterations,
        residual=residual,
        residual_trace=trace,
        status=status,
        nfev=counted.calls,
        solver=getattr(solver, "name", type(solver).__name__),
    )
    return state.x, stats
