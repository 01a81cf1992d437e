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

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
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
    too (otherwise ``not_converged``).  Steps below the rounding floor √ε·‖x_n‖ of the dtype
    count as that floor, so a solver that stalls at rounding level (float32 plateaus) and
    then moves by a small amount is not mistaken for a divergent one.
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


#: dtypes whose per-sample bookkeeping can live in numpy on the CPU
_HOST_DTYPES = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}


def iterate(solver: FixedPointSolver, f: Map, x0: torch.Tensor, control: IterationControl):
    """Run ``solver`` on ``x = f(x)`` from ``x0`` (B, N) under ``control``.

    Returns ``(x, IterationStats)``.  Whether a graph is recorded is the caller's choice
    (``torch.no_grad()`` for implicit methods, enabled for unrolling).

    Per iteration the loop only measures the step.  The per-sample decisions run at the
    convergence test (the active set changes only there); iteration counts, final residuals,
    smallest steps and divergence flags are read off the stacked traces once at the end.
    On the CPU the (B,)-vectors of this bookkeeping are numpy views of the step norms —
    a dozen tiny torch ops per iteration cost more than a small problem's map; on other
    devices they stay torch tensors on the device, so nothing synchronises but the test.
    """
    counted = CountingMap(f)
    batch = x0.shape[0]
    device = x0.device
    fixed_steps = control.tol is None
    relative = control.criterion == "relative"
    host = device.type == "cpu" and x0.dtype in _HOST_DTYPES
    state = solver.init(counted, x0)
    if host:
        active: Any = np.ones(batch, dtype=bool)
        step_best: Any = np.full(batch, np.inf, dtype=_HOST_DTYPES[x0.dtype])
    else:
        active = torch.ones(batch, dtype=torch.bool, device=device)
        step_best = torch.full((batch,), float("inf"), dtype=x0.dtype, device=device)
    # divergence is judged on the absolute step ‖x_{n+1} − x_n‖: under geometric
    # divergence the relative step stays constant while the absolute one grows.
    # step_best is the running smallest step, unmasked: only active samples read it.
    frozen = None  # torch mask of the samples still iterating, once one has stopped
    abs_trace: list = []
    scale_trace: list = []  # ‖x_n‖ per step; res = abs / (scale + eps) under the relative criterion
    floored_trace: list = []  # max(‖x_{n+1} − x_n‖, √ε‖x_n‖): the steps the divergence test compares
    floor = float(torch.finfo(x0.dtype).eps) ** 0.5 if x0.dtype.is_floating_point else 0.0
    need_scale = relative or not fixed_steps
    blocks: list = []  # (active during the block, its length) per convergence test
    last_check = n = 0
    for n in range(1, control.max_iter + 1):
        x_prev = state.x
        state.residual = None
        state = solver.step(counted, state)
        with torch.no_grad():  # no graph: the step norms need no detaching
            absolute = state.residual.detach() if state.residual is not None else _norm(state.x - x_prev)
            if absolute.dtype != x0.dtype:
                absolute = absolute.to(x0.dtype)
            if host:
                absolute = absolute.numpy()
            abs_trace.append(absolute)
            if need_scale:
                scale = _norm(x_prev.detach())
                if scale.dtype != x0.dtype:
                    scale = scale.to(x0.dtype)
                scale = scale.numpy() if host else scale
                scale_trace.append(scale)
                if not fixed_steps:
                    floored_trace.append(np.maximum(absolute, floor * scale) if host else torch.maximum(absolute, floor * scale))
        if fixed_steps:
            continue
        if frozen is not None:
            state.x = torch.where(frozen.unsqueeze(1), state.x, x_prev)
        if n % control.check_every == 0 or n == control.max_iter:
            # `active` was constant since the last test: fold the block of steps in at once
            if n - last_check == 1:
                block = floored_trace[-1]
            else:
                block = np.stack(floored_trace[last_check:]).min(axis=0) if host else torch.stack(floored_trace[last_check:]).amin(dim=0)
            blocks.append((active, n - last_check))
            with np.errstate(all="ignore"):  # NaN/inf steps are judged here, not warned about
                res = absolute / (scale_trace[-1] + control.eps) if relative else absolute
                step_best = np.minimum(step_best, block) if host else torch.minimum(step_best, block)
                # stop: converged (res < tol), non-finite, or blown up (step > factor × smallest)
                active = active & (res >= control.tol) & (res < float("inf")) & (absolute <= control.divergence_factor * step_best)
            last_check = n
            if not host_any(active):
                break
            if not host:
                frozen = active
            elif frozen is not None or not active.all():
                frozen = torch.from_numpy(active)
    with torch.no_grad():
        stack = (lambda seq: torch.from_numpy(np.stack(seq))) if host else torch.stack
        abs_t = stack(abs_trace)
        res_t = abs_t / (stack(scale_trace) + control.eps) if relative else abs_t
        if fixed_steps:
            iterations = torch.full((batch,), n, dtype=torch.long, device=res_t.device)
            active_c = torch.ones(batch, dtype=torch.bool)
        else:
            # a sample iterated through every block it was active in
            lengths = [length for _, length in blocks]
            if host:
                counts = (np.stack([a for a, _ in blocks]) * np.array(lengths)[:, None]).sum(axis=0)
                iterations, active_c = torch.from_numpy(counts.astype(np.int64)), torch.from_numpy(active)
            else:
                flags = torch.stack([a for a, _ in blocks]).long()
                iterations = (flags * torch.tensor(lengths, device=device).unsqueeze(1)).sum(dim=0)
                active_c = active.cpu()
        # per sample: the steps it took (NaN after it stopped), its last residual and step
        taken = torch.arange(1, n + 1, device=res_t.device).unsqueeze(1) <= iterations.unsqueeze(0)
        trace = torch.where(taken, res_t, torch.tensor(float("nan"), dtype=res_t.dtype, device=res_t.device))
        last = (iterations - 1).clamp_min(0).unsqueeze(0)
        final = trace.gather(0, last).squeeze(0)
        step_final = abs_t.gather(0, last).squeeze(0)
        floored_t = abs_t if fixed_steps else stack(floored_trace)
        smallest = torch.where(taken, floored_t, torch.tensor(float("inf"), dtype=abs_t.dtype, device=abs_t.device)).amin(dim=0)
        finite_res = torch.isfinite(final)
        # the test that stopped a sample ran at its last step, with the smallest step so far
        diverged = finite_res & (step_final > control.divergence_factor * smallest)
        grew = step_final > control.divergence_factor**0.5 * smallest
        finite_x = torch.isfinite(state.x.detach()).all(dim=1).to(final.device)
        trace_t, final_c, iters_c = trace.cpu(), final.cpu(), iterations.cpu()
        flags_l = torch.stack([finite_x & finite_res, diverged, grew]).cpu().tolist()
    finite_l, diverged_l, grew_l = flags_l
    active_l = active_c.tolist()
    final_l = final_c.tolist()
    status = []
    for i in range(batch):
        r = final_l[i]
        if not finite_l[i]:
            status.append(NONFINITE)
        elif fixed_steps:
            status.append(FIXED_STEPS)
        elif diverged_l[i]:
            status.append(DIVERGED)
        elif not active_l[i] and r < control.tol:
            status.append(CONVERGED)
        elif grew_l[i]:
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
