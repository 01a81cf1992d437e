"""Statistics returned by every solve: ``sol.stats.forward`` and ``sol.stats.backward``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ._iterate import IterationStats


@dataclass
class BackwardStats(IterationStats):
    """Stats of the gradient computation; filled when backward runs.

    ``vjp_calls``/``jvp_calls`` count batched vector–Jacobian / Jacobian–vector products
    of g with respect to x (one call covers the whole batch).  ``calls`` counts how many
    times backward ran through this solution (e.g. ``retain_graph`` or higher order).
    """

    method: str = ""
    vjp_calls: int = 0
    jvp_calls: int = 0
    calls: int = 1

    @classmethod
    def from_iterations(cls, stats: IterationStats, method: str, vjp_calls: int, **changes) -> "BackwardStats":
        """Backward stats from the iteration stats of the solve (or replay) that produced c."""
        fields = dict(
            iterations=stats.iterations, residual=stats.residual, residual_trace=stats.residual_trace,
            status=stats.status, nfev=stats.nfev, solver=stats.solver,
        )
        fields.update(changes)
        return cls(method=method, vjp_calls=vjp_calls, **fields)

    def summary(self) -> dict:
        out = super().summary()
        out.update(method=self.method, vjp_calls=self.vjp_calls, jvp_calls=self.jvp_calls)
        return out


@dataclass
class SolveStats:
    """``forward``: :class:`IterationStats`; ``backward``: :class:`BackwardStats` or None until backward runs."""

    forward: IterationStats
    backward: Optional[BackwardStats] = None
    forward_method: str = ""
    backward_method: str = ""

    def record_backward(self, stats: BackwardStats) -> None:
        if self.backward is not None:
            stats.calls = self.backward.calls + 1
        self.backward = stats

    def as_dict(self) -> dict:
        out = {"forward": self.forward.summary(), "backward": None}
        if self.backward is not None:
            out["backward"] = self.backward.summary()
        return out

    def __getitem__(self, key: str):
        return getattr(self, key)
