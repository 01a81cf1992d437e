"""The ``fpibench`` command (also ``python -m fpibench``).

    fpibench list                          tasks, models, presets, solvers, gradient methods, options
    fpibench run                           the default quick suite on real data, then its report
    fpibench run --task bibtex --model fpi_nn,fpi_gd --backward backward_fpi,unroll --seeds 0-2
    fpibench run --sweep sweep.toml        a sweep file (TOML or YAML)
    fpibench report DIR                    markdown report + PNG/SVG figures from a results store

``run`` resumes: cells already in ``--out`` from this code are skipped, so an interrupted
sweep continues where it stopped; cells stored by other code are run again (``--reuse-stale``
keeps them).  The default store ``runs/quick`` is a fresh one of your own (git ignores it);
the committed ``results/quick`` is what the maintainers ran.  Exit status 1 when a cell
raised (its traceback is in ``OUT/errors/``), 2 when the command is refused before running.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

#: Where ``fpibench run`` writes by default: a store of one's own, not the committed results/quick.
DEFAULT_OUT = "runs/quick"
#: The README's main job: a few minutes on a 2-core CPU, real data, every kind of row.
PROBE_METHODS = ["backward_fpi", "neumann", "anderson", "broyden", "gmres", "jacobian_inverse", "unroll", "jfb", "phantom"]
DEFAULT_SUITE = {
    "preset": "quick",
    "seeds": [0],
    "grid": [
        {"task": "box_constraint", "model": "feedforward"},
        {"task": "box_constraint", "model": "fpi_nn", "forward": "anderson",
         "backward": ["backward_fpi", "unroll", "jfb", "anderson"]},
        {"task": "bibtex", "model": "feedforward"},
        {"task": "bibtex", "model": "fpi_nn", "forward": "anderson", "backward": ["backward_fpi", "jfb"]},
        {"task": "denoise", "model": ["feedforward", "fpi_nn"], "forward": "anderson", "backward": "backward_fpi",
         "task_options": {"sigma": 25}, "study": False},
        {"task": "contractive_tanh", "forward": "anderson", "backward": PROBE_METHODS,
         "task_options": {"k": [0.5, 0.9], "dim": 64, "batch": 16}},
    ],
}


def _list(args) -> int:
    import dataclasses

    import fpibench
    import fpibench.tasks as tasks
    from fpibench.harness._sweep import is_probe_task, task_models

    print("tasks (fpibench run --task NAME --model M --option key=value):")
    for name in tasks.available():
        task = tasks.get(name)
        options = {f.name: getattr(task.config, f.name) for f in dataclasses.fields(task.config)}
        kind = "probe (gradient study, exact reference)" if is_probe_task(name) else f"headline metric {task.metric}"
        print(f"  {name:18s} models: {', '.join(task_models(name))}; presets: {', '.join(task.PRESETS)}; {kind}")
        print(f"  {'':18s} options: {json.dumps(options, default=str)}")
        ranges = {k: str(v) for k, v in task.OPTION_RANGES.items() if k in options}
        print(f"  {'':18s} ranges: {json.dumps(ranges)} (other numbers >= 0)")
    methods = fpibench.available_methods()
    for kind, flag in (("forward", "--forward"), ("backward", "--backward")):
        print(f"{kind} methods ({flag} NAME, {flag}-option key=value):")
        for name, options in methods[kind].items():
            print(f"  {name:18s} {json.dumps(options, default=str)}")
    return 0


def _spec_from_flags(args) -> dict:
    from fpibench.harness import parse_list, parse_options, parse_seeds

    grid = {}
    for key in ("task", "model", "forward", "backward", "preset", "device"):
        value = parse_list(getattr(args, key))
        if value is not None:
            grid[key] = value
    if args.seeds is not None:
        grid["seeds"] = parse_seeds(args.seeds)
    for key, attr, flag in (("task_options", "option", "--option"), ("forward_options", "forward_option", "--forward-option"),
                            ("backward_options", "backward_option", "--backward-option")):
        opts = parse_options(getattr(args, attr), flag)
        if opts:
            grid[key] = opts
    if args.epochs is not None:
        grid["epochs"] = args.epochs
    if args.no_study:
        grid["study"] = False
    return grid


def _list_cells(entries, out, notice: str) -> None:
    """``--dry-run``: each cell with what the store at ``out`` has of it, then the counts."""
    from fpibench.harness._inventory import counts

    for entry in entries:
        print(entry.line())
    if notice:
        print(notice)
    print(f"{len(entries)} cells: " + ", ".join(f"{n} {k}" for k, n in counts(entries).items()) + f" (store {out})")


def _run(args) -> int:
    import fpibench
    from fpibench.harness import SweepError, expand_sweep, load_sweep_file, resolve_device, run_sweep, summary_table
    from fpibench.harness._driver import make_store
    from fpibench.harness._inventory import stale_notice, survey
    from fpibench.harness._preflight import check_data

    if args.data_dir:
        fpibench.data.set_data_dir(args.data_dir)
    device = resolve_device(args.device)
    flags = _spec_from_flags(args)
    flags.pop("device", None)
    if args.sweep:
        cells = load_sweep_file(args.sweep)
        if flags:
            raise SystemExit(f"fpibench run: use either --sweep or grid flags, not both (got {sorted(flags)})")
    elif flags:
        if "task" not in flags:
            raise SystemExit("fpibench run: --task is required when other grid flags are given")
        cells = expand_sweep({**flags, "device": device})
    else:
        cells = expand_sweep({**DEFAULT_SUITE, "device": device})
    if args.sweep:
        from dataclasses import replace

        cells = [replace(c, device=device) if args.device != "auto" or c.device == "cpu" else c for c in cells]
    if not cells:
        raise SweepError("the sweep has no cells")
    entries = survey(cells, args.out)
    notice = stale_notice(entries, args.out, args.reuse_stale)
    if args.dry_run:
        _list_cells(entries, args.out, notice)
        return 0
    check_data(cells, args.data_dir)
    make_store(args.out)
    start = time.perf_counter()
    if notice:
        print(notice, flush=True)
    if not args.quiet:
        print(f"fpibench run: {len(cells)} cells -> {args.out} (executor {args.executor}, workers {args.workers}, device {device})",
              flush=True)
    results = run_sweep(cells, args.out, executor=args.executor, workers=args.workers, scheduler=args.scheduler,
                        data_dir=args.data_dir, progress=not args.quiet, repeats=args.repeats,
                        threads=args.threads, reuse_stale=args.reuse_stale)
    elapsed = time.perf_counter() - start
    print(summary_table(results))
    ran = sum(r.status != "done" for r in results)
    kept = sum(bool(r.made_by) for r in results)
    print(f"\n{ran} cells run, {len(results) - ran} already stored"
          + (f" ({kept} of them made by other code, kept by --reuse-stale)" if kept else "")
          + f", {elapsed:.0f} s; store: {args.out}")
    if not args.no_report:
        from fpibench.report import build_report

        path = build_report(args.out)
        print(f"report: {path}")
    if args.compare:
        from fpibench.harness._compare import compare_stores

        print(compare_stores(args.out, args.compare))
    return 1 if any(r.status == "error" for r in results) else 0


def _report(args) -> int:
    from fpibench.report import build_report

    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    path = build_report(args.results, out_dir=args.out, formats=formats)
    print(f"report: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fpibench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("list", help="tasks, models, forward solvers and gradient methods with their options")
    run = sub.add_parser("run", help="run a sweep (default: the quick suite on real data) and write a report")
    grid = run.add_argument_group("grid (comma lists; default: the quick suite)")
    grid.add_argument("--task", help="task(s), e.g. denoise,bibtex (see fpibench list)")
    grid.add_argument("--model", help="model(s): fpi_nn, fpi_gd, feedforward, ... (default: all of the task's)")
    grid.add_argument("--forward", help="forward solver(s) (default anderson)")
    grid.add_argument("--backward", help="gradient method(s) (default backward_fpi)")
    grid.add_argument("--seeds", help="seeds: 0,1,2 or 0-2 (default 0)")
    grid.add_argument("--preset", help="quick or paper (default quick)")
    grid.add_argument("--option", action="append", default=[], metavar="KEY=V[,V...]", help="task option (a list is a grid axis)")
    grid.add_argument("--forward-option", action="append", default=[], metavar="KEY=V", help="forward solver option")
    grid.add_argument("--backward-option", action="append", default=[], metavar="KEY=V", help="gradient method option")
    grid.add_argument("--epochs", type=int, help="override the preset's number of epochs")
    grid.add_argument("--no-study", action="store_true", help="skip the gradient-study rows of training cells")
    run.add_argument("--sweep", help="sweep file (.toml, .yaml, .yml) instead of grid flags")
    run.add_argument("--out", default=DEFAULT_OUT,
                     help=f"results store folder (default {DEFAULT_OUT}, untracked; results/quick is the committed one)")
    run.add_argument("--compare", metavar="STORE", default=None,
                     help="after the run, compare each cell with the same cell in STORE (e.g. results/quick)")
    run.add_argument("--reuse-stale", action="store_true",
                     help="keep cells stored by other code instead of running them again (the report names their code)")
    run.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    run.add_argument("--data-dir", default=None, help="data directory (default $FPIBENCH_DATA or ~/.cache/fpibench)")
    run.add_argument("--workers", type=int, default=0, help="worker processes (0: run in this process)")
    run.add_argument("--executor", default="local", choices=["local", "dask"], help="local (default) or dask")
    run.add_argument("--scheduler", default=None, help="dask scheduler address (default: a LocalCluster)")
    run.add_argument("--threads", type=int, default=None,
                     help="torch CPU threads per cell (default: from the cell's size and its share of the cores; "
                          "1 for every quick cell)")
    run.add_argument("--repeats", type=int, default=3, help="timing repeats in the gradient study (median)")
    run.add_argument("--dry-run", action="store_true",
                     help="list the cells with what the store has of each (stored, stale, partial, to run) and exit")
    run.add_argument("--no-report", action="store_true", help="do not build the report at the end")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    report = sub.add_parser("report", help="markdown report and figures from a results store")
    report.add_argument("results", nargs="?", default="results/quick", help="results store folder")
    report.add_argument("--out", default=None, help="output folder (default: the store folder)")
    report.add_argument("--formats", default="png,svg", help="figure formats (default png,svg)")
    return parser


def main(argv=None) -> int:
    from fpibench.data import CorruptDataError, DataNotFoundError
    from fpibench.errors import OptionError, UnknownMethodError
    from fpibench.results import ResultsError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            return _list(args)
        if args.command == "run":
            return _run(args)
        if args.command == "report":
            return _report(args)
    except (OptionError, UnknownMethodError, ResultsError, RuntimeError, DataNotFoundError, CorruptDataError) as exc:
        print(f"fpibench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
