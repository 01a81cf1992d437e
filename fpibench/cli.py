"""The ``fpibench`` command (also ``python -m fpibench``).

    fpibench list                 tasks, forward solvers, gradient methods and their options
    fpibench run [--out DIR]      the default quick suite on real data, with a report

This is the first version of the harness: it trains each quick cell, records the task
metric per epoch, wall time per epoch and the FPI layer's forward/backward iterations, and
writes ``cells.csv`` and ``report.md`` under ``--out``.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import warnings
from pathlib import Path

DEFAULT_SUITE = [
    # (task, model, backward)
    ("box_constraint", "feedforward", "-"),
    ("box_constraint", "fpi_nn", "backward_fpi"),
    ("box_constraint", "fpi_nn", "unroll"),
    ("box_constraint", "fpi_nn", "jfb"),
    ("box_constraint", "fpi_nn", "anderson"),
    ("bibtex", "feedforward", "-"),
    ("bibtex", "fpi_nn", "backward_fpi"),
    ("bibtex", "fpi_nn", "jfb"),
]


def _list(args) -> int:
    import fpibench
    import fpibench.tasks as tasks

    methods = fpibench.available_methods()
    print("tasks:")
    for name in tasks.available():
        task = tasks.get(name)
        models = ", ".join(getattr(task, "models", ())) or "probe"
        print(f"  {name:18s} models: {models}")
    for kind in ("forward", "backward"):
        print(f"{kind} methods:")
        for name, options in methods[kind].items():
            print(f"  {name:18s} {json.dumps(options)}")
    return 0


def _run_cell(task_name, model_kind, backward, seed, data_dir):
    import torch

    import fpibench.tasks as tasks
    from fpibench.tasks import FPIConfig, fpi_layers

    task = tasks.get(task_name, preset="quick", data_dir=data_dir)
    fpi = FPIConfig(backward=backward if backward != "-" else "backward_fpi")
    model = task.build_model(model_kind, fpi, seed=seed)
    optimizer = task.optimizer(model)
    rows = []
    for epoch in range(1, task.epochs + 1):
        model.train()
        fwd_iters, bwd_iters, losses = [], [], []
        start = time.perf_counter()
        for batch in task.train_batches(epoch, seed):
            losses.append(task.train_step(model, optimizer, batch))
            for layer in fpi_layers(model):
                stats = layer.last_stats
                fwd_iters.append(float(stats.forward.iterations.double().mean()))
                if stats.backward is not None:
                    bwd_iters.append(float(stats.backward.iterations.double().mean()))
        elapsed = time.perf_counter() - start
        model.eval()
        with torch.no_grad():
            metrics = task.evaluate(model)
        rows.append({
            "task": task_name, "model": model_kind, "backward": backward, "seed": seed, "epoch": epoch,
            "train_loss": sum(losses) / len(losses), "epoch_seconds": elapsed,
            "forward_iterations": sum(fwd_iters) / len(fwd_iters) if fwd_iters else 0.0,
            "backward_iterations": sum(bwd_iters) / len(bwd_iters) if bwd_iters else 0.0,
            "metric": task.metric, "value": metrics[task.metric],
        })
    return rows


def _run(args) -> int:
    import torch

    import fpibench

    if args.data_dir:
        fpibench.data.set_data_dir(args.data_dir)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (task_name, model_kind, backward) in enumerate(DEFAULT_SUITE, 1):
        if not args.quiet:
            print(f"[{i}/{len(DEFAULT_SUITE)}] {task_name} {model_kind} {backward}", flush=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fpibench.FixedPointWarning)
            rows.extend(_run_cell(task_name, model_kind, backward, args.seed, args.data_dir))
    with open(out / "cells.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = ["# fpibench quick suite", "", f"torch {torch.__version__}, seed {args.seed}, quick presets.", "",
             "| task | model | gradient method | final metric | value | epoch time (s) | fwd iters | bwd iters |",
             "|---|---|---|---|---|---|---|---|"]
    finals = {}
    for r in rows:
        finals[(r["task"], r["model"], r["backward"])] = r
    for (t, m, b), r in finals.items():
        lines.append(f"| {t} | {m} | {b} | {r['metric']} | {r['value']:.4g} | {r['epoch_seconds']:.2f} | "
                     f"{r['forward_iterations']:.1f} | {r['backward_iterations']:.1f} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwrote {out / 'cells.csv'} and {out / 'report.md'}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fpibench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("list", help="tasks, forward solvers and gradient methods with their options")
    run = sub.add_parser("run", help="run the default quick suite on real data and write a report")
    run.add_argument("--out", default="results/quick", help="output folder (default results/quick)")
    run.add_argument("--data-dir", default=None, help="data directory (default $FPIBENCH_DATA or ~/.cache/fpibench)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "list":
        return _list(args)
    if args.command == "run":
        return _run(args)
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
