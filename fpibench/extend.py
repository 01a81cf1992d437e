"""The extension surface: everything a new forward solver, gradient method or task needs.

This module is the documented, stable way to extend fpibench; the built-in solvers in
``fpibench.solvers`` use nothing else.  Names not listed here (modules starting with ``_``)
may change without notice.

Forward solvers
    Subclass :class:`FixedPointSolver` as a dataclass whose fields are its options (declare
    each with :func:`option` and a check: :class:`Integer`, :class:`Number`, :class:`OneOf`,
    :class:`Flag`, :class:`OrNone`), implement ``init(f, x0) -> SolverState`` and
    ``step(f, state) -> state`` on a batch ``(B, N)``, and decorate with
    :func:`register_forward`.  The one loop (:func:`iterate`) owns convergence, statuses and
    statistics; :func:`write_slot` writes history buffers safely under unrolling.

Gradient methods
    :class:`AdjointGradient` subclasses implement ``adjoint(lin, v, ctx)`` solving
    (I − ∂g/∂x)ᵀc = v with the operator helper :class:`Linearisation` (``lin.vjp(c)``,
    ``lin.adjoint_map(v)``, ``lin.param_vjp(c)``); the machinery around it makes them exact
    at every order.  :class:`IterativeAdjoint` needs only ``make_solver()``.
    :class:`UnrolledGradient` and :class:`TruncatedGradient` backpropagate through recorded
    steps.  Declare ``exact`` (the exact implicit gradient up to the tolerance, or not),
    mix in :class:`GradientOptions` for checked options, and decorate with
    :func:`register_backward`; the test suite then runs every exact method through its
    gradient, higher-order and status checks.

Tasks
    Subclass :class:`Task` and decorate with :func:`register_task`.
"""
from __future__ import annotations

from ._gradient import (
    AdjointGradient,
    GradientMethod,
    IterativeAdjoint,
    IterativeOptions,
    Linearisation,
    SolveContext,
    TruncatedGradient,
    TruncatedOptions,
    UnrolledGradient,
)
from ._iterate import (
    CONVERGED,
    DIVERGED,
    FIXED_STEPS,
    NONFINITE,
    NOT_CONVERGED,
    FixedPointSolver,
    IterationControl,
    IterationStats,
    SolverState,
    iterate,
    write_slot,
)
from ._options import Flag, GradientOptions, Integer, Number, OneOf, OrNone, declared, describe, option, same_as
from ._registry import BACKWARD, FORWARD, register_backward, register_forward
from ._stats import BackwardStats
from .errors import JacobianTooLargeError, OptionError
from .tasks._base import Task, register_task

__all__ = [
    "AdjointGradient", "GradientMethod", "IterativeAdjoint", "IterativeOptions", "Linearisation", "SolveContext",
    "TruncatedGradient", "TruncatedOptions", "UnrolledGradient",
    "CONVERGED", "DIVERGED", "FIXED_STEPS", "NONFINITE", "NOT_CONVERGED",
    "FixedPointSolver", "IterationControl", "IterationStats", "SolverState", "iterate", "write_slot",
    "Flag", "GradientOptions", "Integer", "Number", "OneOf", "OrNone", "declared", "describe", "option", "same_as",
    "BACKWARD", "FORWARD", "register_backward", "register_forward", "BackwardStats",
    "JacobianTooLargeError", "OptionError", "Task", "register_task",
]
