"""The public entry point: :func:`fixed_point` and its :class:`Solution`."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

import torch

from ._batch import check_batch_independence
from ._gradient import GradientMethod, SolveContext
from ._iterate import CONVERGED, FIXED_STEPS, FixedPointSolver, IterationControl
from ._registry import BACKWARD, FORWARD
from ._stats import SolveStats
from .errors import FixedPointError, FixedPointWarning, OptionError


@dataclass
class Solution:
    """``value``: the fixed point (differentiable); ``stats``: :class:`SolveStats`."""

    value: torch.Tensor
    stats: SolveStats


class _FlatMap:
    """g on flattened (B, N) tensors, checking that g keeps shape, dtype and device."""

    def __init__(self, g: Callable, shape: torch.Size, dtype: torch.dtype, device: torch.device):
        self.g, self.shape, self.dtype, self.device = g, shape, dtype, device

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.g(x.reshape(self.shape))
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"g(x) must return a tensor, got {type(out).__name__}")
        if out.shape != self.shape:
            raise ValueError(f"g(x) returned shape {tuple(out.shape)} but x has shape {tuple(self.shape)}; g must map x to a tensor of the same shape")
        if out.dtype != self.dtype:
            raise TypeError(f"g(x) returned dtype {out.dtype} but x has dtype {self.dtype}")
        if out.device != self.device:
            raise ValueError(f"g(x) returned a tensor on {out.device} but x is on {self.device}")
        return out.reshape(x.shape)


def _split_options(options: Optional[dict], what: str) -> tuple[dict, dict]:
    """``forward_options`` → (loop options, solver options)."""
    if options is None:
        return {}, {}
    if not isinstance(options, dict):
        raise OptionError(f"{what} must be a dict, got {type(options).__name__}")
    loop_names = IterationControl.forward_option_names()
    loop = {k: v for k, v in options.items() if k in loop_names}
    rest = {k: v for k, v in options.items() if k not in loop_names}
    return loop, rest


class Methods(NamedTuple):
    """A solve's configuration, every name resolved and every option checked."""

    forward: str
    backward: str
    control: IterationControl
    solver: FixedPointSolver
    method: GradientMethod


def build_methods(
    forward: str,
    backward: str,
    tol: Optional[float] = 1e-6,
    max_iter: int = 200,
    forward_options: Optional[dict] = None,
    backward_options: Optional[dict] = None,
) -> Methods:
    """Resolve the method names and check every option (raising :class:`OptionError` or
    :class:`UnknownMethodError` naming it); :func:`fixed_point`, :class:`FixedPointLayer`
    and the sweep validation all go through here."""
    forward_name, backward_name = FORWARD.resolve(forward), BACKWARD.resolve(backward)
    loop, solver_options = _split_options(forward_options, "forward_options")
    control = IterationControl(tol=tol, max_iter=max_iter, **loop)
    solver = FORWARD.create(forward_name, solver_options, shared=tuple(sorted(IterationControl.forward_option_names())))
    method = BACKWARD.create(backward_name, {} if backward_options is None else backward_options)
    method.check_forward(solver)
    return Methods(forward_name, backward_name, control, solver, method)


def fixed_point(
    g: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    forward: str = "anderson",
    backward: str = "backward_fpi",
    tol: float = 1e-6,
    max_iter: int = 200,
    forward_options: Optional[dict] = None,
    backward_options: Optional[dict] = None,
    batch: bool = True,
    strict: bool = False,
    memory: Optional[dict] = None,
) -> Solution:
    """Solve x̂ = g(x̂) from ``x0`` and return a :class:`Solution` whose value is differentiable.

    ``g`` closes over its inputs and parameters; gradients reach every tensor it depends
    on through the gradient method ``backward`` (see :func:`available_methods`).  ``g``
    may itself call ``torch.autograd.grad`` (FPI_GD layers).  With ``batch=True``
    dimension 0 of x indexes independent problems: convergence, solver state and
    Jacobians are per sample.  ``forward_options`` go to the forward solver (plus the loop
    options ``criterion``, ``check_every``, ``divergence_factor``, ``rounding_floor``);
    ``backward_options`` to the gradient method.  Every option is checked before the solve
    (:class:`OptionError` names the method, the option, its constraint and the value).
    ``strict=True`` raises :class:`FixedPointError` when the forward or backward solve fails
    instead of warning, and checks the batch contract at the solution with one VJP
    (:func:`check_batch_independence`: a g that mixes samples is refused).  ``memory``: a
    dict the caller keeps between solves (a layer does), where a method may keep state —
    the previous adjoint, for ``warm_start``.
    """
    if not callable(g):
        raise TypeError(f"g must be callable, got {type(g).__name__}")
    if not isinstance(x0, torch.Tensor):
        raise TypeError(f"x0 must be a torch.Tensor, got {type(x0).__name__}")
    if not x0.is_floating_point():
        raise TypeError(f"x0 must be a floating-point tensor, got dtype {x0.dtype}")
    if batch and x0.dim() < 1:
        raise ValueError("x0 must have a batch dimension (dim 0) when batch=True; pass batch=False for a single problem")
    if x0.numel() == 0:
        raise ValueError(f"x0 is empty (shape {tuple(x0.shape)})")
    if not bool(torch.isfinite(x0).all()):
        raise ValueError("x0 contains NaN or Inf")
    forward_name, backward_name, control, solver, method = build_methods(
        forward, backward, tol, max_iter, forward_options, backward_options
    )

    shape = x0.shape
    flat_shape = (shape[0], -1) if batch else (1, -1)
    f = _FlatMap(g, shape, x0.dtype, x0.device)
    x0_flat = x0.detach().reshape(flat_shape)
    stats = SolveStats(forward=None, forward_method=forward_name, backward_method=backward_name)  # type: ignore[arg-type]
    ctx = SolveContext(stats=stats, strict=strict, forward_control=control, forward_solver=solver, memory=memory)
    method.check_size(x0_flat)
    value = method.forward(f, x0_flat, ctx)
    _report_forward(stats, strict)
    if strict and batch:
        check_batch_independence(f, value)
    return Solution(value=value.reshape(shape), stats=stats)


def _report_forward(stats: SolveStats, strict: bool) -> None:
    bad = [s for s in stats.forward.status if s not in (CONVERGED, FIXED_STEPS)]  # fixed steps: what tol=None asks for
    if not bad:
        return
    counts = {s: bad.count(s) for s in sorted(set(bad))}
    residual = float(stats.forward.residual.max())
    msg = (
        f"forward solve ({stats.forward_method}) failed for {len(bad)}/{len(stats.forward.status)} samples: "
        f"{counts}; max residual {residual if math.isfinite(residual) else residual!s} after "
        f"{int(stats.forward.iterations.max())} iterations"
    )
    if strict:
        raise FixedPointError(msg)
    warnings.warn(msg, FixedPointWarning, stacklevel=3)
