"""Implicit gradient methods that solve the adjoint fixed point c = (∂g/∂x)ᵀc + ∇x̂L.

* ``backward_fpi`` (alias ``rbp``): Picard iteration on the adjoint map to ``tol`` — the
  backward FPI layer of Jeon, Lee & Choi (2021), i.e. recurrent back-propagation
  (Almeida 1987; Pineda 1987; Liao et al. 2018).  Its backward is again a fixed-point
  solve, differentiated the same way, so derivatives of every order are exact.
* ``neumann``: c_K = Σ_{k<K} (Jᵀ)^k ∇x̂L, the truncated Neumann series with K ``terms``
  (Liao et al. 2018).  Identity: ``backward_fpi`` started at c₀ = 0 after K steps equals
  ``neumann`` with K terms (both are K Picard steps on h from 0).
* ``anderson`` / ``broyden``: the same adjoint fixed point solved with Anderson
  acceleration / limited-memory Broyden (Bai, Kolter & Koltun 2019).
* ``gmres``: the linear system (I − Jᵀ)c = ∇x̂L by restarted GMRES with VJPs only.

Every one starts from c₀ = 0 and counts one VJP per call of h.
"""
from __future__ import annotations

from dataclasses import dataclass

from fpibench.extend import GradientOptions, Integer, IterationControl, IterativeAdjoint, IterativeOptions, option, register_backward, same_as

from .anderson import Anderson
from .broyden import Broyden
from .gmres import GMRES
from .picard import Picard


@register_backward("backward_fpi", aliases=("rbp",))
@dataclass
class BackwardFPI(IterativeOptions, IterativeAdjoint):
    """Backward FPI: c ← Jᵀc + ∇x̂L (optionally damped by ``beta``) until ‖Δc‖/‖c‖ < tol."""

    beta: float = same_as(Picard, "beta")
    name = "backward_fpi"

    def make_solver(self):
        return Picard(beta=self.beta)


@register_backward("neumann")
@dataclass
class Neumann(GradientOptions, IterativeAdjoint):
    """Truncated Neumann series with ``terms`` terms: c = Σ_{k<K} (Jᵀ)^k ∇x̂L."""

    terms: int = option(20, Integer(1))
    name = "neumann"
    exact = False

    def make_solver(self):
        return Picard()

    def control(self, ctx):
        return IterationControl(tol=None, max_iter=self.terms)


@register_backward("anderson")
@dataclass
class AndersonAdjoint(IterativeOptions, IterativeAdjoint):
    """Adjoint fixed point solved by Anderson acceleration (window ``m``, mixing ``beta``, ridge ``lam``)."""

    m: int = same_as(Anderson, "m")
    beta: float = same_as(Anderson, "beta")
    lam: float = same_as(Anderson, "lam")
    name = "anderson"

    def make_solver(self):
        return Anderson(m=self.m, beta=self.beta, lam=self.lam)


@register_backward("broyden")
@dataclass
class BroydenAdjoint(IterativeOptions, IterativeAdjoint):
    """Adjoint fixed point solved by limited-memory Broyden (memory ``m``)."""

    m: int = same_as(Broyden, "m")
    step_size: float = same_as(Broyden, "step_size")
    name = "broyden"

    def make_solver(self):
        return Broyden(m=self.m, step_size=self.step_size)


@register_backward("gmres")
@dataclass
class GMRESAdjoint(IterativeOptions, IterativeAdjoint):
    """(I − Jᵀ)c = ∇x̂L by restarted GMRES(``restart``) using only VJPs."""

    restart: int = same_as(GMRES, "restart")
    name = "gmres"

    def make_solver(self):
        return GMRES(restart=self.restart)
