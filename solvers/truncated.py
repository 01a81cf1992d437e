"""Truncated gradients from the fixed point: phantom gradients and Jacobian-free backprop.

* ``phantom`` (Geng et al. 2021, "On training implicit models"): k damped steps
  x ← (1−λ)x + λ g(x) from x̂ with the graph on; the gradient is that of the k-step map.
  With damping λ = 1 it equals k-step truncated unrolling started at x̂.
* ``jfb`` (Fung et al. 2022, "JFB: Jacobian-free backpropagation"): c = ∇x̂L, i.e.
  ∇θL = (∂g/∂θ)ᵀ ∇x̂L — exactly ``phantom`` with k = 1 (and λ = 1).
"""
from __future__ import annotations

from dataclasses import dataclass

from fpibench.extend import TruncatedGradient, TruncatedOptions, register_backward


@register_backward("phantom")
@dataclass
class Phantom(TruncatedOptions, TruncatedGradient):
    """Phantom gradient with ``steps`` damped steps (``damping`` λ)."""

    name = "phantom"
    exact = False


@register_backward("jfb")
@dataclass
class JFB(TruncatedGradient):
    """Jacobian-free backprop: one undamped step y = g(x̂) (no options)."""

    name = "jfb"
    exact = False
    steps = 1
    damping = 1.0
