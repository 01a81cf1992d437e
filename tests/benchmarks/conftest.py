"""pytest-benchmark micro-benchmarks: they share the probe set-up of the asv suite
(benchmarks/_common.py) and its thread setting (FPIBENCH_BENCH_THREADS, default 1)."""
import sys
from pathlib import Path

import pytest
import torch

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks._common import pin_threads  # noqa: E402


@pytest.fixture(autouse=True)
def _pinned_threads():
    """Time with the suite's thread count, then give the rest of the session torch's setting back."""
    threads = torch.get_num_threads()
    pin_threads()
    yield
    torch.set_num_threads(threads)
