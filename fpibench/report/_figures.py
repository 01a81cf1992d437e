"""Figures of the report (seaborn on matplotlib ``Figure`` objects: no pyplot, no display).

Each ``figure_*(df, out_dir, formats)`` draws one figure from a prepared store frame and
writes ``out_dir/<name>.<fmt>`` for every format, returning the paths; it returns ``[]``
(and writes nothing) when the store has no rows for it.  File names are fixed (``NAME``
of each function), SVGs carry no date, so a rerun on the same store gives the same files.
"""
from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ._frame import headline_metric, takes_store_frame, unit_of, with_labels
from ._tables import pareto_points, seed_points, split_panels

# Axis labels in words, with units (metric name -> label)
AXIS_LABELS = {
    "psnr_bsd68": "PSNR on BSD68 (dB)", "psnr_chairs": "PSNR on Flying Chairs (dB)", "test_f1": "test F1 (%)",
    "f1": "test F1 (%)", "test_mse": "test MSE", "aepe": "average endpoint error (px)",
    "aepe_chairs_examples": "average endpoint error (px)", "aepe_chairs_val": "average endpoint error (px)",
    "grad_rel_error": "gradient relative error", "backward_seconds": "backward time (s)",
    "step_seconds": "time per step (s)", "saved_bytes": "memory saved for backward",
    "peak_rss_bytes": "peak process memory (RSS)", "peak_cuda_bytes": "peak GPU memory",
}
STYLE = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
         "legend.fontsize": 7, "legend.title_fontsize": 7}
PANEL_SIZE = (2.5, 2.1)  # inches: three panels and a legend fill a two-column paper's text width


def axis_label(metric: str, unit: str = "") -> str:
    """A metric's axis label in words, with its unit where the words do not carry one."""
    words = AXIS_LABELS.get(metric, metric.replace("_", " "))
    return words if "(" in words or not unit else f"{words} ({unit})"

LOG_FLOOR = 1e-16  # errors below this (exact methods) are drawn at the floor on log axes
MEMORY_METRICS = ("saved_bytes", "peak_rss_bytes", "peak_cuda_bytes")


def _mpl():
    import matplotlib
    from matplotlib.figure import Figure
    import seaborn as sns

    return matplotlib, Figure, sns


def _grid(n: int, ncols: int = 3, size=PANEL_SIZE):
    matplotlib, Figure, _ = _mpl()
    matplotlib.rcParams.update(STYLE)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows + 1.2), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


BASELINE_GREYS = ("0.0", "0.45", "0.7")
FORWARD_MARKERS = ("o", "s", "^", "D", "v", "P", "*", "h")
MODEL_DASHES = ("", (5, 2), (1, 1.5), (3, 1, 1, 1))
FPI_MODELS = ("fpi_nn", "fpi_gd")  # the paper's two layer kinds: FPI_NN solid, FPI_GD dashed


def _ordered(present, known) -> list:
    """``known`` names first (a fixed order, so a name keeps its slot across figures), then
    any other name present, sorted."""
    present = set(present)
    return [n for n in known if n in present] + sorted(present - set(known))


def _method_encoding(rows: pd.DataFrame) -> tuple[dict, dict, dict]:
    """Legend encoding shared by every figure, keyed by ``label``: colour = gradient method,
    marker = forward solver, line style = FPI model.  A registered gradient method has the
    same colour in every figure (its slot in the registry's sorted names), so a method is
    recognised across panels and reports; models without a gradient method (feedforward
    baselines) are grey crosses on solid lines.  Returns ``(palette, markers, dashes)``."""
    from .._registry import BACKWARD, FORWARD
    from ._frame import NO_METHOD

    _, _, sns = _mpl()
    known = BACKWARD.names()
    methods = _ordered({b for b in rows["backward"] if b not in NO_METHOD}, known)
    slots = {name: i for i, name in enumerate(known + [m for m in methods if m not in known])}
    base = sns.color_palette("colorblind", 10)
    extra = sns.color_palette("husl", max(1, len(slots) - 10))
    color = {m: (base[slots[m]] if slots[m] < 10 else extra[slots[m] - 10]) for m in methods}
    fpi = rows[~rows["backward"].isin(NO_METHOD)]
    forwards = _ordered(set(fpi["forward"]), FORWARD.names())
    models = _ordered(set(fpi["model"]), FPI_MODELS)
    baselines = sorted(set(rows.loc[rows["backward"].isin(NO_METHOD), "model"]))
    palette, markers, dashes = {}, {}, {}
    for label, model, forward, backward in zip(rows["label"], rows["model"], rows["forward"], rows["backward"]):
        if label in palette:
            continue
        if backward in NO_METHOD:
            palette[label] = BASELINE_GREYS[baselines.index(model) % len(BASELINE_GREYS)]
            markers[label], dashes[label] = "X", ""
        else:
            palette[label] = color[backward]
            markers[label] = FORWARD_MARKERS[forwards.index(forward) % len(FORWARD_MARKERS)]
            dashes[label] = MODEL_DASHES[models.index(model) % len(MODEL_DASHES)]
    return palette, markers, dashes


def _shared_legend(fig, axes, title: str = "method") -> None:
    seen = {}
    for ax in axes:
        handles, labels = ax.get_legend_handles_labels()
        for h, lab in zip(handles, labels):
            seen.setdefault(lab, h)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if seen:
        # above the panels, in columns: never over a panel, however tall the figure
        fig.legend(list(seen.values()), list(seen.keys()), title=title, loc="outside upper center",
                   ncols=min(3, len(seen)), fontsize="small")


_CLIP_ID = re.compile(r'(?<=url\(#)p[0-9a-f]{10}(?=\))|(?<=id=")p[0-9a-f]{10}(?=")')


def _stable_svg_ids(svg: str) -> str:
    """Renumber matplotlib's clip-path ids (hashed from object addresses) in order of appearance."""
    names: dict[str, str] = {}
    return _CLIP_ID.sub(lambda m: names.setdefault(m.group(0), f"clip{len(names)}"), svg)


def _wrap_titles(fig, width: int = 34) -> None:
    """Long panel titles (problem; budget) on several lines, so they never overlap a neighbour."""
    import textwrap

    for ax in fig.axes:
        title = ax.get_title()
        if len(title) > width:
            ax.set_title("\n".join(textwrap.wrap(title, width)))


def _save(fig, out_dir, name: str, formats: Sequence[str]) -> list[Path]:
    matplotlib, _, _ = _mpl()
    _wrap_titles(fig)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    with matplotlib.rc_context({"svg.hashsalt": "fpibench", "svg.fonttype": "none"}):
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            if fmt == "svg":
                buffer = io.StringIO()
                fig.savefig(buffer, format="svg", metadata={"Date": None})
                path.write_text(_stable_svg_ids(buffer.getvalue()), encoding="utf-8")
            else:
                fig.savefig(path, format=fmt, dpi=200, metadata={"CreationDate": None} if fmt == "pdf" else None)
            paths.append(path)
    return paths


def _finite(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[np.isfinite(rows["value"])]


def _log_axes(ax, y: bool = True) -> None:
    """Log x (and y) with compact x tick labels: minor ticks are labelled only when the axis
    spans few decades (all of them below half a decade, 2× and 5× below 1.5 decades)."""
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log")
    if y:
        ax.set_yscale("log")

    def minor(v, _):
        lo, hi = sorted(ax.get_xlim())
        decades = math.log10(hi / lo) if lo > 0 else 99
        lead = f"{v:.1e}"[0]
        return f"{v:.2g}" if decades <= 0.5 or (decades <= 1.5 and lead in "25") else ""

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(minor))
    ax.tick_params(axis="x", which="both", labelrotation=30)


def _lines(ax, data, x, y, encoding, log=False, estimator="median", **kw):
    _, _, sns = _mpl()
    palette, markers, dashes = encoding
    order = sorted(palette)
    sns.lineplot(data=data, x=x, y=y, hue="label", hue_order=order, palette=palette, style="label",
                 style_order=order, markers=markers, dashes=dashes, estimator=estimator,
                 errorbar=None if estimator is None or estimator == "median" else "sd", ax=ax, **kw)
    if log:
        _log_axes(ax)
    _concentric(ax)


def _concentric(ax) -> None:
    """Identical curves stay visible: hollow markers and lines shrink with each method drawn,
    so methods on top of each other show as concentric rings."""
    for i, line in enumerate(ax.get_lines()):
        line.set_markerfacecolor("none")
        line.set_markeredgecolor(line.get_color())
        line.set_markersize(max(2.5, 7.0 - 1.1 * i))
        line.set_linewidth(max(0.6, 2.4 - 0.4 * i))


# --- gradient accuracy vs budget / time ---------------------------------------------------
def _curve_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["kind"] == "gradient_curve") & (df["metric"] == "grad_rel_error") & np.isfinite(df["value"])]


@takes_store_frame
def figure_grad_error_vs_backward_iterations(df, out_dir, formats=("png", "svg")) -> list[Path]:
    """Gradient relative error vs the backward-iteration budget, one line per method, per problem (log-log)."""
    rows = _curve_rows(df)
    rows = rows[rows["budget"] > 0]
    if rows.empty:
        return []
    rows = with_labels(rows).assign(value=lambda d: d["value"].clip(lower=LOG_FLOOR))
    encoding = _method_encoding(rows)
    panels = sorted(set(rows["panel"]))
    fig, axes = _grid(len(panels))
    for ax, panel in zip(axes, panels):
        _lines(ax, rows[rows["panel"] == panel], "budget", "value", encoding, log=True)
        ax.set(title=panel, xlabel="backward iterations (budget)", ylabel="gradient relative error")
    _shared_legend(fig, axes)
    return _save(fig, out_dir, "grad_error_vs_backward_iterations", formats)


figure_grad_error_vs_backward_iterations.NAME = "grad_error_vs_backward_iterations"


@takes_store_frame
def figure_grad_error_vs_backward_time(df, out_dir, formats=("png", "svg")) -> list[Path]:
    """Gradient relative error vs backward wall time (medians per budget), per problem (log-log)."""
    rows = df[(df["kind"] == "gradient_curve") & df["metric"].isin(["grad_rel_error", "backward_seconds"])]
    keys = ["panel", "model", "forward", "backward", "budget"]
    if rows.empty:
        return []
    wide = rows.groupby([*keys, "metric"])["value"].median().unstack("metric")
    if not {"grad_rel_error", "backward_seconds"} <= set(wide.columns):
        return []
    wide = wide.dropna(subset=["grad_rel_error", "backward_seconds"]).reset_index()
    wide = wide[wide["backward_seconds"] > 0]
    if wide.empty:
        return []
    wide = with_labels(wide).sort_values(["label", "budget"])
    wide["grad_rel_error"] = wide["grad_rel_error"].clip(lower=LOG_FLOOR)
    encoding = _method_encoding(wide)
    panels = sorted(set(wide["panel"]))
    fig, axes = _grid(len(panels))
    for ax, panel in zip(axes, panels):
        _lines(ax, wide[wide["panel"] == panel], "backward_seconds", "grad_rel_error", encoding, log=True,
               estimator=None, sort=False)
        ax.set(title=panel, xlabel="backward time (s)", ylabel="gradient relative error")
    _shared_legend(fig, axes)
    return _save(fig, out_dir, "grad_error_vs_backward_time", formats)


figure_grad_error_vs_backward_time.NAME = "grad_error_vs_backward_time"


# --- memory vs forward iterations ----------------------------------------------------------
@takes_store_frame
def figure_memory_vs_forward_iterations(df, out_dir, formats=("png", "svg")) -> list[Path]:
    """Saved bytes and peak RSS / CUDA memory vs forward iterations, per method; panels = problem × metric."""
    rows = _finite(df[(df["kind"] == "memory_curve") & df["metric"].isin(MEMORY_METRICS)])
    rows = rows[np.isfinite(rows["budget"])]
    if rows.empty:
        return []
    rows = with_labels(rows)
    encoding = _method_encoding(rows)
    panels = sorted(set(zip(rows["panel"], rows["metric"])), key=lambda pm: (pm[0], MEMORY_METRICS.index(pm[1])))
    n_metrics = len({m for _, m in panels})
    fig, axes = _grid(len(panels), ncols=n_metrics if n_metrics > 1 else 3)
    for ax, (panel, metric) in zip(axes, panels):
        sub = rows[(rows["panel"] == panel) & (rows["metric"] == metric)]
        power = min(3, max(0, int(math.log(max(sub["value"].abs().max(), 1.0), 1024))))
        unit = ("B", "KiB", "MiB", "GiB")[power]
        _lines(ax, sub.assign(value=sub["value"] / 1024 ** power), "budget", "value", encoding)
        log_scale_if_wide(ax, sub["value"])
        ax.set(title=panel, xlabel="forward iterations", ylabel=f"{axis_label(metric)} ({unit})")
    _shared_legend(fig, axes)
    return _save(fig, out_dir, "memory_vs_forward_iterations", formats)


figure_memory_vs_forward_iterations.NAME = "memory_vs_forward_iterations"


# --- time per step ---------------------------------------------------------------------------
def _step_time(df, out_dir, formats, kind: str, name: str) -> list[Path]:
    _, _, sns = _mpl()
    rows = _finite(df[(df["kind"] == kind) & (df["metric"] == "step_seconds")])
    if rows.empty:
        return []
    rows = split_panels(rows, by_epoch=kind == "gradient")
    panels = sorted(set(rows["panel"]))
    fig, axes = _grid(len(panels))
    for ax, panel in zip(axes, panels):
        sub = with_labels(rows[rows["panel"] == panel])
        order = sorted(set(sub["label"]))
        sns.barplot(data=sub, x="label", y="value", hue="label", order=order, hue_order=order,
                    palette=_method_encoding(sub)[0], errorbar="sd", capsize=0.2, legend=False, ax=ax)
        log_scale_if_wide(ax, sub["value"])
        ax.set(title=panel, xlabel="", ylabel="time per step (s), mean ± sd")
        ax.tick_params(axis="x", labelrotation=45)
        for lab in ax.get_xticklabels():
            lab.set_horizontalalignment("right")
    return _save(fig, out_dir, name, formats)


@takes_store_frame
def figure_step_time_train(df, out_dir, formats=("png", "svg")) -> list[Path]:
    """Time per training step per method (bars: mean, error bars: sd over epochs' medians and seeds), per task."""
    return _step_time(df, out_dir, formats, "train", "step_time_train")


figure_step_time_train.NAME = "step_time_train"


@takes_store_frame
def figure_step_time_gradient(df, out_dir, formats=("png", "svg")) -> list[Path]:
    """Time per step in the gradient study per method (bars: mean, error bars: sd over repeats and seeds), per task."""
    return _step_time(df, out_dir, formats, "gradient", "step_time_gradient")


figure_step_time_gradient.NAME = "step_time_gradient"


# --- learning curves (paper Figs 2, 3, 5) ------------------------------------------------------
def _headline_rows(df: pd.DataFrame) -> pd.DataFrame:
    parts = []
    for task in sorted(set(df.loc[df["kind"] == "train", "task"])):
        metric = headline_metric(df, task)
        if metric:
            parts.append(df[(df["task"] == task) & (df["kind"] == "train") & (df["metric"] == metric)])
    rows = pd.concat(parts) if parts else df.iloc[:0]
    return _finite(rows)


def log_scale_if_wide(ax, values, decades: float = 1.0) -> bool:
    """Log y-axis when every value is positive and they span more than ``decades`` decades
    (box MSE: 0.0025 for FPI_NN beside 0.5 for a failed method; a linear axis flattens the
    good methods into one line)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size and (values > 0).all() and values.max() > 10**decades * values.min():
        ax.set_yscale("log")
        return True
    _linear_ticks(ax, values)
    return False


def _linear_ticks(ax, values) -> None:
    """A linear y-axis that reads: plain or scientific labels without an offset, and a span of
    at least 2 % of the values, so methods equal to many digits show as one flat level instead
    of ticks that differ in the sixth significant digit."""
    ax.set_yscale("linear")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4), useOffset=False)
    if values.size:
        lo, hi = float(values.min()), float(values.max())
        centre, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
        least = 0.01 * max(abs(centre), 1e-300)
        if half < least:
            ax.set_ylim(centre - least, centre + least)


def _curves(df, out_dir, formats, x: str, name: str) -> list[Path]:
    rows = split_panels(_headline_rows(df))
    if x == "elapsed_seconds" and not rows.empty:
        clock = df[(df["kind"] == "train") & (df["metric"] == "elapsed_seconds")][["cell_id", "epoch", "value"]]
        clock = clock.groupby(["cell_id", "epoch"], as_index=False)["value"].median()
        rows = rows.merge(clock.rename(columns={"value": x}), on=["cell_id", "epoch"], how="inner")
        rows = rows[np.isfinite(rows[x])]
    if rows.empty:
        return []
    rows = with_labels(rows)
    encoding = _method_encoding(rows)
    panels = sorted(set(rows["panel"]))
    fig, axes = _grid(len(panels))
    for ax, panel in zip(axes, panels):
        sub = rows[rows["panel"] == panel]
        metric = sub["metric"].iloc[0]
        if x == "epoch":
            from matplotlib.ticker import MaxNLocator

            _lines(ax, sub, "epoch", "value", encoding, estimator="mean")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        else:
            _lines(ax, sub, x, "value", encoding, estimator=None, units="seed", sort=True)
        log_scale_if_wide(ax, sub["value"])
        ax.set(title=panel, xlabel="epoch" if x == "epoch" else "training wall time (s)",
               ylabel=axis_label(metric, unit_of(df, metric)))
    _shared_legend(fig, axes)
    return _save(fig, out_dir, name, formats)


@takes_store_frame
def figure_metric_vs_epoch(df, out_dir, formats=("png", "svg")) -> list[Path]:
    """Headline test metric vs epoch per method (mean ± sd over seeds), one panel per task/problem."""
    return _curves(df, out_dir, formats, "epoch", "metric_vs_epoch")


figure_metric_vs_epoch.NAME = "metric_vs_epoch"


@takes_store_frame
def figure_metric_vs_time(df, out_dir, formats=("png", "svg")) -> list[Path]:
    """Headline test metric vs cumulative training wall time (one line per seed), per task/problem."""
    return _curves(df, out_dir, formats, "elapsed_seconds", "metric_vs_time")


figure_metric_vs_time.NAME = "metric_vs_time"


# --- accuracy–cost Pareto plots ----------------------------------------------------------------
def _pareto(df, out_dir, formats, kind: str, name: str) -> list[Path]:
    _, _, sns = _mpl()
    points = pareto_points(df, kind)
    if points.empty:
        return []
    log_y = kind == "gradient"
    if log_y:
        points = points.assign(y=points["y"].clip(lower=LOG_FLOOR))
    encoding = _method_encoding(points)
    panels = list(dict.fromkeys(points["panel"]))
    palette, markers, _ = encoding
    fig, axes = _grid(len(panels))
    for ax, panel in zip(axes, panels):
        sub = points[points["panel"] == panel]
        sns.scatterplot(data=sub, x="x", y="y", hue="label", hue_order=sorted(palette), palette=palette,
                        style="label", style_order=sorted(palette), markers=markers, s=60,
                        ax=ax, zorder=3)
        front = sub[sub["on_front"]].sort_values("x")
        ax.plot(front["x"], front["y"], color="black", linestyle="--", drawstyle="steps-post", linewidth=1,
                zorder=2, label="Pareto front")
        ax.scatter(front["x"], front["y"], s=160, facecolors="none", edgecolors="black", zorder=4)
        _log_axes(ax, y=False)
        log_scale_if_wide(ax, sub["y"])  # log only where the errors span decades
        better = "higher" if bool(sub["higher_is_better"].iloc[0]) else "lower"
        ax.set(title=panel, xlabel=axis_label(sub["x_metric"].iloc[0]) + ", median",
               ylabel=f"{axis_label(sub['y_metric'].iloc[0], unit_of(df, sub['y_metric'].iloc[0]))}\n({better} is better)")
    _shared_legend(fig, axes)
    return _save(fig, out_dir, name, formats)


@takes_store_frame
def figure_pareto_gradient(df, out_dir, formats=("png", "svg")) -> list[Path]:
    """Gradient error vs backward time per method with the Pareto front, per problem."""
    return _pareto(df, out_dir, formats, "gradient", "pareto_gradient")


figure_pareto_gradient.NAME = "pareto_gradient"


@takes_store_frame
def figure_pareto_train(df, out_dir, formats=("png", "svg")) -> list[Path]:
    """Final headline metric vs training step time per method with the Pareto front, per task/problem."""
    return _pareto(df, out_dir, formats, "train", "pareto_train")


figure_pareto_train.NAME = "pareto_train"


# --- final metric seed by seed -------------------------------------------------------------------
SEED_MARKERS = ("o", "s", "^", "D", "v", "P", "*", "h", "X", "<")
PAPER_LINE_STYLES = {"fpi_nn": (0, (5, 2)), "fpi_gd": (0, (5, 1, 1, 1)), "feedforward": (0, (1, 1.5))}


@takes_store_frame
def figure_final_metric_by_seed(df, out_dir, formats=("png", "svg")) -> list[Path]:
    """Final headline metric of every cell, one marker per seed (shape = seed, colour = gradient
    method, black bar = mean over seeds), per problem and budget; the paper's Table 2 F1 as
    horizontal lines.  Shows whether two methods differ by more than seeds do."""
    from matplotlib.lines import Line2D

    points = seed_points(df)
    if points.empty:
        return []
    panels = list(dict.fromkeys(points["panel"]))
    seeds = sorted(set(points["seed"].dropna()))
    seed_marker = {s: SEED_MARKERS[i % len(SEED_MARKERS)] for i, s in enumerate(seeds)}
    fig, axes = _grid(len(panels), ncols=3, size=(PANEL_SIZE[0], PANEL_SIZE[1] + 0.5))
    handles = {}
    for ax, panel in zip(axes, panels):
        sub = points[points["panel"] == panel]
        palette, _, _ = _method_encoding(sub)
        labels = list(dict.fromkeys(sub["label"]))
        for x, label in enumerate(labels):
            cells = sub[sub["label"] == label].sort_values("seed")
            offsets = np.linspace(-0.18, 0.18, len(cells)) if len(cells) > 1 else np.zeros(1)
            for dx, seed, value in zip(offsets, cells["seed"], cells["value"]):
                ax.scatter(x + dx, value, marker=seed_marker.get(seed, "o"), s=34, color=palette[label],
                           edgecolors="black", linewidths=0.5, zorder=3)
                handles.setdefault(f"seed {seed:g}", Line2D([], [], marker=seed_marker.get(seed, "o"), linestyle="",
                                                            markerfacecolor="white", markeredgecolor="black"))
            ax.hlines(cells["value"].mean(), x - 0.3, x + 0.3, color="black", linewidth=1.2, zorder=2)
        for model, value in sorted(set(zip(sub["model"], sub["paper"]))):
            if np.isfinite(value):
                line = ax.axhline(value, color="0.35", linewidth=1, zorder=1,
                                  linestyle=PAPER_LINE_STYLES.get(model, (0, (3, 3))))
                handles.setdefault(f"paper: {model}", line)
        higher = bool(sub["higher_is_better"].iloc[0])
        if not higher:  # errors spanning decades (box MSE); scores such as F1 stay linear
            log_scale_if_wide(ax, sub["value"])
        ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right", fontsize="small")
        ax.set_xlim(-0.6, len(labels) - 0.4)
        metric, unit = sub["metric"].iloc[0], sub["unit"].iloc[0]
        better = "higher" if higher else "lower"
        ax.set(title=panel, ylabel=f"final {axis_label(metric, unit)}, {better} is better")
    fig.legend(list(handles.values()), list(handles.keys()), title="marker / line", loc="outside right upper",
               fontsize="small")
    return _save(fig, out_dir, "final_metric_by_seed", formats)


figure_final_metric_by_seed.NAME = "final_metric_by_seed"


# (function, title) in report order; a figure the store has no rows for gets no section
FIGURES: list[tuple[Callable, str]] = [
    (figure_grad_error_vs_backward_iterations, "Gradient accuracy vs backward iterations"),
    (figure_grad_error_vs_backward_time, "Gradient accuracy vs backward time"),
    (figure_memory_vs_forward_iterations, "Memory vs forward iterations"),
    (figure_step_time_train, "Time per training step"),
    (figure_step_time_gradient, "Time per step in the gradient study"),
    (figure_metric_vs_epoch, "Test metric vs epoch (paper: ICML-workshop Figs 2, 3, 5 = IEEE Access Figs 7, 1)"),
    (figure_metric_vs_time, "Test metric vs training wall time"),
    (figure_final_metric_by_seed, "Final metric seed by seed (method differences beside the seed spread)"),
    (figure_pareto_train, "Accuracy–cost Pareto plot: training"),
    (figure_pareto_gradient, "Accuracy–cost Pareto plot: gradient study"),
]
FIGURE_NAMES = tuple(f.NAME for f, _ in FIGURES)
