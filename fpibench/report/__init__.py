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
from ._export import export_tables, to_latex
from ._frame import load_store, prepare
from ._hyperopt import section_hyperopt, table_hyperopt
from ._markdown import (fmt, fmt_mean_std, markdown_table, section_bibtex, section_denoise, section_figures,
                        section_gradient, section_non_ok, section_pareto, section_provenance, section_ranked,
                        section_exports, section_paired, section_seed_gap, section_winners)
from ._paired import table_paired_methods
from ._seed_gap import seed_cells, table_seed_gap
from ._tables import (final_metric_table, pareto_front, pareto_points, provenance_summary, seed_points, table_bibtex,
                      table_box_constraint, table_denoise, table_gradient_summary, table_non_ok,
                      table_optical_flow, table_winners)

Section = Callable[["object", Path], Sequence[str]]
TABLES: dict[str, Callable] = {
    "denoise": table_denoise, "denoise_seed_gap": table_seed_gap, "bibtex": table_bibtex,
    "box_constraint": table_box_constraint, "optical_flow": table_optical_flow,
    "gradient_summary": table_gradient_summary, "winners": table_winners, "paired_methods": table_paired_methods,
    "non_ok": table_non_ok, "hyperopt": table_hyperopt,
}
TABLE_CAPTIONS = {
    "denoise": "Denoising PSNR (dB, higher is better) at the final epoch, mean ± sample sd over seeds; bold: "
               "better than every other row of its budget beyond the seed uncertainty",
    "denoise_seed_gap": "Implicit denoiser minus feedforward, final-epoch PSNR (dB): groups mean ± sd, gaps "
                        "± standard error with Welch's p and 95 % interval",
    "bibtex": "Bibtex example F1 (%, higher is better), ours (mean ± sd over seeds) and the paper's Table 2",
    "box_constraint": "Box-constrained problem, test MSE (lower is better), mean ± sd over seeds",
    "optical_flow": "Optical flow, aEPE (px, lower is better), mean ± sd over seeds",
    "gradient_summary": "Gradient study: medians over seeds and repeats",
    "winners": "Which method wins: a winner only beyond the seed uncertainty, else a tie; one seed, no verdict",
    "paired_methods": "Gradient methods against the reference on the same seeds: paired difference and 95 % interval",
    "non_ok": "Cells with rows whose status is not ok",
    "hyperopt": "Hyperparameter optimisation: final validation/test loss (nats), time to the target validation "
                "loss, hypergradient error and cost per gradient method",
}


def report_tables(df) -> dict:
    """Every table of the report by name (the file name of its CSV/LaTeX export)."""
    return {name: function(df) for name, function in TABLES.items()}

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
    """Write ``report.md``, ``figures/<name>.<fmt>`` and ``tables/<name>.csv|tex`` into
    ``out_dir`` (default: the store's folder) from the store under ``results_dir``; returns
    the report's path.

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
    tables = report_tables(df)
    lines += section_provenance(provenance_summary(df), str(results_dir))
    lines += ["## The paper's tables, regenerated", ""]
    lines += section_denoise(tables["denoise"])
    lines += section_seed_gap(tables["denoise_seed_gap"])
    lines += section_bibtex(tables["bibtex"])
    lines += section_ranked(tables["box_constraint"], "Box constraint — test MSE (lower is better; paper Fig. 7)",
                            paper_numbers.BOX_CONSTRAINT_ORDER, paper_numbers.BOX_CONSTRAINT_SOURCE, "box_constraint")
    if not tables["optical_flow"].empty:
        lines += section_ranked(tables["optical_flow"], "Optical flow — aEPE (px, lower is better; paper Fig. 1)",
                                paper_numbers.OPTICAL_FLOW_ORDER, paper_numbers.OPTICAL_FLOW_SOURCE, "optical_flow")
    else:
        lines += ["### Optical flow", "", "_No optical_flow training rows in this store; table omitted._", ""]
    lines += section_hyperopt(tables["hyperopt"])
    lines += section_gradient(tables["gradient_summary"])
    lines += section_winners(tables["winners"])
    lines += section_paired(tables["paired_methods"])
    lines += section_non_ok(tables["non_ok"])
    exported = export_tables(tables, out / "tables", TABLE_CAPTIONS)
    lines += section_exports(exported, out)

    pareto_text = {"pareto_train": section_pareto(pareto_points(df, "train"), "final headline metric vs step time"),
                   "pareto_gradient": section_pareto(pareto_points(df, "gradient"),
                                                     "gradient error vs backward time")}
    entries = []
    for function, title in FIGURES:
        paths = function(df, figures_dir, formats)
        entries.append((title, paths, pareto_text.get(function.NAME, [])))
    lines += section_figures(entries, out)

    for section in [*SECTIONS, *extra_sections]:
        lines += list(section(df, results_dir) or [])
    report = out / "report.md"
    report.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return report


__all__ = [
    "build_report", "register_section", "report_tables", "export_tables", "to_latex", "TABLES", "SECTIONS", "FIGURES", "FIGURE_NAMES", "paper_numbers", "load_store",
    "prepare", "ResultsError", "table_denoise", "table_seed_gap", "seed_cells", "table_bibtex", "table_box_constraint", "table_optical_flow",
    "table_gradient_summary", "table_winners", "table_paired_methods", "table_non_ok", "table_hyperopt", "final_metric_table", "pareto_front",
    "pareto_points", "seed_points", "provenance_summary", "markdown_table", "fmt", "fmt_mean_std",
    "figure_grad_error_vs_backward_iterations", "figure_grad_error_vs_backward_time",
    "figure_memory_vs_forward_iterations", "figure_step_time_train", "figure_step_time_gradient",
    "figure_metric_vs_epoch", "figure_metric_vs_time", "figure_final_metric_by_seed", "figure_pareto_train",
    "figure_pareto_gradient",
]
