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
* ``cg`` / ``minres``: conjugate gradients / MINRES for symmetric Jacobians (FPI_GD), which
  refuse per sample (``nonsymmetric``, ``indefinite``) where their assumptions fail.
* ``implicit``: any of these solvers (every registered forward solver, ``gmres``, ``cg``,
  ``minres``) by name.

Every one starts from c₀ = 0 and counts one VJP per call of h.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from fpibench.extend import (
    FORWARD, GradientOptions, Integer, IterationControl, IterativeAdjoint, IterativeOptions, OptionError,
    declared, describe, option, register_backward,
)

from .gmres import GMRES
from .krylov import CG, MINRES
from .picard import Picard


#: solvers valid only on the (affine) adjoint problem, besides every registered forward solver
LINEAR_SOLVERS = {"gmres": GMRES, "cg": CG, "minres": MINRES}


def adjoint_solver(name: str) -> type:
    """The solver class named ``name``: a registered forward solver or a linear one."""
    if name in LINEAR_SOLVERS:
        return LINEAR_SOLVERS[name]
    return FORWARD.get(name)


def adjoint_solver_names() -> list[str]:
    return sorted(set(FORWARD.names()) | set(LINEAR_SOLVERS))


@register_backward("implicit")
@dataclass
class Implicit(IterativeOptions, IterativeAdjoint):
    """The implicit gradient with the adjoint (I − ∂g/∂x)ᵀc = ∇x̂L solved by any registered
    forward solver — or ``gmres`` — named by ``solver``, with that solver's own options.

    How to differentiate (implicitly, exact at every order) is kept apart from which solver
    solves the adjoint, as optimistix keeps its adjoint apart from its linear solver:
    ``backward="implicit", backward_options={"solver": "anderson", "m": 6, "tol": 1e-8}``.
    A solver's options are declared once, by the solver; the loop options (``tol``,
    ``max_iter``, ...) inherit the forward's.  ``backward_fpi``, ``anderson``, ``broyden``
    and ``gmres`` are this method with the solver fixed by the name.
    """

    solver: str = "picard"
    name = "implicit"
    #: the solver a named preset fixes (``None``: chosen by the ``solver`` option)
    fixed_solver: ClassVar[Optional[str]] = None

    def __post_init__(self):
        super().__post_init__()
        self._solver_options: dict = {}

    @classmethod
    def from_options(cls, options: dict, what: str) -> "Implicit":
        """Split ``options`` into the loop's and the solver's, refusing unknown names and
        checking every value (with this method named in the error)."""
        if not isinstance(options, dict):
            raise OptionError(f"options for {what} must be a dict, got {type(options).__name__}")
        options = dict(options)
        solver = cls.fixed_solver or options.pop("solver", "picard")
        if solver not in adjoint_solver_names():
            raise OptionError(f"{what}: option solver must be one of {', '.join(adjoint_solver_names())}, got {solver!r} ({type(solver).__name__})")
        loop_names = set(declared(IterativeOptions))
        solver_names = set(declared(adjoint_solver(solver)))
        accepted = sorted(loop_names | solver_names | (set() if cls.fixed_solver else {"solver"}))
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise OptionError(f"{what} does not take option(s) {', '.join(map(repr, unknown))}; it takes: {', '.join(accepted)}")
        method = cls(solver=solver, **{k: v for k, v in options.items() if k in loop_names})
        method._solver_options = {k: v for k, v in options.items() if k in solver_names}
        try:
            method.make_solver()
        except OptionError as exc:  # the solver's own check, reported under this method's name
            raise OptionError(f"{what}: {str(exc).split(': ', 1)[-1]}") from None
        return method

    @classmethod
    def describe_options(cls) -> dict:
        out = {}
        if cls.fixed_solver is None:
            out["solver"] = {"default": "picard", "constraint": f"one of {', '.join(adjoint_solver_names())}"}
        out.update(describe(adjoint_solver(cls.fixed_solver or "picard")))
        out.update(describe(IterativeOptions))
        return out

    def make_solver(self):
        return adjoint_solver(self.solver)(**self._solver_options)


@register_backward("backward_fpi", aliases=("rbp",))
@dataclass
class BackwardFPI(Implicit):
    """Backward FPI: c ← Jᵀc + ∇x̂L (optionally damped by ``beta``) until ‖Δc‖/‖c‖ < tol."""

    name = "backward_fpi"
    fixed_solver = "picard"


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
class AndersonAdjoint(Implicit):
    """Adjoint fixed point solved by Anderson acceleration (Anderson's options: ``m``, ``beta``, ``lam``)."""

    name = "anderson"
    fixed_solver = "anderson"


@register_backward("broyden")
@dataclass
class BroydenAdjoint(Implicit):
    """Adjoint fixed point solved by limited-memory Broyden (every Broyden option)."""

    name = "broyden"
    fixed_solver = "broyden"


@register_backward("gmres")
@dataclass
class GMRESAdjoint(Implicit):
    """(I − Jᵀ)c = ∇x̂L by restarted GMRES(``restart``) using only VJPs."""

    name = "gmres"
    fixed_solver = "gmres"


@register_backward("cg")
@dataclass
class CGAdjoint(Implicit):
    """(I − Jᵀ)c = ∇x̂L by conjugate gradients: for symmetric positive definite I − J (FPI_GD at
    a strict minimum of the energy); other samples get ``nonsymmetric`` / ``indefinite``."""

    name = "cg"
    fixed_solver = "cg"
    requires = "symmetric"


@register_backward("minres")
@dataclass
class MINRESAdjoint(Implicit):
    """(I − Jᵀ)c = ∇x̂L by MINRES: for symmetric I − J, definite or not (FPI_GD, also at a
    saddle of the energy); non-symmetric samples get ``nonsymmetric``."""

    name = "minres"
    fixed_solver = "minres"
    requires = "symmetric"
