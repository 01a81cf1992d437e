"""Naive unrolling: backpropagate through every recorded forward iteration.

Exact for the iterate actually returned (so it matches the implicit gradient once the
forward has converged), with memory that grows linearly with the number of iterations.
"""
from __future__ import annotations

from dataclasses import dataclass

from fpibench.extend import UnrolledGradient, register_backward


@register_backward("unroll")
@dataclass
class Unroll(UnrolledGradient):
    """Autograd through all forward iterations (no options)."""

    name = "unroll"
