"""Picard (damped fixed-point) iteration — the plain FPI of Jeon, Lee & Choi (2021).

    x_{n+1} = (1 − β) x_n + β g(x_n)

β = 1 is the paper's forward FPI layer.  Applied to the adjoint map
h(c) = (∂g/∂x)ᵀ c + ∇x̂L it is the paper's backward FPI (``backward_fpi``) and, run for a
fixed number of steps from c₀ = 0, the truncated Neumann series (``neumann``).
"""
from __future__ import annotations

from dataclasses import dataclass

from fpibench.extend import FixedPointSolver, Number, SolverState, option, register_forward


@register_forward("picard")
@dataclass
class Picard(FixedPointSolver):
    """Damped Picard iteration; ``beta`` is the mixing (damping) weight in (0, 1]."""

    beta: float = option(1.0, Number(0, 1))
    name = "picard"

    def step(self, f, state: SolverState) -> SolverState:
        fx = f(state.x)
        state.x = fx if self.beta == 1 else state.x + self.beta * (fx - state.x)
        return state
