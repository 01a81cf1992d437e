"""The harness: sweeps of cells (task × model × forward × gradient method × seed × options).

    cells = fpibench.harness.expand_sweep({"task": "bibtex", "backward": ["backward_fpi", "jfb"]})
    results = fpibench.harness.run_sweep(cells, "results/my-sweep", executor="local", workers=2)
    df = fpibench.results.load("results/my-sweep")
"""
from ._cells import NO_FPI, Cell
from ._driver import EXECUTORS, CellResult, run_sweep, summary_table
from ._run import resolve_device, run_cell
from ._sweep import SweepError, expand_grid, expand_sweep, load_sweep_file, parse_list, parse_options, parse_seeds
from ._study import BACKWARD_BUDGETS, BUDGET_OPTION, FORWARD_BUDGETS

__all__ = [
    "Cell", "NO_FPI", "CellResult", "EXECUTORS", "run_sweep", "run_cell", "summary_table", "resolve_device",
    "SweepError", "expand_grid", "expand_sweep", "load_sweep_file", "parse_list", "parse_options", "parse_seeds",
    "BACKWARD_BUDGETS", "BUDGET_OPTION", "FORWARD_BUDGETS",
]
