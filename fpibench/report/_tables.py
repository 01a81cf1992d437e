"""Tables computed from the results store (pure functions: prepared frame in, DataFrame out).

Paper tables (``table_denoise``, ``table_bibtex``, ``table_box_constraint``,
``table_optical_flow``) hold, per (model, forward, backward, preset[, σ]), the mean and
sample standard deviation over seeds of the task's headline metric at each cell's final
epoch, the budget behind it (epochs, seeds) and the paper's value or ordering
(:mod:`fpibench.report.paper_numbers`).  The gradient-study summary holds medians over
seeds and repeats; the winners table is computed from it, never written by hand.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import paper_numbers as paper
from ._verdict import ordering, rank
from ._frame import (NO_METHOD, budget_label, final_epoch, final_train_rows, headline_metric, higher_is_better,
                     method_labels, method_name, split_init_scale, takes_store_frame, unit_of)

MODEL_ORDER = ("feedforward", "flownets", "fpi_nn", "fpi_gd")
SUMMARY_COLUMNS = ("mean", "std", "n", "seeds", "epoch_min", "epoch_max", "best")
GRADIENT_METRICS = ("grad_rel_error", "grad_cosine", "grad_rel_error_unrolled", "backward_iterations_mean", "backward_seconds",
                    "saved_bytes", "peak_rss_bytes", "peak_cuda_bytes")


def _model_rank(model: str) -> int:
    return MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER)


def _sort(frame: pd.DataFrame, keys) -> pd.DataFrame:
    if frame.empty:
        return frame.reset_index(drop=True)
    order = frame.assign(_m=frame["model"].map(_model_rank))
    return order.sort_values(["_m", *keys], kind="stable").drop(columns="_m").reset_index(drop=True)


def seed_series(rows: pd.DataFrame, keys) -> dict:
    """Per group of ``keys``: its values indexed by seed (cells of one seed averaged)."""
    return {key: part.groupby("seed")["value"].mean() for key, part in rows.groupby(list(keys), dropna=False)}


def _mark_best(out: pd.DataFrame, rows: pd.DataFrame, keys, budget_keys, higher: bool) -> pd.Series:
    """True on the row that beats every other row of its budget by the report's statistics
    rule (:mod:`._verdict`); no row where the best ties or a row has one seed."""
    series = seed_series(rows, keys)
    best = pd.Series(False, index=out.index)
    for _, idx in out.groupby(list(budget_keys), dropna=False).groups.items():
        names = {i: tuple(out.loc[i, list(keys)]) for i in idx}
        outcome = rank({i: series[k] for i, k in names.items() if k in series}, higher)
        if outcome.verdict == "winner":
            best[outcome.best] = True
    return best


@takes_store_frame
def final_metric_table(df: pd.DataFrame, task: str, extra_keys=(), metric: str | None = None) -> pd.DataFrame:
    """Mean ± std over seeds of ``metric`` (default: the task's headline) at each cell's last
    epoch; ``best`` marks the row that beats every other row of its budget (preset, setting
    and ``extra_keys``) beyond the seed uncertainty (:mod:`fpibench.report._verdict`)."""
    keys = ["model", "forward", "backward", "preset", "setting", *extra_keys]
    columns = ["task", "metric", "unit", "higher_is_better", *keys, *SUMMARY_COLUMNS]
    metric = metric or headline_metric(df, task)
    if metric is None:
        return pd.DataFrame(columns=columns)
    rows = final_train_rows(df, task, metric)
    if rows.empty:
        return pd.DataFrame(columns=columns)
    out = rows.groupby(keys, dropna=False).agg(
        mean=("value", "mean"), std=("value", "std"), n=("value", "count"), seeds=("seed", "nunique"),
        epoch_min=("epoch", "min"), epoch_max=("epoch", "max")).reset_index()
    higher = higher_is_better(df, task, metric)
    out["best"] = _mark_best(out, rows, keys, ["preset", "setting", *extra_keys], higher)
    out.insert(0, "higher_is_better", higher)
    out.insert(0, "unit", unit_of(df, metric))
    out.insert(0, "metric", metric)
    out.insert(0, "task", task)
    return _sort(out[columns], ["backward", "forward", "preset", "setting", *extra_keys])


@takes_store_frame
def table_denoise(df: pd.DataFrame) -> pd.DataFrame:
    """Table 1: PSNR per σ, feedforward vs FPI_NN per gradient method, with the paper's value."""
    out = final_metric_table(df, "denoise", extra_keys=("sigma",))
    out["paper"] = [paper.DENOISE_PSNR.get((m, int(s)), np.nan) if pd.notna(s) and float(s).is_integer() else np.nan
                    for m, s in zip(out["model"], out["sigma"])]
    return out


@takes_store_frame
def table_bibtex(df: pd.DataFrame) -> pd.DataFrame:
    """Table 2: our F1 rows (``source`` "fpibench") then every row of the paper's Table 2 (``source`` "paper")."""
    ours = final_metric_table(df, "bibtex")
    by_model = {row.model: row.value for row in paper.BIBTEX_F1 if row.model}
    ours["paper"] = ours["model"].map(by_model).astype(float)
    ours["source"] = "fpibench"
    ours["reference"] = ""
    quoted = pd.DataFrame({
        "task": "bibtex", "metric": "f1", "unit": "%", "model": [r.name for r in paper.BIBTEX_F1],
        "paper": [r.value for r in paper.BIBTEX_F1], "source": "paper",
        "reference": [r.reference + ("" if r.training_data_only else "; uses adversarial data augmentation")
                      for r in paper.BIBTEX_F1],
    })
    if ours.empty:
        return quoted.reindex(columns=list(ours.columns))
    return pd.concat([ours, quoted], ignore_index=True)


def _ranked_table(df: pd.DataFrame, task: str, order) -> pd.DataFrame:
    """final_metric_table plus, within a preset and setting, each model at its best method:
    ``ordering`` (best first, " > " where the next model is worse beyond the seed
    uncertainty, " = " where they tie, " ? " where one has a single seed), ``rank`` (1 + the
    number of " > " above the model: tied models share a rank) and ``paper_rank`` (the
    paper's ordering, best first)."""
    out = final_metric_table(df, task)
    out["paper_rank"] = out["model"].map({m: i + 1 for i, m in enumerate(order)}).astype(float)
    out["rank"], out["ordering"] = np.nan, ""
    if out.empty:
        return out
    higher = bool(out["higher_is_better"].iloc[0])
    rows = final_train_rows(df, task, out["metric"].iloc[0])
    series = seed_series(rows, ["model", "forward", "backward", "preset", "setting"])
    for (preset, setting), part in out.groupby(["preset", "setting"]):
        best = part.sort_values("mean", ascending=not higher).drop_duplicates("model")
        models = {r.model: series[(r.model, r.forward, r.backward, preset, setting)] for r in best.itertuples()}
        text = ordering(models, higher)
        ranks, level = {}, 1
        for token in text.split(" "):
            if token == ">":
                level += 1
            elif token not in ("=", "?"):
                ranks[token] = level
        at = part.index
        out.loc[at, "rank"] = out.loc[at, "model"].map(ranks).astype(float)
        out.loc[at, "ordering"] = text
    return out


@takes_store_frame
def table_box_constraint(df: pd.DataFrame) -> pd.DataFrame:
    """Box constraint: test MSE per model × method, our model ranking next to Fig. 7's ordering."""
    return _ranked_table(df, "box_constraint", paper.BOX_CONSTRAINT_ORDER)


@takes_store_frame
def table_optical_flow(df: pd.DataFrame) -> pd.DataFrame:
    """Optical flow: aEPE per model × method, our model ranking next to the paper's ordering."""
    return _ranked_table(df, "optical_flow", paper.OPTICAL_FLOW_ORDER)


def model_order(table: pd.DataFrame, preset: str, setting: str = "") -> list[str]:
    """Models of a ranked table, best first, within one preset and training setting."""
    sub = table[(table["preset"] == preset) & (table["setting"] == setting)].dropna(subset=["rank"])
    return list(sub.groupby("model")["rank"].min().sort_values(kind="stable").index)


REFERENCE_METRICS = ("grad_rel_error", "grad_cosine")


@takes_store_frame
def table_gradient_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per task, problem, method and parameter state (epoch): medians of the gradient-study
    metrics.  Gradient errors against a reference that did not converge are not used:
    ``unconverged_reference`` counts the rows left out (all of them: the error is NaN)."""
    keys = ["task", "panel", "model", "forward", "backward", "epoch"]
    rows = df[df["kind"] == "gradient"]
    if rows.empty:
        return pd.DataFrame(columns=[*keys, "seeds", *GRADIENT_METRICS, "not_ok", "unconverged_reference"])
    untrusted = reference_unconverged(rows) & rows["metric"].isin(REFERENCE_METRICS)
    medians = rows[~untrusted].groupby([*keys, "metric"], dropna=False)["value"].median().unstack("metric")
    out = rows[keys].drop_duplicates().merge(medians.reindex(columns=list(GRADIENT_METRICS)).reset_index(),
                                             on=keys, how="left")
    grouped = rows.groupby(keys, dropna=False)
    info = pd.DataFrame({
        "seeds": grouped["seed"].nunique(),
        "not_ok": grouped["status"].agg(lambda s: ", ".join(f"{k}×{v}" for k, v in s[s != "ok"].value_counts().items())),
        "unconverged_reference": (untrusted & (rows["metric"] == "grad_rel_error")).groupby(
            [rows[k] for k in keys], dropna=False).sum(),
    }).reset_index()
    out = out.merge(info, on=keys, how="left")
    out = out[[*keys, "seeds", *GRADIENT_METRICS, "not_ok", "unconverged_reference"]]
    return _sort(out, ["task", "panel", "epoch", "backward", "forward"])


def reference_unconverged(rows: pd.DataFrame) -> pd.Series:
    """Rows whose gradient error is measured against a reference that did not converge
    (the harness writes "reference solve …" / "reference gradient failed …" as reason)."""
    return rows["reason"].str.startswith("reference")


def _seed_values(rows: pd.DataFrame, metric: str) -> dict:
    """Per method (model, forward, backward): its per-seed median of ``metric`` (over repeats)."""
    sub = rows[(rows["metric"] == metric) & ~rows["backward"].isin(NO_METHOD)]
    sub = sub[np.isfinite(sub["value"])]
    per_seed = sub.groupby(["model", "forward", "backward", "seed"])["value"].median()
    return {key: part.droplevel([0, 1, 2]) for key, part in per_seed.groupby(level=[0, 1, 2])}


WINNER_COLUMNS = ("task", "criterion", "verdict", "winner", "value", "metric", "unit", "candidates", "n")


@takes_store_frame
def table_winners(df: pd.DataFrame) -> pd.DataFrame:
    """Per task and problem: best final headline metric (per budget), most accurate gradient,
    fastest backward and least memory (per parameter state, i.e. epoch).

    A winner is named only when it beats every other method beyond the uncertainty across
    seeds (:func:`fpibench.report._verdict.rank`: paired t interval over common seeds, Welch's
    otherwise); ``verdict`` is "winner", "tie" or "no verdict" (a method with one seed),
    ``value`` the best mean, ``n`` the fewest seeds of a method.  Gradient errors measured
    against a reference that did not converge are left out."""
    records = []

    def add(task, criterion, values: dict, higher, metric):
        values = {method_name(*k): v for k, v in values.items()}
        if not values:
            return
        outcome = rank(values, higher)
        records.append(dict(task=task, criterion=criterion, verdict=outcome.verdict, winner=outcome.text,
                            value=float(values[outcome.best].mean()), metric=metric, unit=unit_of(df, metric),
                            candidates=len(values), n=outcome.n))

    for task in sorted(set(df.loc[df["kind"].isin(["train", "gradient", "memory_curve"]), "task"])):
        train = df[(df["task"] == task) & (df["kind"] == "train")]
        metric = headline_metric(df, task)
        for panel, sub in train.groupby("panel"):
            # cells of one problem trained with different budgets are ranked apart, never averaged
            budgets = sub.groupby(["preset", "setting"])
            for (preset, setting), part in budgets:
                label = panel if budgets.ngroups == 1 else f"{panel}; {budget_label(preset, setting)}"
                if metric is not None:
                    final = final_epoch(part[part["metric"] == metric])
                    add(task, f"best final {metric} ({label})",
                        {k: v.groupby("seed")["value"].mean().dropna()
                         for k, v in final.groupby(["model", "forward", "backward"])},
                        higher_is_better(df, task, metric), metric)
                add(task, f"fastest training step ({label})", _seed_values(part, "step_seconds"), False,
                    "step_seconds")
        grad = df[(df["task"] == task) & (df["kind"] == "gradient")]
        for (panel, epoch), part in grad.groupby(["panel", "epoch"], dropna=False):
            label = panel if grad["epoch"].nunique() < 2 else f"{panel}; epoch {epoch:g}"
            trusted = part[~reference_unconverged(part)]
            add(task, f"most accurate gradient ({label})", _seed_values(trusted, "grad_rel_error"), False,
                "grad_rel_error")
            add(task, f"fastest backward ({label})", _seed_values(part, "backward_seconds"), False,
                "backward_seconds")
            for mem in ("saved_bytes", "peak_cuda_bytes", "peak_rss_bytes"):
                values = _seed_values(part, mem)
                if values:
                    add(task, f"least memory, {mem} ({label})", values, False, mem)
                    break
        curve = df[(df["task"] == task) & (df["kind"] == "memory_curve")]
        if grad.empty:
            for panel, part in curve.groupby("panel"):
                add(task, f"least memory, saved_bytes at the largest common forward budget ({panel})",
                    _memory_curve_at_common_budget(part), False, "saved_bytes")
    return pd.DataFrame(records, columns=list(WINNER_COLUMNS))


def _memory_curve_at_common_budget(rows: pd.DataFrame) -> dict:
    sub = rows[(rows["metric"] == "saved_bytes") & ~rows["backward"].isin(NO_METHOD) & np.isfinite(rows["value"])]
    if sub.empty:
        return {}
    budgets = sub.groupby(["model", "forward", "backward"])["budget"].agg(set)
    common = set.intersection(*budgets)
    if not common:
        return {}
    return _seed_values(sub[sub["budget"] == max(common)], "saved_bytes")


def pareto_front(x, y, higher_is_better: bool = False) -> np.ndarray:
    """Mask of the non-dominated points: lower cost ``x`` and better ``y`` (lower unless
    ``higher_is_better``); a point is dominated when another is no worse in both and
    strictly better in one."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    y = -y if higher_is_better else y
    keep = np.isfinite(x) & np.isfinite(y)
    front = np.zeros(len(x), dtype=bool)
    for i in np.flatnonzero(keep):
        others = keep.copy()
        others[i] = False
        dominated = others & (x <= x[i]) & (y <= y[i]) & ((x < x[i]) | (y < y[i]))
        front[i] = not dominated.any()
    return front


@takes_store_frame
def pareto_points(df: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Accuracy–cost points per (panel, method) with their Pareto-front membership.

    ``kind="gradient"``: x = median backward_seconds, y = median grad_rel_error (lower better),
    errors against a reference that did not converge left out; one panel per problem and
    parameter state.  ``kind="train"``: x = median step_seconds over all train steps (the
    train rows hold no separate backward time), y = mean over seeds of the final headline
    metric; one panel per problem, budget and FPI model (:func:`split_panels`).
    """
    columns = ["panel", "task", "model", "forward", "backward", "label", "x", "y", "x_metric", "y_metric",
               "higher_is_better", "on_front"]
    if kind not in ("gradient", "train"):
        raise ValueError(f"pareto_points: kind must be 'gradient' or 'train', got {kind!r}")
    keys = ["panel", "task", "model", "forward", "backward"]
    rows = df[df["kind"] == kind]
    if kind == "gradient":
        rows = split_panels(rows[~(reference_unconverged(rows) & rows["metric"].isin(REFERENCE_METRICS))],
                            by_epoch=True)
        x_metric = "backward_seconds"
        pts = rows[rows["metric"].isin(["backward_seconds", "grad_rel_error"])]
        table = pts.groupby([*keys, "metric"])["value"].median().unstack("metric")
        table = table.reindex(columns=["backward_seconds", "grad_rel_error"]).rename(
            columns={"backward_seconds": "x", "grad_rel_error": "y"}).reset_index()
        table["y_metric"], table["higher_is_better"] = "grad_rel_error", False
    else:
        x_metric = "step_seconds"
        rows = split_panels(rows)
        parts = []
        for task in sorted(set(rows["task"])):
            metric = headline_metric(df, task)
            if metric is None:
                continue
            final = final_epoch(rows[(rows["task"] == task) & (rows["metric"] == metric)])
            y = final.groupby(keys)["value"].mean().rename("y")
            x = rows[(rows["task"] == task) & (rows["metric"] == "step_seconds")].groupby(keys)["value"].median().rename("x")
            part = pd.concat([x, y], axis=1).reset_index()
            part["y_metric"], part["higher_is_better"] = metric, higher_is_better(df, task, metric)
            parts.append(part)
        table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*keys, "x", "y"])
    table = table.dropna(subset=["x", "y"])
    if table.empty:
        return pd.DataFrame(columns=columns)
    table["x_metric"] = x_metric
    table["label"] = method_labels(table)
    table["on_front"] = False
    for _, idx in table.groupby("panel").groups.items():
        sub = table.loc[idx]
        table.loc[idx, "on_front"] = pareto_front(sub["x"], sub["y"], bool(sub["higher_is_better"].iloc[0]))
    return table[columns].sort_values(["panel", "x"], kind="stable").reset_index(drop=True)


SEED_POINT_COLUMNS = ("task", "panel", "metric", "unit", "higher_is_better", "model", "forward", "backward", "label",
                      "seed", "value", "paper")


def _paper_value(task: str, model: str, preset: str) -> float:
    """The paper's own number for ``model`` where it was measured on our test set: Bibtex F1
    (Table 2), paper preset only.  The denoising PSNRs of the paper were measured on grey
    Flying Chairs crops, another test set than BSD68, so they are not drawn."""
    if preset != "paper" or task != "bibtex":
        return np.nan
    return next((row.value for row in paper.BIBTEX_F1 if row.model == model), np.nan)


def _panel_title(panel: str, preset: str, setting: str) -> str:
    """Problem and budget without repeating an option ("denoise sigma=15; preset quick, epochs=20");
    the baseline's init scale is dropped (it names a baseline, not a budget)."""
    rest, _ = split_init_scale(setting)
    shown = set(rest.split(", ")) if rest else set()
    words = [w for w in panel.split(" ") if w not in shown and not w.startswith("feedforward_init_scale=")]
    return f"{' '.join(words)}; {budget_label(preset, rest)}"


def _one_fpi_model_per_panel(cells: pd.DataFrame) -> pd.DataFrame:
    """A panel holding several FPI models (Bibtex, box: FPI_NN and FPI_GD) becomes one panel
    per FPI model ("bibtex fpi_gd; preset paper"), each with the panel's baselines."""
    out = []
    for panel, part in cells.groupby("panel", sort=False):
        baseline = part["backward"].isin(NO_METHOD)
        models = list(dict.fromkeys(part.loc[~baseline, "model"]))
        if len(models) < 2:
            out.append(part)
            continue
        problem, _, budget = panel.partition("; ")
        for model in models:
            chosen = part[baseline | (part["model"] == model)]
            out.append(chosen.assign(panel=f"{problem} {model}; {budget}"))
    return pd.concat(out, ignore_index=True) if out else cells


def split_panels(rows: pd.DataFrame, by_epoch: bool = False) -> pd.DataFrame:
    """``rows`` with ``panel`` set so that no panel mixes budgets or model kinds: one panel per
    problem, preset and training setting (epochs, data limits), per FPI model (with the
    problem's baselines) and, with ``by_epoch``, per parameter state (epoch)."""
    if rows.empty:
        return rows
    out = rows.copy()
    out["panel"] = [_panel_title(*k) for k in zip(out["panel"], out["preset"], out["setting"])]
    if by_epoch:
        many = out.groupby("panel")["epoch"].transform("nunique") > 1
        out.loc[many, "panel"] = [f"{p}, epoch {e:g}" for p, e in zip(out.loc[many, "panel"], out.loc[many, "epoch"])]
    return _one_fpi_model_per_panel(out)


@takes_store_frame
def seed_points(df: pd.DataFrame) -> pd.DataFrame:
    """Every training cell's final headline metric, one row per cell (= per seed), grouped in
    panels of one problem and one budget; the spread that seeds alone produce is then seen
    beside the differences between methods.  ``label`` names the method (a feedforward
    baseline trained with ``feedforward_init_scale`` gets " init×s"), ``paper`` is the paper's
    number for the row's model where it was measured on our test set (Bibtex, paper preset)."""
    parts = []
    for task in sorted(set(df.loc[df["kind"] == "train", "task"])):
        metric = headline_metric(df, task)
        if metric is None:
            continue
        rows = final_train_rows(df, task, metric)
        rows = rows[np.isfinite(rows["value"])]
        if rows.empty:
            continue
        cells = rows.groupby("cell_id", sort=False).agg(
            panel=("panel", "first"), preset=("preset", "first"), setting=("setting", "first"),
            model=("model", "first"), forward=("forward", "first"),
            backward=("backward", "first"), seed=("seed", "first"), value=("value", "mean")).reset_index()
        cells = split_panels(cells)
        cells["paper"] = [_paper_value(task, m, p) for m, p in zip(cells["model"], cells["preset"])]
        scale = cells["setting"].map(lambda s: split_init_scale(s)[1])
        labels = pd.Series("", index=cells.index, dtype=object)
        for _, idx in cells.groupby("panel").groups.items():
            labels.loc[idx] = method_labels(cells.loc[idx]).to_numpy()
        baseline = cells["backward"].isin(NO_METHOD) & (scale != 1.0)
        labels[baseline] = labels[baseline] + scale[baseline].map(lambda s: f" init×{s:g}")
        cells["label"] = labels
        cells["task"], cells["metric"], cells["unit"] = task, metric, unit_of(df, metric)
        cells["higher_is_better"] = higher_is_better(df, task, metric)
        parts.append(cells)
    if not parts:
        return pd.DataFrame(columns=list(SEED_POINT_COLUMNS))
    out = pd.concat(parts, ignore_index=True).assign(_m=lambda d: d["model"].map(_model_rank),
                                                     _p=lambda d: d["preset"] != "paper")
    out = out.sort_values(["task", "_p", "panel", "_m", "label", "seed"], kind="stable")
    return out[list(SEED_POINT_COLUMNS)].reset_index(drop=True)


@takes_store_frame
def table_non_ok(df: pd.DataFrame) -> pd.DataFrame:
    """Cells with rows whose status is not "ok", one line per (cell, status, reason)."""
    keys = ["cell_id", "task", "model", "forward", "backward", "seed", "kind", "status", "reason"]
    bad = df[df["status"] != "ok"]
    if bad.empty:
        return pd.DataFrame(columns=[*keys, "rows", "metrics"])
    out = bad.groupby(keys, dropna=False).agg(
        rows=("value", "size"), metrics=("metric", lambda s: ", ".join(sorted(set(s))))).reset_index()
    return out.sort_values(["status", "task", "cell_id"], kind="stable").reset_index(drop=True)


def cell_statuses(df: pd.DataFrame) -> pd.Series:
    """One status per cell: its first non-ok status (by row order), else "ok"."""
    def worst(s):
        bad = s[s != "ok"]
        return bad.iloc[0] if len(bad) else "ok"
    return df.groupby("cell_id")["status"].agg(worst)


@takes_store_frame
def code_summary(df: pd.DataFrame) -> dict:
    """Which code made the cells of each task (the tables are per task), and how many cells were
    made by other code than the one writing the report."""
    from ..fingerprint import code_label, same_code
    from ..harness._inventory import current_code

    current = current_code()
    cells = df.drop_duplicates("cell_id")
    labels = [code_label(f, c) for f, c in zip(cells["code_fingerprint"], cells["git_commit"])]
    other = [not same_code({"code_fingerprint": f, "git_commit": c}, current)
             for f, c in zip(cells["code_fingerprint"], cells["git_commit"])]
    by_task: dict = {}
    for task, label, is_other in zip(cells["task"], labels, other):
        key = label + (" — other code than this report's" if is_other else " — this code")
        by_task.setdefault(task, {}).setdefault(key, 0)
        by_task[task][key] += 1
    return {"code_by_task": dict(sorted(by_task.items())), "other_code_cells": int(sum(other)),
            "report_code": code_label(current["code_fingerprint"], current["git_commit"])}


def provenance_summary(df: pd.DataFrame) -> dict:
    """Counts and unique values of the provenance columns (for the report header)."""
    def counts(col):
        cells = df.drop_duplicates("cell_id")
        vals = cells[col][cells[col] != ""]
        return dict(vals.value_counts().sort_index().items())

    start = pd.to_datetime(df["start_time"].replace("", np.nan), errors="coerce", utc=True, format="ISO8601")
    end = pd.to_datetime(df["end_time"].replace("", np.nan), errors="coerce", utc=True, format="ISO8601")
    statuses = cell_statuses(df)
    kinds = df.drop_duplicates(["cell_id", "kind"])["kind"].replace("", "(none)")
    return {
        "cells": int(df["cell_id"].nunique()),
        "rows": int(len(df)),
        "cells_by_kind": dict(kinds.value_counts().sort_index().items()),
        "cells_by_status": dict(statuses.value_counts().sort_index().items()),
        "rows_by_status": dict(df["status"].value_counts().sort_index().items()),
        "tasks": counts("task"),
        "presets": counts("preset"),
        "git_commits": counts("git_commit"),
        "devices": {f"{d} ({n})" if n and n != d else (d or n): c for (d, n), c in
                    df.drop_duplicates("cell_id").groupby(["device", "device_name"]).size().items() if d or n},
        "dtypes": counts("dtype"),
        "torch_versions": counts("torch_version"),
        "python_versions": counts("python_version"),
        "fpibench_versions": counts("fpibench_version"),
        "cpu_names": counts("cpu_name"),
        "gpu_names": counts("gpu_name"),
        "first_start": None if start.isna().all() else start.min().isoformat(),
        "last_end": None if end.isna().all() else end.max().isoformat(),
        "resumed_cells": int(df.loc[df["metric"] == "resumed_after_epoch", "cell_id"].nunique()),
        **code_summary(df),
    }
