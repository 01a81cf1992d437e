"""``FixedPointLayer`` (FPI_NN when g is a network, FPI_GD with :class:`EnergyStep`)."""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from ._fixed_point import Solution, build_methods, fixed_point


class FixedPointLayer(nn.Module):
    """x̂ = g(x̂, z; θ) as a layer: ``layer(z) -> x̂`` (Jeon, Lee & Choi 2021).

    ``g_module(x, z)`` returns the next iterate.  When g_module defines ``bind(z)``, the
    solve iterates the map it returns, g(·, z) with the work that depends on z alone (e.g.
    the input half of a linear layer on [x; z]) done once per solve instead of once per
    iteration.  The start x₀ is ``init(z)`` when given, else ``g_module.init_state(z)`` when
    g_module defines it, else ``zeros_like(z)`` (the paper starts from zero).  The last
    solve's stats are in ``layer.last_stats``.
    """

    def __init__(
        self,
        g_module: nn.Module,
        forward: str = "anderson",
        backward: str = "backward_fpi",
        tol: float = 1e-6,
        max_iter: int = 200,
        forward_options: Optional[dict] = None,
        backward_options: Optional[dict] = None,
        init: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
        batch: bool = True,
        strict: bool = False,
    ):
        super().__init__()
        build_methods(forward, backward, tol, max_iter, forward_options, backward_options)  # refuse bad options now
        self.g = g_module
        self.forward_method, self.backward_method = forward, backward
        self.tol, self.max_iter = tol, max_iter
        self.forward_options = dict(forward_options or {})
        self.backward_options = dict(backward_options or {})
        self.init = init
        self.batch, self.strict = batch, strict
        self.last_solution: Optional[Solution] = None
        #: what the gradient method keeps between solves (the previous adjoint, for warm_start)
        self.memory: dict = {}

    def initial_state(self, z: torch.Tensor) -> torch.Tensor:
        if self.init is not None:
            return self.init(z)
        if hasattr(self.g, "init_state"):
            return self.g.init_state(z)
        return torch.zeros_like(z)

    def map_for(self, z: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """The map the solve iterates for input z: ``g_module.bind(z)`` when defined, else g(·, z)."""
        if hasattr(self.g, "bind"):
            return self.g.bind(z)
        return lambda x: self.g(x, z)

    def forward(self, z: torch.Tensor, x0: Optional[torch.Tensor] = None) -> torch.Tensor:
        x0 = self.initial_state(z) if x0 is None else x0
        sol = fixed_point(
            self.map_for(z),
            x0,
            forward=self.forward_method,
            backward=self.backward_method,
            tol=self.tol,
            max_iter=self.max_iter,
            forward_options=self.forward_options,
            backward_options=self.backward_options,
            batch=self.batch,
            strict=self.strict,
            memory=self.memory,
        )
        # kept for inspection (stats, the fixed point); detached, so no autograd graph outlives the step
        self.last_solution = Solution(sol.value.detach(), sol.stats)
        return sol.value

    @property
    def last_stats(self):
        return None if self.last_solution is None else self.last_solution.stats

    def extra_repr(self) -> str:
        return f"forward={self.forward_method!r}, backward={self.backward_method!r}, tol={self.tol}, max_iter={self.max_iter}"
