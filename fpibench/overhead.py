"""Harness overhead: a harness training cell against a hand-written loop doing the same work.

    python -m fpibench.overhead --out results/overhead [--repeats 7] [--cases NAME,...]
                                [--data-dir DIR] [--threads 1]

Goal: the harness costs at most 5% more wall time than the loop a researcher would
write for the same training.  Both sides are timed end to end with ``time.perf_counter`` —
task construction, data loading, model build, every epoch's training steps and evaluation:

* **harness**: ``run_cell(cell.to_dict(), data_dir)`` on a training :class:`~fpibench.harness.Cell`
  (``study=False``, no progress bar), i.e. the per-step synchronisation and timing, the FPI
  layers' ``last_stats`` bookkeeping, solve-status checks and row building;
* **hand**: :func:`hand_loop` — ``tasks.get``, ``build_model``, ``optimizer``, then per epoch
  loss / zero_grad / backward / clip / step over ``train_batches`` and ``evaluate``.

The two sides alternate in one process (the order flips every repeat) after one untimed
warm-up pair per case (lazy imports, allocator).  Ratio per case = median(harness) /
median(hand); the paired per-repeat ratios are reported too.  Same work is checked, not
assumed: every run's last-epoch mean train loss and headline metric must equal the first
hand run's to within 1e-6 relative (same seed and batches, deterministic CPU).
"""
from __future__ import annotations

import argparse
import gc
import math
import os
import shlex
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch

from .errors import FixedPointWarning, OptionError
from .harness import Cell, run_cell
from .harness._cells import NO_FPI

GOAL = 1.05  # harness / hand wall time
SAME_WORK_RTOL = 1e-6

#: Quick-preset training cells, a few epochs each (about 1–10 s on one thread).  The
#: feedforward cell has the cheapest step, so the harness bookkeeping weighs most there.
CASES: Dict[str, Cell] = {
    "box_constraint/fpi_nn": Cell("box_constraint", "fpi_nn", "anderson", "backward_fpi", epochs=2, study=False),
    "box_constraint/feedforward": Cell("box_constraint", "feedforward", NO_FPI, NO_FPI, epochs=40, study=False),
    "bibtex/fpi_nn": Cell("bibtex", "fpi_nn", "anderson", "backward_fpi", epochs=1, study=False),
    "denoise/fpi_nn": Cell("denoise", "fpi_nn", "anderson", "backward_fpi", task_options={"sigma": 25},
                           epochs=1, study=False),
}

RUN_COLUMNS = ("case", "side", "repeat", "order", "seconds", "cpu_seconds", "epochs", "final_train_loss", "metric",
               "final_metric", "git_commit", "fpibench_version", "torch_version", "cpu_name", "threads", "cores")
RATIO_COLUMNS = ("case", "harness_s", "hand_s", "ratio", "paired_ratio_median", "paired_ratio_min",
                 "paired_ratio_max", "cpu_ratio", "repeats", "goal", "met", "same_work", "max_rel_diff")


def select_cases(names: Sequence[str]) -> Dict[str, Cell]:
    """The cases called ``names`` (an unknown name raises :class:`OptionError` listing the valid ones)."""
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise OptionError(f"unknown case(s) {', '.join(map(repr, unknown))}; cases: {', '.join(CASES)}")
    return {n: CASES[n] for n in names}


def hand_loop(cell: Cell, data_dir=None) -> Dict[str, float]:
    """The training a researcher writes by hand for ``cell``; returns the last epoch's
    ``train_loss`` (mean over its batches) and the task's headline metric.

    Mirrors the harness's work and no more: ``model.eval()`` and ``evaluate`` (which runs under
    ``no_grad``) after every epoch, and the same silencing of :class:`FixedPointWarning`.
    """
    from . import tasks

    task = tasks.get(cell.task, preset=cell.preset, data_dir=data_dir, **cell.task_options)
    fpi = tasks.FPIConfig(forward=cell.forward, backward=cell.backward) if cell.has_fpi else tasks.FPIConfig()
    model = task.build_model(cell.model, fpi, seed=cell.seed)
    optimizer = task.optimizer(model)
    clip = task.clip_norm()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FixedPointWarning)
        for epoch in range(1, (cell.epochs or task.epochs) + 1):
            model.train()
            total, steps = 0.0, 0
            for batch in task.train_batches(epoch, cell.seed):
                loss = task.loss(model, batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                optimizer.step()
                total += loss.item()
                steps += 1
            model.eval()
            with torch.no_grad():
                metrics = task.evaluate(model)
    return {"train_loss": total / steps, "metric": task.metric, "value": metrics[task.metric]}


def harness_run(cell: Cell, data_dir=None) -> Dict[str, float]:
    """``run_cell`` on ``cell``; returns the last epoch's ``train_loss`` and headline metric from its rows."""
    result = run_cell(cell.to_dict(), data_dir=data_dir, progress=False)
    rows = [r for r in result["rows"] if r["kind"] == "train"]
    last = max(r["epoch"] for r in rows)
    final = {r["metric"]: r for r in rows if r["epoch"] == last}
    headline = next(r["metric"] for r in final.values() if r["headline"])
    return {"train_loss": final["train_loss"]["value"], "metric": headline, "value": final[headline]["value"]}


SIDES: Dict[str, Callable[[Cell, Optional[str]], Dict[str, float]]] = {"harness": harness_run, "hand": hand_loop}


def _timed(side: str, cell: Cell, data_dir) -> tuple:
    """(wall seconds, process CPU seconds, final metrics) of one run of ``side``."""
    gc.collect()
    cpu0, t0 = time.process_time(), time.perf_counter()
    out = SIDES[side](cell, data_dir)
    return time.perf_counter() - t0, time.process_time() - cpu0, out


def measure(cases: Dict[str, Cell], repeats: int = 5, data_dir=None, warmup: int = 1,
            log: Optional[Callable[[str], None]] = None):
    """Interleaved timings of both sides per case; returns the runs as a DataFrame (``RUN_COLUMNS``)."""
    import pandas as pd

    from . import __version__
    from .results import provenance

    prov = provenance()
    common = {"git_commit": prov["git_commit"], "fpibench_version": __version__, "torch_version": torch.__version__,
              "cpu_name": prov["cpu_name"], "threads": torch.get_num_threads(), "cores": os.cpu_count()}
    rows = []
    for name, cell in cases.items():
        for _ in range(warmup):
            for side in SIDES:
                _timed(side, cell, data_dir)
        for repeat in range(repeats):
            order = list(SIDES) if repeat % 2 == 0 else list(SIDES)[::-1]
            for position, side in enumerate(order):
                seconds, cpu_seconds, out = _timed(side, cell, data_dir)
                rows.append({"case": name, "side": side, "repeat": repeat, "order": position, "seconds": seconds,
                             "cpu_seconds": cpu_seconds,
                             "epochs": cell.epochs, "final_train_loss": out["train_loss"], "metric": out["metric"],
                             "final_metric": out["value"], **common})
                if log:
                    log(f"{name:28s} repeat {repeat} {side:8s} {seconds:8.3f} s  train_loss {out['train_loss']:.9g}  "
                        f"{out['metric']} {out['value']:.9g}")
    return pd.DataFrame(rows, columns=list(RUN_COLUMNS))


def _rel_diff(a: float, b: float) -> float:
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(b), 1e-300) if math.isfinite(a) and math.isfinite(b) else math.inf


def ratios(runs):
    """Per case: median seconds per side, their ratio, the paired ratios, the goal and the same-work check."""
    import pandas as pd

    out = []
    for case, group in runs.groupby("case", sort=False):
        seconds = {side: group[group["side"] == side].set_index("repeat")["seconds"] for side in SIDES}
        cpu = {side: statistics.median(group.loc[group["side"] == side, "cpu_seconds"]) for side in SIDES}
        paired = (seconds["harness"] / seconds["hand"]).dropna()
        harness_s, hand_s = statistics.median(seconds["harness"]), statistics.median(seconds["hand"])
        reference = group[group["side"] == "hand"].iloc[0]
        max_rel = max(max(_rel_diff(r.final_train_loss, reference.final_train_loss),
                          _rel_diff(r.final_metric, reference.final_metric)) for r in group.itertuples())
        ratio = harness_s / hand_s
        out.append({"case": case, "harness_s": harness_s, "hand_s": hand_s, "ratio": ratio,
                    "paired_ratio_median": statistics.median(paired), "paired_ratio_min": paired.min(),
                    "paired_ratio_max": paired.max(),
                    "cpu_ratio": cpu["harness"] / cpu["hand"], "repeats": len(paired), "goal": GOAL, "met": ratio <= GOAL,
                    "same_work": max_rel <= SAME_WORK_RTOL, "max_rel_diff": max_rel})
    return pd.DataFrame(out, columns=list(RATIO_COLUMNS))


def markdown(runs, ratio_frame, command: str, warmup: int = 1) -> str:
    """``README.md`` of the output folder: the ratio table, the machine and the command."""
    r0 = runs.iloc[0]
    lines = [
        "# Harness overhead over a hand-written training loop", "",
        f"Produced by `{command}` (code: `fpibench/overhead.py`).", "",
        f"**Machine.** {r0['cpu_name']}, {r0['cores']} cores (shared with other jobs), {r0['threads']} torch "
        f"thread(s), torch {r0['torch_version']}, fpibench {r0['fpibench_version']}, commit {str(r0['git_commit'])[:10]}.",
        "",
        f"**Method.** Per case {warmup} untimed warm-up pair(s), then {int(runs['repeat'].nunique())} repeats; in each the "
        "harness (`run_cell` on a quick-preset training `Cell`, `study=False`) and the hand loop "
        "(`fpibench.overhead.hand_loop`) run back to back in one process, the order flipping every repeat. "
        "Both are timed end to end (task, data, model, training steps, per-epoch evaluation). "
        "`ratio` = median harness s / median hand s (wall clock, the goal's measure); `paired` = the per-repeat "
        "ratios (median [min, max]); `CPU ratio` = the same as `ratio` for process CPU time.",
        "",
        "| case | epochs | harness s | hand s | ratio | paired median [min, max] | CPU ratio | goal | met | same work (max rel. diff) |",
        "|---|---:|---:|---:|---:|---|---:|---:|:---:|---|",
    ]
    epochs = runs.groupby("case")["epochs"].first()
    for r in ratio_frame.itertuples():
        lines.append(f"| {r.case} | {epochs[r.case]} | {r.harness_s:.3f} | {r.hand_s:.3f} | {r.ratio:.3f} | "
                     f"{r.paired_ratio_median:.3f} [{r.paired_ratio_min:.3f}, {r.paired_ratio_max:.3f}] | {r.cpu_ratio:.3f} | {r.goal:g} | "
                     f"{'yes' if r.met else 'no'} | {'yes' if r.same_work else 'NO'} ({r.max_rel_diff:.1e}) |")
    lines += [
        "",
        "**Same work.** Every run's last-epoch mean train loss and headline metric (`metric` column of "
        f"`overhead_cpu.csv`) is compared with the first hand run's; `same work` = all within {SAME_WORK_RTOL:g} relative.",
        "",
        "**Noise.** On a shared machine one run's time varies from one repeat to the next by more than the "
        "overhead measured here; the paired ratios' spread above shows by how much. `NOTES.md` (when present) "
        "holds a lower-noise per-step breakdown.",
        "",
        "Files: `overhead_cpu.csv` (every timed run), `ratios_cpu.csv` (the goal per case).", "",
    ]
    return "\n".join(lines)


def write(runs, ratio_frame, out_dir, command: str, warmup: int = 1) -> List[Path]:
    """Write ``overhead_cpu.csv``, ``ratios_cpu.csv`` and ``README.md``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "overhead_cpu.csv", out / "ratios_cpu.csv", out / "README.md"]
    runs.to_csv(paths[0], index=False)
    ratio_frame.to_csv(paths[1], index=False)
    paths[2].write_text(markdown(runs, ratio_frame, command, warmup))
    return paths


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the cases, write the tables; exit status 1 when some case's two sides did not do the same work."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m fpibench.overhead", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results/overhead", help="output folder (default results/overhead)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats per case (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed warm-up pairs per case (default 1)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--data-dir", default=None, help="data folder (default: $FPIBENCH_DATA or the user cache)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: the reference machine is a shared 2-core box)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1 or args.warmup < 0:
        parser.error("--repeats and --threads must be >= 1, --warmup >= 0")
    try:
        cases = select_cases([c for c in args.cases.split(",") if c])
    except OptionError as exc:
        parser.error(str(exc))
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        runs = measure(cases, repeats=args.repeats, data_dir=args.data_dir, warmup=args.warmup,
                       log=lambda msg: print(msg, file=sys.stderr, flush=True))
    finally:
        torch.set_num_threads(threads)
    ratio_frame = ratios(runs)
    command = shlex.join(["python", "-m", "fpibench.overhead", *argv])
    paths = write(runs, ratio_frame, args.out, command, args.warmup)
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(ratio_frame.to_string(index=False))
    print("\nwrote " + ", ".join(str(p) for p in paths))
    if not ratio_frame["same_work"].all():
        print("error: harness and hand loop did not do the same work for "
              + ", ".join(ratio_frame.loc[~ratio_frame["same_work"], "case"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
