"""Peak memory of a block: CUDA ``max_memory_allocated`` on GPU, peak RSS growth on CPU.

On CPU the process's high-water mark (``VmHWM``) is reset through
``/proc/self/clear_refs`` after returning freed heap pages to the OS (``malloc_trim``), so
the growth of ``VmHWM`` over the resident size at entry is the block's own peak.  The
harness runs cells in worker processes, so this is the peak RSS of an isolated worker.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import math
from typing import Optional

import torch


def _status_bytes(key: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """``.bytes``: peak growth during the block (NaN where it cannot be measured); ``.kind``."""

    def __init__(self, kind: str):
        self.kind = kind  # "peak_cuda_bytes" or "peak_rss_bytes"
        self.bytes = math.nan


@contextlib.contextmanager
def peak_memory(device: torch.device):
    """Measure the peak memory growth of the block on ``device``."""
    device = torch.device(device)
    gc.collect()
    if device.type == "cuda":
        result = PeakMemory("peak_cuda_bytes")
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        yield result
        torch.cuda.synchronize(device)
        result.bytes = float(torch.cuda.max_memory_allocated(device) - start)
        return
    result = PeakMemory("peak_rss_bytes")
    ok = _reset_peak_rss()
    start = _status_bytes("VmRSS")
    yield result
    peak = _status_bytes("VmHWM")
    if ok and start is not None and peak is not None:
        result.bytes = float(max(peak - start, 0))


def synchronize(device: torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
