"""Worker jobs for the executor tests: the real job, logged, and a cell that kills its process.

Imported by reference in spawned and dask worker processes (the tests put this folder on
PYTHONPATH).  ``RUN_LOG`` names a file that gets one line per start and per finished run.
"""
import os
import time
from pathlib import Path

from fpibench.harness._driver import ALREADY_STORED, run_job

CRASH_SEED = 13
RUN_LOG = "FPIBENCH_TEST_RUN_LOG"


def _log(line: str) -> None:
    with open(os.environ[RUN_LOG], "a") as fh:
        fh.write(line + "\n")


def crash_or_run(cell_data, data_dir, repeats, threads, checkpoint=None, store=None, cells_at_once=1):
    """Seed ``CRASH_SEED``: wait until the other cells are stored (with a store), then die."""
    seed = cell_data["seed"]
    _log(f"{seed} start")
    if seed == CRASH_SEED:
        if store is not None:
            deadline = time.time() + 60
            while len(list(Path(store, "cells").glob("*.parquet"))) < 2 and time.time() < deadline:
                time.sleep(0.1)
        os._exit(3)
    result = run_job(cell_data, data_dir, repeats, threads, checkpoint, store, cells_at_once)
    if not result.get(ALREADY_STORED):
        _log(f"{seed} ran")
    return result


def runs(log_path) -> list:
    path = Path(log_path)
    return path.read_text().splitlines() if path.exists() else []
