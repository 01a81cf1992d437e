"""The one iteration loop shared by every solver, forward and backward.

A solver is a small object with ``init(f, x0) -> state`` and ``step(f, state) -> state``
acting on a batch of flattened problems ``x`` of shape ``(B, N)``; ``state.x`` is the
current iterate.  :func:`iterate` owns everything else: per-sample convergence with the
paper's criterion ``‖x_{n+1} − x_n‖ / ‖x_n‖ < tol`` (or the absolute one), freezing
converged samples, divergence and NaN detection, residual traces, and the statuses.

Host synchronisation happens only at the convergence test, which runs every
``check_every`` iterations; traces and counters stay on the device until the end.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from .errors import OptionError

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


class FixedPointSolver:
    """Base class of solvers; subclasses are dataclasses whose fields are their options."""

    name = "solver"
    #: True when the solver is only valid for affine maps (GMRES).
    linear_only = False

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
class IterationControl:
    """Stopping rule of :func:`iterate`.

    ``tol=None`` runs exactly ``max_iter`` steps (Neumann terms, phantom steps).
    ``criterion``: ``"relative"`` (the paper's ‖x_{n+1}−x_n‖/‖x_n‖) or ``"absolute"`` (‖x_{n+1}−x_n‖).
    ``check_every``: run the (host-synchronising) convergence test every k iterations.
    ``divergence_factor``: stop a sample early (status ``diverged``) once its step length
    ‖x_{n+1} − x_n‖ exceeds this multiple of the smallest step it has taken; a sample that
    ends unconverged with a step over √divergence_factor times its smallest is ``diverged``
    too (otherwise ``not_converged``).
    """

    tol: Optional[float] = 1e-6
    max_iter: int = 200
    criterion: str = "relative"
    check_every: int = 1
    divergence_factor: float = 1e4
    eps: float = 1e-12

    def __post_init__(self):
        if self.tol is not None:
            if not isinstance(self.tol, (int, float)) or not self.tol > 0:
                raise OptionError(f"tol must be a number > 0, got {self.tol!r}")
        if not isinstance(self.max_iter, int) or isinstance(self.max_iter, bool) or self.max_iter < 1:
            raise OptionError(f"max_iter must be an integer >= 1, got {self.max_iter!r}")
        if self.criterion not in ("relative", "absolute"):
            raise OptionError(f"criterion must be 'relative' or 'absolute', got {self.criterion!r}")
        if not isinstance(self.check_every, int) or self.check_every < 1:
            raise OptionError(f"check_every must be an integer >= 1, got {self.check_every!r}")
        if not self.divergence_factor > 1:
            raise OptionError(f"divergence_factor must be > 1, got {self.divergence_factor!r}")

    @classmethod
    def option_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}


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


def iterate(solver: FixedPointSolver, f: Map, x0: torch.Tensor, control: IterationControl):
    """Run ``solver`` on ``x = f(x)`` from ``x0`` (B, N) under ``control``.

    Returns ``(x, IterationStats)``.  Whether a graph is recorded is the caller's choice
    (``torch.no_grad()`` for implicit methods, enabled for unrolling).
    """
    counted = CountingMap(f)
    batch = x0.shape[0]
    device = x0.device
    fixed_steps = control.tol is None
    state = solver.init(counted, x0)
    active = torch.ones(batch, dtype=torch.bool, device=device)
    iterations = torch.zeros(batch, dtype=torch.long, device=device)
    final = torch.full((batch,), float("inf"), dtype=x0.dtype, device=device)
    # divergence is judged on the absolute step ‖x_{n+1} − x_n‖: under geometric
    # divergence the relative step stays constant while the absolute one grows
    step_best = torch.full((batch,), float("inf"), dtype=x0.dtype, device=device)
    step_final = torch.zeros(batch, dtype=x0.dtype, device=device)
    diverged = torch.zeros(batch, dtype=torch.bool, device=device)
    trace = []
    nan = torch.tensor(float("nan"), dtype=x0.dtype, device=device)
    for n in range(1, control.max_iter + 1):
        x_prev = state.x
        state.residual = None
        state = solver.step(counted, state)
        with torch.no_grad():
            absolute = state.residual if state.residual is not None else _norm(state.x.detach() - x_prev.detach())
            absolute = absolute.to(x0.dtype)
            res = absolute / (_norm(x_prev.detach()) + control.eps) if control.criterion == "relative" else absolute
        if not fixed_steps:
            state.x = torch.where(active.unsqueeze(1), state.x, x_prev)
        with torch.no_grad():
            trace.append(torch.where(active, res, nan))
            final = torch.where(active, res, final)
            iterations += active
            step_final = torch.where(active, absolute, step_final)
            step_best = torch.where(active, torch.minimum(step_best, absolute), step_best)
        if fixed_steps:
            continue
        if n % control.check_every == 0 or n == control.max_iter:
            with torch.no_grad():
                finite = torch.isfinite(res)
                blown = finite & (absolute > control.divergence_factor * step_best)
                diverged |= active & blown
                active = active & finite & ~(res < control.tol) & ~blown
            if not host_any(active):
                break
    with torch.no_grad():
        finite_x = torch.isfinite(state.x.detach()).all(dim=1)
        trace_t = torch.stack(trace).cpu() if trace else torch.empty(0, batch)
        final_c, iters_c = final.cpu(), iterations.cpu()
        grew = (step_final > control.divergence_factor**0.5 * step_best).cpu()
        diverged_c, finite_c, active_c = diverged.cpu(), finite_x.cpu(), active.cpu()
    status = []
    for i in range(batch):
        r = float(final_c[i])
        if not (finite_c[i] and torch.isfinite(final_c[i])):
            status.append(NONFINITE)
        elif fixed_steps:
            status.append(FIXED_STEPS)
        elif diverged_c[i]:
            status.append(DIVERGED)
        elif not active_c[i] and r < control.tol:
            status.append(CONVERGED)
        elif grew[i]:
            status.append(DIVERGED)  # the step length grew far above its minimum
        else:
            status.append(NOT_CONVERGED)
    stats = IterationStats(
        iterations=iters_c,
        residual=final_c,
        residual_trace=trace_t,
        status=status,
        nfev=counted.calls,
        solver=getattr(solver, "name", type(solver).__name__),
    )
    return state.x, stats
