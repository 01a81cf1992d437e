"""Run one cell and return its rows (long format); the driver writes them to the store.

A training cell records per epoch the task's metrics, train loss, epoch and step wall time
and the FPI layers' iterations, plus gradient-study rows at initialisation (epoch 0) and
after the last epoch.  A probe cell records the gradient study, its gradient-error curve
over backward budgets and its memory curve over forward iterations.  A cell that cannot run
(an explicit Jacobian that would not fit) yields one ``skipped`` row with the reason; running
out of memory yields ``oom`` rows; the sweep goes on either way.  With a ``checkpoint`` path
a training cell saves its state after every epoch and, when that file exists, resumes after
the last saved epoch (:mod:`._checkpoint`).  A cell lowers torch's CPU threads from its size
and the cores unless told how many (:mod:`._threads`); the process keeps that count (raising
it again would trip a torch/MKL fault, see :mod:`._threads`).
"""
from __future__ import annotations

import math
import statistics
import time
import warnings
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

import torch

from ..errors import FixedPointWarning, JacobianTooLargeError
from ..fingerprint import code_fingerprint, code_label
from ._cells import Cell
from ._memory import synchronize
from . import _checkpoint, _study, _threads

UNITS = {"psnr": "dB", "f1": "%", "mse": "MSE", "aepe": "px", "seconds": "s", "bytes": "bytes",
         "iterations": "iterations", "g_evals": "count", "vjp_calls": "count", "jvp_calls": "count",
         "unconverged_solves": "count", "train_loss": "loss"}


def unit_of(metric: str) -> str:
    for key, unit in UNITS.items():
        if key in metric:
            return unit
    return ""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when available else ``cpu``; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but no CUDA device is available")
    return device


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    from ..results import cpu_name

    return cpu_name()


class RowBuilder:
    def __init__(self):
        self.rows: List[Dict[str, Any]] = []

    def add(self, kind: str, metric: str, value, epoch: int = 0, status: str = "ok", reason: str = "",
            budget: float = math.nan) -> None:
        self.rows.append({"kind": kind, "metric": metric, "value": float(value) if value is not None else math.nan,
                          "epoch": int(epoch), "status": status, "reason": reason, "budget": float(budget),
                          "unit": unit_of(metric)})

    def add_many(self, kind, metrics: Dict[str, float], **kw) -> None:
        for metric, value in metrics.items():
            self.add(kind, metric, value, **kw)


def run_cell(cell_data: Dict[str, Any], data_dir: Optional[str] = None, progress: bool = False,
             repeats: int = 3, checkpoint: Optional[str] = None, threads: Optional[int] = None,
             cells_at_once: int = 1) -> Dict[str, Any]:
    """Run a cell (given as ``Cell.to_dict()``); returns ``{"rows", "columns", "status", "seconds"}``.

    ``columns`` are the cell-level columns (names, problem, provenance, times) every row gets.
    ``checkpoint``: a file for the training cell's per-epoch state (resumed from when it exists).
    ``threads``: torch CPU threads (default: chosen from the cell's size and the cores shared by
    ``cells_at_once`` cells).
    """
    cell = Cell.from_dict(cell_data)
    if data_dir is not None:
        from .. import data

        data.set_data_dir(data_dir)
    device = torch.device(resolve_device(cell.device))
    start, t0 = _now(), time.perf_counter()
    out = RowBuilder()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FixedPointWarning)
        try:
            sizing = (threads, cells_at_once)
            if cell.is_probe:
                task, dtype = _run_probe(cell, device, out, repeats, sizing)
            else:
                task, dtype = _run_training(cell, device, out, repeats, data_dir, progress, checkpoint, sizing)
        except JacobianTooLargeError as exc:
            task, dtype = None, ""
            out.rows = []
            out.add("train", "skipped", math.nan, status="skipped", reason=f"does not apply: {exc}")
        except (torch.cuda.OutOfMemoryError, MemoryError) as exc:
            task, dtype = None, ""
            out.rows = [r for r in out.rows if r["kind"] == "train"]
            out.add("train", "oom", math.nan, status="oom", reason=f"{type(exc).__name__}: {str(exc)[:300]}")
    headline = getattr(task, "metric", "") if task is not None else _headline(cell)
    higher = bool(getattr(task, "higher_is_better", True)) if task is not None else True
    units = getattr(task, "units", {}) if task is not None else {}
    for row in out.rows:
        row["headline"] = row["metric"] == headline
        row["higher_is_better"] = higher
        row["unit"] = units.get(row["metric"], row["unit"])  # a task's own metrics, in its units
    opts = cell.task_options
    columns = {
        "task": cell.task, "model": cell.model, "forward": cell.forward, "backward": cell.backward,
        "seed": cell.seed, "preset": cell.preset, "problem": cell.problem_label(),
        "k": float(opts.get("k", math.nan)), "sigma": float(opts.get("sigma", math.nan)) if not cell.is_probe else math.nan,
        "options": cell.options_json, "config_hash": cell.config_hash, "device": device.type,
        "device_name": _device_name(device), "dtype": dtype, "threads": torch.get_num_threads(),
        "code_fingerprint": code_fingerprint(),  # the code that ran the cell, wherever the worker was
        "start_time": start, "end_time": _now(),
    }
    statuses = {r["status"] for r in out.rows}
    status = next((s for s in ("skipped", "oom", "diverged", "not_converged") if s in statuses), "ok")
    return {"rows": out.rows, "columns": columns, "status": status, "seconds": time.perf_counter() - t0,
            "headline": _final_headline(out.rows)}


def _headline(cell: Cell) -> str:
    from ..tasks import _base

    cls = _base._TASKS.get(cell.task)
    return getattr(cls, "metric", "") or ""


def _final_headline(rows) -> Optional[float]:
    heads = [r for r in rows if r.get("headline") and r["kind"] == "train"]
    return heads[-1]["value"] if heads else None


# -- probes -----------------------------------------------------------------------------
def _run_probe(cell: Cell, device, out: RowBuilder, repeats: int, sizing):
    from ..tasks import get as get_task

    probe = get_task(cell.task, preset=cell.preset, **{**cell.task_options, "device": str(device)})
    instance = probe.instance(cell.seed)
    _threads.apply(sizing[0], _threads.step_work(_threads.count(instance.leaves.values()), instance.x0), sizing[1])
    fopts = dict(cell.forward_options)
    tol = fopts.pop("tol", 1e-10 if instance.x0.dtype == torch.float64 else 1e-6)
    max_iter = fopts.pop("max_iter", 500)
    problem = _study.ProbeProblem(instance, cell.forward, fopts, tol, max_iter, cell.seed)
    reference = problem.reference()
    metrics, status, note = _study.measure(problem, cell.backward, cell.backward_options, repeats, reference)
    out.add_many("gradient", metrics, status=status, reason=note)
    if cell.study:
        for budget, m, st in _study.gradient_curve(problem, cell.backward, cell.backward_options, reference=reference):
            out.add_many("gradient_curve", m, status=st, budget=budget)
        for budget, m, st in _study.memory_curve(problem, cell.backward, cell.backward_options):
            out.add_many("memory_curve", m, status=st, budget=budget)
    return probe, str(instance.x0.dtype).replace("torch.", "")


# -- training ---------------------------------------------------------------------------
def _study_rows(task, model, batch, cell: Cell, epoch: int, out: RowBuilder, repeats: int, curves: bool) -> None:
    """The gradient study at this parameter state.  When it raises on the model as trained
    (e.g. its float64 reference solve ends in NaN and the loss rejects it), the error goes
    into a ``failed`` gradient row and the cell's training rows are kept."""
    problem = _study.TaskProblem(task, model, batch)
    try:
        reference = problem.reference()
        metrics, status, note = _study.measure(problem, cell.backward, cell.backward_options, repeats, reference,
                                               unrolled_reference=problem.unrolled_reference)
    except (RuntimeError, ValueError) as exc:  # FixedPointError is a RuntimeError
        reason = f"gradient study failed: {type(exc).__name__}: {exc}"[:300]
        out.add_many("gradient", {"grad_rel_error": math.nan, "grad_cosine": math.nan}, epoch=epoch,
                     status="failed", reason=reason)
        return
    out.add_many("gradient", metrics, epoch=epoch, status=status, reason=note)
    if curves:
        for budget, m, st in _study.gradient_curve(problem, cell.backward, cell.backward_options, reference=reference):
            out.add_many("gradient_curve", m, epoch=epoch, status=st, budget=budget)
        for budget, m, st in _study.memory_curve(problem, cell.backward, cell.backward_options):
            out.add_many("memory_curve", m, epoch=epoch, status=st, budget=budget)


def _run_training(cell: Cell, device, out: RowBuilder, repeats: int, data_dir, progress: bool,
                  checkpoint: Optional[str] = None, sizing=(None, 1)):
    from ..tasks import FPIConfig, fpi_layers, get as get_task
    from ._study import _floating_to, solve_status

    task = get_task(cell.task, preset=cell.preset, data_dir=data_dir, **cell.task_options)
    fpi = FPIConfig(forward=cell.forward, backward=cell.backward, forward_options=dict(cell.forward_options),
                    backward_options=dict(cell.backward_options)) if cell.has_fpi else FPIConfig()
    model = task.build_model(cell.model, fpi, seed=cell.seed).to(device)
    if device.type != "cpu":
        task._data = _floating_to(task.data, None, device)
    optimizer = task.optimizer(model)
    epochs = cell.epochs or task.epochs
    layers = fpi_layers(model)
    study = cell.study and bool(layers)
    sample = task.probe_batch(cell.seed)  # seeded by its own generator: no global RNG is drawn
    work = _threads.step_work(_threads.count(model.parameters()), _threads.first_tensor(sample))
    _threads.apply(sizing[0], work, sizing[1])
    probe_batch = _floating_to(sample, None, device) if study else None
    state = _checkpoint.load(checkpoint, cell.config_hash) if checkpoint else None
    first, elapsed, made_by = 1, 0.0, None
    if state is not None:
        _checkpoint.restore(state, model, optimizer)
        out.rows = list(state["rows"])
        first, elapsed = state["epoch"] + 1, state["elapsed"]
        out.add("train", "resumed_after_epoch", state["epoch"], epoch=first,
                reason=f"resumed from a checkpoint written after epoch {state['epoch']} by "
                       f"{code_label(state.get('code_fingerprint'), state['commit'])}")
    elif study:
        _study_rows(task, model, probe_batch, cell, 0, out, repeats, curves=True)
    bar = _progress(epochs, f"{cell.task}/{cell.model}/{cell.backward}", progress)
    bar.update(first - 1)
    # On CPU the batch is already in place and there is nothing to synchronise: skipping both
    # calls saves ~25 us per step (4% of a feedforward box_constraint step; fpibench.overhead).
    on_cpu = device.type == "cpu"
    for epoch in range(first, epochs + 1):
        model.train()
        losses, steps, fwd_its, bwd_its, unconverged, worst = [], [], [], [], 0, "ok"
        for batch in task.train_batches(epoch, cell.seed):
            if not on_cpu:
                batch = _floating_to(batch, None, device)
                synchronize(device)
            t0 = time.perf_counter()
            losses.append(task.train_step(model, optimizer, batch))
            if not on_cpu:
                synchronize(device)
            steps.append(time.perf_counter() - t0)
            stats = [layer.last_stats for layer in layers if layer.last_stats is not None]
            for s in stats:
                fwd_its.append(float(s.forward.iterations.double().mean()))
                if s.backward is not None:
                    bwd_its.append(float(s.backward.iterations.double().mean()))
            st = solve_status(stats)
            unconverged += st != "ok"
            if st == "diverged" or not math.isfinite(losses[-1]):
                worst = "diverged"
            elif st == "not_converged" and worst == "ok":
                worst = "not_converged"
        elapsed += sum(steps)
        model.eval()
        metrics = task.evaluate(model)
        for name, value in metrics.items():
            out.add("train", name, value, epoch=epoch, status=worst)
        mean = lambda xs: sum(xs) / len(xs) if xs else math.nan  # noqa: E731
        out.add_many("train", {
            "train_loss": mean(losses), "epoch_seconds": sum(steps), "elapsed_seconds": elapsed,
            "step_seconds": statistics.median(steps), "forward_iterations_mean": mean(fwd_its),
            "backward_iterations_mean": mean(bwd_its), "unconverged_solves": unconverged,
        }, epoch=epoch, status=worst)
        if checkpoint:
            if made_by is None:
                from ..results import provenance

                made_by = provenance()
            _checkpoint.save(checkpoint, config_hash=cell.config_hash, epoch=epoch, model=model, optimizer=optimizer,
                             rows=out.rows, elapsed=elapsed, commit=made_by["git_commit"],
                             code_fingerprint=made_by["code_fingerprint"])
        bar.update(1)
        bar.set_postfix({task.metric: f"{metrics.get(task.metric, math.nan):.4g}"})
    bar.close()
    if study:
        model.train()  # the study differentiates the training loss (evaluation left it in eval mode)
        _study_rows(task, model, probe_batch, cell, epochs, out, repeats, curves=False)
    return task, str(next(model.parameters()).dtype).replace("torch.", "")


class _NoBar:
    def update(self, n=1): pass
    def set_postfix(self, *a, **k): pass
    def close(self): pass


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="epoch", leave=False, position=1)
