"""Exceptions and warnings raised by fpibench.

Every failure is named: an unknown method, a bad option, a shape mismatch, a solve that
did not converge.  Nothing fails silently.
"""
from __future__ import annotations


class FixedPointError(RuntimeError):
    """A fixed-point solve failed and ``strict=True`` asked for an exception."""


class UnknownMethodError(ValueError):
    """A forward solver or gradient method name is not in the registry."""


class OptionError(TypeError):
    """An option a method does not take, or an option with an invalid value."""


class JacobianTooLargeError(MemoryError):
    """The dense Jacobian would exceed the memory budget; raised before allocating it."""

    def __init__(self, message: str, required_bytes: int, budget_bytes: int):
        super().__init__(message)
        self.required_bytes = int(required_bytes)
        self.budget_bytes = int(budget_bytes)


class FixedPointWarning(RuntimeWarning):
    """A forward or backward solve ended without converging (see the stats for which samples)."""


class PluginWarning(UserWarning):
    """A registered plugin (entry point ``fpibench.solvers``) failed to load and was skipped."""
