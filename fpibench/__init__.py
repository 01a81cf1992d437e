"""fpibench: benchmark suite for implicit differentiation of fixed-point-iteration layers.

    sol = fpibench.fixed_point(g, x0, forward="anderson", backward="backward_fpi")
    sol.value, sol.stats
"""
import os as _os

# Installed, the top-level solvers/ folder is the subpackage fpibench/solvers; in a source
# checkout it sits beside this folder, so let it resolve as fpibench.solvers there too.
_checkout_solvers = _os.path.join(_os.path.dirname(_os.path.dirname(__file__)), "solvers", "__init__.py")
if not _os.path.isdir(_os.path.join(_os.path.dirname(__file__), "solvers")) and _os.path.isfile(_checkout_solvers):
    __path__.append(_os.path.dirname(_os.path.dirname(_checkout_solvers)))  # type: ignore[name-defined]

from ._batch import check_batch_independence
from ._energy import EnergyStep, energy_gradient
from ._fixed_point import Solution, fixed_point
from ._iterate import FixedPointSolver, IterationControl, IterationStats, SolverState, iterate
from ._layer import FixedPointLayer
from ._registry import BACKWARD, FORWARD, available_methods, register_backward, register_forward
from ._stats import BackwardStats, SolveStats
from .errors import (
    FixedPointError,
    FixedPointWarning,
    JacobianTooLargeError,
    OptionError,
    UnknownMethodError,
)
from .memory import saved_tensor_bytes
from . import data  # noqa: E402  (real data sets: readers, data directory, downloads)

__version__ = "0.1.0"

__all__ = [
    "fixed_point", "Solution", "FixedPointLayer", "check_batch_independence", "EnergyStep", "energy_gradient",
    "available_methods", "register_forward", "register_backward", "FORWARD", "BACKWARD",
    "FixedPointSolver", "SolverState", "IterationControl", "IterationStats", "iterate",
    "SolveStats", "BackwardStats", "saved_tensor_bytes",
    "FixedPointError", "FixedPointWarning", "JacobianTooLargeError", "OptionError", "UnknownMethodError",
]
