"""Executors under failure: a worker process that dies fails only its own cell; a lost dask
worker recomputes no stored cell and leaves no checkpoint; default CPU threads per cell."""
import os
import sys
from pathlib import Path

import pytest
import torch

from fpibench import results
from fpibench.harness import Cell, expand_sweep, run_cell, run_sweep
from fpibench.harness import _threads

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import crash_jobs  # noqa: E402


@pytest.fixture
def run_log(tmp_path, monkeypatch):
    log = tmp_path / "runs.log"
    monkeypatch.setenv(crash_jobs.RUN_LOG, str(log))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    return log


def _probes(seeds):
    return expand_sweep({"task": "contractive_tanh", "backward": "jfb", "seeds": list(seeds),
                         "task_options": {"k": 0.5, "dim": 4, "batch": 2}, "study": False})


def test_a_dying_worker_fails_only_its_own_cell_after_a_bounded_retry(tmp_path, run_log):
    cells = _probes([0, crash_jobs.CRASH_SEED, 1, 2])
    out = run_sweep(cells, tmp_path / "store", workers=2, progress=False, repeats=1, job=crash_jobs.crash_or_run)
    status = {r.cell.seed: r for r in out}
    assert [status[s].status for s in (0, 1, 2)] == ["ok"] * 3
    crashed = status[crash_jobs.CRASH_SEED]
    assert crashed.status == "error"
    assert "worker process running this cell died (exit code 3) in each of 2 attempts" in crashed.error
    log = crash_jobs.runs(run_log)
    assert log.count(f"{crash_jobs.CRASH_SEED} start") == 2
    assert sorted(line for line in log if line.endswith("ran")) == ["0 ran", "1 ran", "2 ran"]
    assert set(results.load(tmp_path / "store")["seed"]) == {0, 1, 2}
    assert (tmp_path / "store" / "errors" / f"{crashed.cell.cell_id}.txt").is_file()


@pytest.mark.slow
def test_a_killed_dask_worker_recomputes_no_stored_cell_and_leaves_no_checkpoint(tmp_path, run_log):
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")
    training = [Cell("box_constraint", "fpi_nn", "anderson", "jfb", seed=s, epochs=1, study=False,
                     task_options={"n_train": 100}) for s in (0, 1)]
    cells = training + _probes([crash_jobs.CRASH_SEED])
    store = tmp_path / "store"
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        out = run_sweep(cells, store, executor="dask", workers=1, progress=False, repeats=1, job=crash_jobs.crash_or_run)
    assert [r.status for r in out[:2]] == ["ok", "ok"]
    assert out[2].status == "error" and "KilledWorker" in out[2].error
    log = crash_jobs.runs(run_log)
    assert sorted(line for line in log if line.endswith("ran")) == ["0 ran", "1 ran"]  # each stored cell ran once
    assert not any((store / "partial").glob("*"))  # no checkpoint of a recomputed stored cell


def test_a_worker_sharing_the_store_does_not_run_a_cell_stored_by_this_code(tmp_path, run_log):
    from fpibench.harness._driver import ALREADY_STORED, run_job

    (cell,) = _probes([0])
    run_sweep([cell], tmp_path, progress=False, repeats=1)
    assert run_job(cell.to_dict(), None, 1, None, None, str(tmp_path)) == {ALREADY_STORED: True}


def test_the_default_threads_follow_the_work_and_the_cores():
    assert _threads.default_threads(work=100_000, cores=2) == 1  # a box_constraint step
    assert _threads.default_threads(work=35_000_000, cores=2) == 1  # a bibtex step
    assert _threads.default_threads(work=10 * _threads.WORK_PER_THREAD, cores=16) == 10
    assert _threads.default_threads(work=10 * _threads.WORK_PER_THREAD, cores=16, cells_at_once=4) == 4
    assert _threads.default_threads(work=10 * _threads.WORK_PER_THREAD, cores=1) == 1
    batch = torch.zeros(8, 1, 64, 64)
    assert _threads.step_work(900, batch) == 900 * 8 * 64 * 64


def test_a_small_cell_runs_on_one_thread_and_restores_the_callers_count():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        (cell,) = _probes([0])
        assert run_cell(cell.to_dict(), repeats=1)["columns"]["threads"] == 1
        assert run_cell(cell.to_dict(), repeats=1, threads=2)["columns"]["threads"] == 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
