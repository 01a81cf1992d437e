"""How many torch CPU threads a cell uses by default: from the size of its work and the cores.

torch's own default (one thread per core) makes the small cells of this suite several times
slower on a small CPU: their operations are too small to split, and the threads wait on each
other and on whatever else shares the cores.  Measured on a shared 2-core CPU (median
training step, 1 vs 2 threads): box_constraint fpi_nn 8 vs 73-119 ms, bibtex fpi_nn 49 vs
250-1115 ms, denoise fpi_nn (quick) 161-237 vs 772-786 ms, a 64-dimensional probe cell
0.33 vs 1.5 s in all.

The rule: a cell's work per step is estimated as its parameters × the batch's samples × the
spatial positions of one sample (a convolution applies its weights at every pixel); a cell
gets one thread per :data:`WORK_PER_THREAD` multiply-adds, at most its share of the cores
(the cores this process may use ÷ the cells running at once) and at least one.  Every quick
cell gets one thread; a ``--threads`` value overrides the rule.  The count used is recorded
in the cell's ``threads`` column.
"""
from __future__ import annotations

import os
from typing import Iterable, Optional

import torch

#: multiply-adds per training step that justify one more thread (bibtex, 35M, runs best on one)
WORK_PER_THREAD = 100_000_000


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def step_work(parameters: int, batch: Optional[torch.Tensor]) -> int:
    """Multiply-adds of one step, roughly: parameters × samples × spatial positions per sample."""
    if batch is None or batch.dim() == 0:
        return parameters
    positions = 1
    for size in batch.shape[2:]:
        positions *= int(size)
    return parameters * int(batch.shape[0]) * positions


def default_threads(work: int, cells_at_once: int = 1, cores: Optional[int] = None) -> int:
    share = max(1, (cores or usable_cores()) // max(1, cells_at_once))
    return max(1, min(share, work // WORK_PER_THREAD))


def count(tensors: Iterable[torch.Tensor]) -> int:
    return sum(int(t.numel()) for t in tensors)


def first_tensor(batch) -> Optional[torch.Tensor]:
    """The first tensor of a batch (a tensor or a tuple of them): the model's input."""
    if isinstance(batch, torch.Tensor):
        return batch
    for item in batch or ():
        found = first_tensor(item) if isinstance(item, (tuple, list)) else item if isinstance(item, torch.Tensor) else None
        if found is not None:
            return found
    return None


def apply(requested: Optional[int], work: int, cells_at_once: int = 1) -> int:
    """Set torch's CPU threads to ``requested`` or the rule's choice; returns the count."""
    threads = requested or default_threads(work, cells_at_once)
    torch.set_num_threads(threads)
    return threads
