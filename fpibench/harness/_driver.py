"""Run a sweep: skip finished cells, run the rest on an executor, write each cell's rows.

Executors: ``local`` with ``workers=0`` runs cells in this process; ``workers=N`` runs them
in N spawned processes at a time, one fresh process per cell (isolated peak RSS; a process
that dies fails only its own cell, see :mod:`._processes`); ``dask`` submits them to a
dask.distributed cluster (``scheduler`` address, or a LocalCluster of ``workers``
processes).  Workers return rows and the driver alone writes the store, so a remote cluster
needs no shared file system.  A cell that raises is logged under ``errors/`` and retried on
the next run; cells stored by this code are never run twice (a worker that shares the store
checks it before it starts, and the driver lets go of each dask result once stored, so a lost
worker makes dask recompute nothing already collected).  Cells stored by other code are run
again, the old file kept under ``superseded/``, unless ``reuse_stale`` (:mod:`._inventory`).
Training cells that run in this process, in a local pool or on a LocalCluster save a
checkpoint after every epoch under ``partial/`` and resume from it (:mod:`._checkpoint`); the
file goes when the cell is stored.
"""
from __future__ import annotations

import json
import os
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, List, Optional

from ..errors import OptionError
from ..results import ResultsError, provenance, write_cell
from ._cells import Cell
from ._checkpoint import checkpoint_path
from ._inventory import is_current, supersede, survey
from ._processes import run_isolated
from ._run import run_cell

EXECUTORS = ("local", "dask")
ALREADY_STORED = "already_stored"


@dataclass
class CellResult:
    cell: Cell
    status: str  # ok / not_converged / diverged / oom / skipped / error / done (already in the store)
    seconds: float = 0.0
    headline: Optional[float] = None
    error: str = ""
    made_by: str = ""  # for a stored cell kept although other code made it: that code


def run_job(cell_data, data_dir, repeats, threads, checkpoint=None, store=None, cells_at_once=1):
    """What a worker runs (module-level so every executor can serialise it).  With ``store`` (a
    store this worker shares) a cell already stored there by this code is not run again."""
    if store is not None and is_current(store, Cell.from_dict(cell_data)):
        return {ALREADY_STORED: True}
    return run_cell(cell_data, data_dir=data_dir, progress=False, repeats=repeats, checkpoint=checkpoint,
                    threads=threads, cells_at_once=cells_at_once)


def make_store(out_dir) -> Path:
    """The store's folder, created; a path that cannot be a folder is one clear error."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"cannot create the results store {out}: {exc.strerror or exc}") from None
    return out


def run_sweep(cells: Iterable[Cell], out_dir, executor: str = "local", workers: int = 0,
              scheduler: Optional[str] = None, data_dir: Optional[str] = None, progress: bool = True,
              repeats: int = 3, on_result: Optional[Callable[[CellResult], None]] = None,
              threads: Optional[int] = None, reuse_stale: bool = False, job: Callable = run_job) -> List[CellResult]:
    """Run every cell the store at ``out_dir`` does not hold from this code; returns one
    :class:`CellResult` per cell.

    ``threads``: torch CPU threads per cell (default: from the cell's size and its share of the
    cores, :mod:`._threads`).  ``reuse_stale``: keep cells stored by other code instead of
    running them again.  ``job``: what a worker calls, :func:`run_job` or a function with its
    signature that wraps it.
    """
    if executor not in EXECUTORS:
        raise OptionError(f"unknown executor {executor!r}; valid executors: {', '.join(EXECUTORS)}")
    if workers < 0:
        raise OptionError(f"workers must be >= 0, got {workers}")
    if scheduler and executor != "dask":
        raise OptionError("--scheduler is only used with --executor dask")
    cells = list(cells)
    out = make_store(out_dir)
    _record_plan(out / "sweep.json", cells)
    entries = survey(cells, out)
    kept = [e for e in entries if e.state == "stored" or (e.state == "stale" and reuse_stale)]
    results = [CellResult(e.cell, "done", made_by=e.code if e.state == "stale" else "") for e in kept]
    kept_ids = {e.cell.cell_id for e in kept}
    pending = [c for c in cells if c.cell_id not in kept_ids]
    prov = provenance()
    bar = _bar(len(cells), len(results), progress)

    def finish(cell: Cell, payload=None, error: str = "") -> None:
        if error:
            (out / "errors").mkdir(exist_ok=True)
            (out / "errors" / f"{cell.cell_id}.txt").write_text(error)
            result = CellResult(cell, "error", error=error.strip().splitlines()[-1])
        elif payload.get(ALREADY_STORED):
            result = CellResult(cell, "done")
        else:
            supersede(out, cell.cell_id)  # a cell made by other code: its file is kept, not overwritten
            write_cell(out, cell.cell_id, payload["rows"], {**prov, **payload["columns"]})
            result = CellResult(cell, payload["status"], payload["seconds"], payload["headline"])
        if result.status != "error":
            for stale in (out / "errors" / f"{cell.cell_id}.txt", checkpoint_path(out, cell.cell_id)):
                if stale.exists():
                    stale.unlink()
        results.append(result)
        bar.update(1)
        bar.set_postfix_str(f"{cell.task}/{cell.model}/{cell.backward}: {result.status}")
        if on_result is not None:
            on_result(result)

    def args(cell: Cell, checkpoint=True, cells_at_once=1) -> tuple:
        ckpt = str(checkpoint_path(out, cell.cell_id)) if checkpoint else None
        return (cell.to_dict(), data_dir, repeats, threads, ckpt, str(out) if checkpoint else None, cells_at_once)

    if executor == "local" and workers == 0:
        for cell in pending:
            bar.set_description(f"{cell.task}/{cell.model}/{cell.backward}")
            try:
                payload = run_cell(cell.to_dict(), data_dir=data_dir, progress=progress, repeats=repeats,
                                   checkpoint=str(checkpoint_path(out, cell.cell_id)), threads=threads)
            except Exception:
                finish(cell, error=traceback.format_exc())
            else:
                finish(cell, payload)
    elif executor == "local":
        by_id = {c.cell_id: c for c in pending}
        run_isolated(((c.cell_id, args(c, cells_at_once=workers)) for c in pending), job, workers,
                     lambda key, result=None, error="": finish(by_id[key], result, error))
    else:
        _run_dask(pending, scheduler, workers, finish, args, job)
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


def _run_dask(pending: List[Cell], scheduler, workers, finish, args, job) -> None:
    from distributed import Client, LocalCluster, as_completed as dask_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers or 2, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        # a LocalCluster shares this file system (checkpoints, the store check), a remote one need not
        local = not scheduler
        futures = {client.submit(job, *args(c, checkpoint=local, cells_at_once=workers or 2), pure=False,
                                 key=f"cell-{c.cell_id}"): c for c in pending}
        for fut in dask_completed(list(futures)):
            cell = futures.pop(fut)
            _collect(fut.result, cell, finish)
            fut.release()  # once stored, a result lost with its worker is not computed again
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
        secs = f"{r.seconds:.1f}" if r.status != "done" else "stale" if r.made_by else "stored"
        lines.append(f"{task[:22]:22s} {c.model:12s} {c.forward:9s} {c.backward:16s} {c.seed:4d} {r.status:14s} {value:>10s} {secs:>8s}")
        if r.error:
            lines.append(f"    error: {r.error}")
    return "\n".join(lines)
