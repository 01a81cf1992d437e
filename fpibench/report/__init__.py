"""``fpibench report``: the paper's tables, the gradient study and figures from a results store.

    path = fpibench.report.build_report("runs/quick")      # runs/quick/report.md + figures/

The tables (:mod:`._tables`) and figures (:mod:`._figures`) are pure functions of the
store's DataFrame (``fpibench.results.load``); the paper's numbers they are set against
are data in :mod:`.paper_numbers`, each cited to its table or figure.  Another section
(say pytest-benchmark timings) is a function ``(df, results_dir) -> list[str]`` of markdown
lines passed to :func:`build_report` or registered once with :func:`register_section`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..errors import OptionError
from ..results import ResultsError
from . import paper_numbers
from ._figures import (FIGURE_NAMES, FIGURES, figure_final_metric_by_seed, figure_grad_error_vs_backward_iterations,
                       figure_grad_error_vs_backward_time, figure_memory_vs_forward_iterations,
                       figure_metric_vs_epoch, figure_metric_vs_time, figure_pareto_gradient, figure_pareto_train,
                       figure_step_time_gradient, figure_step_time_train)
from ._frame import load_store, prepare
from ._markdown import (fmt, fmt_mean_std, markdown_table, section_bibtex, section_denoise, section_figures,
                        section_gradient, section_non_ok, section_pareto, section_provenance, section_ranked,
                        section_paired, section_seed_gap, section_winners)
from ._paired import table_paired_methods
from ._seed_gap import seed_cells, table_seed_gap
from ._tables import (final_metric_table, pareto_front, pareto_points, provenance_summary, seed_points, table_bibtex,
                      table_box_constraint, table_denoise, table_gradient_summary, table_non_ok,
                      table_optical_flow, table_winners)

Section = Callable[["object", Path], Sequence[str]]
SECTIONS: list[Section] = []
FORMATS = ("png", "svg", "pdf")


def register_section(fn: Section) -> Section:
    """Add a report section for every later :func:`build_report`: ``fn(df, results_dir)``
    returns markdown lines (empty: nothing to add).  Usable as a decorator."""
    if not callable(fn):
        raise TypeError(f"register_section: expected a function (df, results_dir) -> list[str], got {fn!r}")
    if fn not in SECTIONS:
        SECTIONS.append(fn)
    return fn


def build_report(results_dir, out_dir=None, formats: Sequence[str] = ("png", "svg"),
                 extra_sections: Iterable[Section] = ()) -> Path:
    """Write ``report.md`` and ``figures/<name>.<fmt>`` into ``out_dir`` (default: the store's
    folder) from the store under ``results_dir``; returns the report's path.

    Raises :class:`fpibench.results.ResultsError` when there is no store or it has no cells,
    :class:`fpibench.OptionError` for an unknown figure format.
    """
    formats = tuple(formats) if not isinstance(formats, str) else (formats,)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise OptionError(f"build_report: unknown figure format(s) {bad or formats!r}; choose from {', '.join(FORMATS)}")
    results_dir = Path(results_dir)
    df = load_store(results_dir)
    out = Path(out_dir) if out_dir is not None else results_dir
    figures_dir = out / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)

    lines = ["# fpibench report", "",
             "Implicit-differentiation methods for fixed-point-iteration layers, after Jeon, Lee & Choi, "
             "\"Differentiable Forward and Backward Fixed-Point Iteration Layers\" (IEEE Access 2021). "
             "Numbers marked *paper* are transcribed from the paper (see `fpibench/report/paper_numbers.py`); "
             "all others are computed from this store.", ""]
    lines += section_provenance(provenance_summary(df), str(results_dir))
    lines += ["## The paper's tables, regenerated", ""]
    lines += section_denoise(table_denoise(df))
    lines += section_seed_gap(table_seed_gap(df))
    lines += section_bibtex(table_bibtex(df))
    lines += section_ranked(table_box_constraint(df), "Box constraint — test MSE (lower is better; paper Fig. 7)",
                            paper_numbers.BOX_CONSTRAINT_ORDER, paper_numbers.BOX_CONSTRAINT_SOURCE, "box_constraint")
    flow = table_optical_flow(df)
    if not flow.empty:
        lines += section_ranked(flow, "Optical flow — aEPE (px, lower is better; paper Fig. 1)",
                                paper_numbers.OPTICAL_FLOW_ORDER, paper_numbers.OPTICAL_FLOW_SOURCE, "optical_flow")
    else:
        lines += ["### Optical flow", "", "_No optical_flow training rows in this store; table omitted._", ""]
    lines += section_gradient(table_gradient_summary(df))
    lines += section_winners(table_winners(df))
    lines += section_paired(table_paired_methods(df))
    lines += section_non_ok(table_non_ok(df))

    pareto_text = {"pareto_train": section_pareto(pareto_points(df, "train"), "final headline metric vs step time"),
                   "pareto_gradient": section_pareto(pareto_points(df, "gradient"),
                                                     "gradient error vs backward time")}
    entries = []
    for function, title, needs in FIGURES:
        paths = function(df, figures_dir, formats)
        entries.append((title, paths, f"{needs} in this store", pareto_text.get(function.NAME, [])))
    lines += section_figures(entries, out)

    for section in [*SECTIONS, *extra_sections]:
        lines += list(section(df, results_dir) or [])
    report = out / "report.md"
    report.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return report


__all__ = [
    "build_report", "register_section", "SECTIONS", "FIGURES", "FIGURE_NAMES", "paper_numbers", "load_store",
    "prepare", "ResultsError", "table_denoise", "table_seed_gap", "seed_cells", "table_bibtex", "table_box_constraint", "table_optical_flow",
    "table_gradient_summary", "table_winners", "table_paired_methods", "table_non_ok", "final_metric_table", "pareto_front",
    "pareto_points", "seed_points", "provenance_summary", "markdown_table", "fmt", "fmt_mean_std",
    "figure_grad_error_vs_backward_iterations", "figure_grad_error_vs_backward_time",
    "figure_memory_vs_forward_iterations", "figure_step_time_train", "figure_step_time_gradient",
    "figure_metric_vs_epoch", "figure_metric_vs_time", "figure_final_metric_by_seed", "figure_pareto_train",
    "figure_pareto_gradient",
]
