"""Run a sweep: skip finished cells, run the rest on an executor, write each cell's rows.

Executors: ``local`` with ``workers=0`` runs cells in this process; ``workers=N`` runs them
in a pool of N spawned processes, one fresh process per cell (isolated peak RSS); ``dask``
submits them to a dask.distributed cluster (``scheduler`` address, or a LocalCluster of
``workers`` processes).  Workers return rows and the driver alone writes the store, so a
remote cluster needs no shared file system.  A cell that raises is logged under
``errors/`` and retried on the next run; finished cells are never run twice.  Training cells
that run in this process, in a local pool or on a LocalCluster save a checkpoint after every
epoch under ``partial/`` and resume from it (:mod:`._checkpoint`); the file goes when the cell
is stored.
"""
from __future__ import annotations

import json
import os
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, List, Optional

from ..errors import OptionError
from ..results import cell_done, provenance, write_cell
from ._cells import Cell
from ._checkpoint import checkpoint_path
from ._run import run_cell

EXECUTORS = ("local", "dask")


@dataclass
class CellResult:
    cell: Cell
    status: str  # ok / not_converged / diverged / oom / skipped / error / done (already in the store)
    seconds: float = 0.0
    headline: Optional[float] = None
    error: str = ""


def _job(cell_data, data_dir, repeats, threads, checkpoint=None):
    """What a worker runs (module-level so every executor can serialise it)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    return run_cell(cell_data, data_dir=data_dir, progress=False, repeats=repeats, checkpoint=checkpoint)


def run_sweep(cells: Iterable[Cell], out_dir, executor: str = "local", workers: int = 0,
              scheduler: Optional[str] = None, data_dir: Optional[str] = None, progress: bool = True,
              repeats: int = 3, on_result: Optional[Callable[[CellResult], None]] = None,
              threads: Optional[int] = None) -> List[CellResult]:
    """Run every cell not yet in the store at ``out_dir``; returns one :class:`CellResult` per cell.

    ``threads``: torch CPU threads per cell (default: torch's own in process; cores ÷ workers in a pool).
    """
    if executor not in EXECUTORS:
        raise OptionError(f"unknown executor {executor!r}; valid executors: {', '.join(EXECUTORS)}")
    if workers < 0:
        raise OptionError(f"workers must be >= 0, got {workers}")
    if scheduler and executor != "dask":
        raise OptionError("--scheduler is only used with --executor dask")
    cells = list(cells)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _record_plan(out / "sweep.json", cells)
    results = [CellResult(c, "done") for c in cells if cell_done(out, c.cell_id)]
    pending = [c for c in cells if not cell_done(out, c.cell_id)]
    prov = provenance()
    bar = _bar(len(cells), len(results), progress)

    def finish(cell: Cell, payload=None, error: str = "") -> None:
        if error:
            (out / "errors").mkdir(exist_ok=True)
            (out / "errors" / f"{cell.cell_id}.txt").write_text(error)
            result = CellResult(cell, "error", error=error.strip().splitlines()[-1])
        else:
            write_cell(out, cell.cell_id, payload["rows"], {**prov, **payload["columns"]})
            for stale in (out / "errors" / f"{cell.cell_id}.txt", checkpoint_path(out, cell.cell_id)):
                if stale.exists():
                    stale.unlink()
            result = CellResult(cell, payload["status"], payload["seconds"], payload["headline"])
        results.append(result)
        bar.update(1)
        bar.set_postfix_str(f"{cell.task}/{cell.model}/{cell.backward}: {result.status}")
        if on_result is not None:
            on_result(result)

    if executor == "local" and workers == 0:
        if threads:
            import torch

            torch.set_num_threads(threads)
        for cell in pending:
            bar.set_description(f"{cell.task}/{cell.model}/{cell.backward}")
            try:
                payload = run_cell(cell.to_dict(), data_dir=data_dir, progress=progress, repeats=repeats,
                                   checkpoint=str(checkpoint_path(out, cell.cell_id)))
            except Exception:
                finish(cell, error=traceback.format_exc())
            else:
                finish(cell, payload)
    elif executor == "local":
        import multiprocessing

        threads = threads or max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                 max_tasks_per_child=1) as pool:
            futures = {pool.submit(_job, c.to_dict(), data_dir, repeats, threads, str(checkpoint_path(out, c.cell_id))): c
                       for c in pending}
            for fut in as_completed(futures):
                _collect(fut.result, futures[fut], finish)
    else:
        _run_dask(pending, scheduler, workers, data_dir, repeats, finish, threads or 1, out)
    bar.close()
    order = {c.cell_id: i for i, c in enumerate(cells)}
    return sorted(results, key=lambda r: order[r.cell.cell_id])


def _record_plan(path: Path, cells: List[Cell]) -> None:
    """Add the sweep's cells to the store's plan (several sweeps may share one store)."""
    plan = json.loads(path.read_text()) if path.exists() else []
    known = {Cell.from_dict(c).cell_id for c in plan}
    plan += [c.to_dict() for c in cells if c.cell_id not in known]
    _write_json(path, plan)


def _collect(get, cell, finish) -> None:
    try:
        payload = get()
    except Exception as exc:
        finish(cell, error="".join(traceback.format_exception(exc)))
    else:
        finish(cell, payload)


def _run_dask(pending: List[Cell], scheduler, workers, data_dir, repeats, finish, threads, out: Path) -> None:
    from distributed import Client, LocalCluster, as_completed as dask_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers or 2, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        # a LocalCluster shares this file system, a remote one need not: checkpoints only locally
        ckpt = (lambda c: None) if scheduler else (lambda c: str(checkpoint_path(out, c.cell_id)))
        futures = {client.submit(_job, c.to_dict(), data_dir, repeats, threads, ckpt(c), pure=False,
                                 key=f"cell-{c.cell_id}"): c for c in pending}
        for fut in dask_completed(list(futures)):
            _collect(fut.result, futures[fut], finish)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)


class _NoBar:
    def update(self, n=1): pass
    def set_postfix_str(self, *a, **k): pass
    def set_description(self, *a, **k): pass
    def close(self): pass


def _bar(total, done, enabled):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc="cells", unit="cell", position=0)


def summary_table(results: List[CellResult]) -> str:
    """A plain-text table: one line per cell with status, headline value and seconds."""
    head = f"{'task':22s} {'model':12s} {'forward':9s} {'backward':16s} {'seed':>4s} {'status':14s} {'headline':>10s} {'seconds':>8s}"
    lines = [head, "-" * len(head)]
    for r in results:
        c = r.cell
        task = c.task + "".join(f" {k}={v}" for k, v in c.task_options.items())
        value = f"{r.headline:.4g}" if r.headline is not None else ""
        secs = f"{r.seconds:.1f}" if r.status != "done" else "stored"
        lines.append(f"{task[:22]:22s} {c.model:12s} {c.forward:9s} {c.backward:16s} {c.seed:4d} {r.status:14s} {value:>10s} {secs:>8s}")
        if r.error:
            lines.append(f"    error: {r.error[:150]}")
    return "\n".join(lines)
