"""The asv benchmark suite of fpibench (see benchmarks/README.md).

Modules: ``probes`` (contractive_tanh probe: forward solver × gradient method × size and
contraction; time, peak memory, gradient error, iterations, VJPs, saved bytes) and
``tasks`` (one training step of the paper's tasks on their quick presets).  Shared
set-up lives in ``_common`` (no benchmarks there).
"""
