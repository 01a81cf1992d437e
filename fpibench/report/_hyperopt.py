"""Hyperparameter optimisation: each gradient method's outer optimisation and its time to a target.

The target validation loss of a (problem, seed) is set from the store, the same for every
method on that seed: ``best + TARGET_SLACK · (initial − best)``, with ``initial`` the
validation loss at the start (the first step's outer objective, the same for every method:
same λ₀, same inner solver) and ``best`` the lowest validation loss any method reached.  A
method's time to target is the training time (outer steps only, evaluation excluded) up to
the first outer step whose validation loss is at or under it; a method that never gets there
has none.  So the target measures how fast a method's hypergradients buy the improvement the
best method found, and moves when the store holds other methods.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._frame import takes_store_frame
from ._markdown import DASH, fmt, fmt_mean_std, markdown_table

TASK = "hyperopt"
TARGET_SLACK = 0.1  # the target leaves 10 % of the best improvement undone
_CELL = ["panel", "forward", "backward", "seed"]


def _per_cell(train: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: initial, best and final validation loss, final test loss, and its curve."""
    wide = train.pivot_table(index=_CELL + ["epoch"], columns="metric", values="value").reset_index()
    records = []
    for key, rows in wide.groupby(_CELL, sort=False):
        rows = rows.sort_values("epoch")
        records.append({**dict(zip(_CELL, key)), "initial": rows["train_loss"].iloc[0],
                        "best": rows["val_loss"].min(), "val_loss": rows["val_loss"].iloc[-1],
                        "test_loss": rows["test_loss"].iloc[-1], "steps": rows["epoch"].to_numpy(),
                        "curve": rows["val_loss"].to_numpy(), "elapsed": rows["elapsed_seconds"].to_numpy()})
    return pd.DataFrame(records)


def _to_target(cells: pd.DataFrame) -> pd.DataFrame:
    targets = cells.groupby(["panel", "seed"]).apply(
        lambda g: g["best"].min() + TARGET_SLACK * (g["initial"].median() - g["best"].min()), include_groups=False)
    cells = cells.copy()
    cells["target"] = [targets[(p, s)] for p, s in zip(cells["panel"], cells["seed"])]
    reached = [np.flatnonzero(c <= t) for c, t in zip(cells["curve"], cells["target"])]
    cells["steps_to_target"] = [s[r[0]] if len(r) else np.nan for s, r in zip(cells["steps"], reached)]
    cells["seconds_to_target"] = [e[r[0]] if len(r) else np.nan for e, r in zip(cells["elapsed"], reached)]
    return cells


def _gradient(df: pd.DataFrame) -> pd.DataFrame:
    """Median over seeds of the hypergradient error and cost at λ₀ and after the outer steps."""
    rows = df[(df["task"] == TASK) & (df["kind"] == "gradient")]
    rows = rows[rows["metric"].isin(["grad_rel_error", "vjp_calls", "backward_seconds"])]
    if rows.empty:
        return pd.DataFrame(columns=["panel", "forward", "backward"])
    last = rows["epoch"] > 0
    rows = rows.assign(metric=rows["metric"] + np.where(last, "_final", "_init"))
    return rows.pivot_table(index=["panel", "forward", "backward"], columns="metric", values="value",
                            aggfunc="median").reset_index()


@takes_store_frame
def table_hyperopt(df: pd.DataFrame) -> pd.DataFrame:
    """Per method: final validation and test loss (mean and sd over seeds), steps and seconds to
    the target validation loss (median over the seeds that reached it, and how many did), the
    hypergradient's relative error, VJPs and backward time at λ₀ and at the end (medians)."""
    train = df[(df["task"] == TASK) & (df["kind"] == "train")]
    if train.empty:
        return pd.DataFrame()
    cells = _to_target(_per_cell(train))
    keys = ["panel", "forward", "backward"]
    out = cells.groupby(keys, sort=False).agg(
        seeds=("seed", "nunique"), val_loss=("val_loss", "mean"), val_loss_sd=("val_loss", "std"),
        test_loss=("test_loss", "mean"), test_loss_sd=("test_loss", "std"),
        reached=("seconds_to_target", lambda s: int(s.notna().sum())),
        steps_to_target=("steps_to_target", "median"), seconds_to_target=("seconds_to_target", "median"),
    ).reset_index()
    out = out.merge(_gradient(df), on=keys, how="left")
    return out.sort_values(["panel", "test_loss"]).reset_index(drop=True)


def section_hyperopt(table: pd.DataFrame) -> list[str]:
    if table.empty:
        return []
    lines = ["## Hyperparameter optimisation (per-feature L2 logistic regression)", ""]
    for panel, sub in table.groupby("panel", sort=False):
        records = []
        for row in sub.itertuples(index=False):
            records.append({
                "Gradient": row.backward, "Forward": row.forward, "Seeds": fmt(row.seeds, "count"),
                "val loss": fmt_mean_std(row.val_loss, row.val_loss_sd), "test loss": fmt_mean_std(row.test_loss, row.test_loss_sd),
                "to target (steps)": fmt(row.steps_to_target, "count"),
                "to target (time)": fmt(row.seconds_to_target, "s"), "reached": f"{row.reached}/{row.seeds}",
                "grad rel. error λ₀": fmt(getattr(row, "grad_rel_error_init", np.nan), "sci"),
                "VJPs λ₀": fmt(getattr(row, "vjp_calls_init", np.nan), "count"),
                "backward λ₀": fmt(getattr(row, "backward_seconds_init", np.nan), "s"),
                "grad rel. error end": fmt(getattr(row, "grad_rel_error_final", np.nan), "sci"),
            })
        lines += [f"### {panel}", ""] + markdown_table(pd.DataFrame(records).replace("nan", DASH)) + [""]
    lines.append(f"Losses in nats after the last outer step, mean ± sd over seeds, sorted by test loss. Target: the "
                 f"validation loss that leaves {TARGET_SLACK:.0%} of the best improvement over the start undone "
                 "(best: the lowest validation loss any method in this store reached on that seed); time: outer "
                 "steps only (inner solve + hypergradient + update), median over the seeds that reached it. grad "
                 "rel. error: ‖ĝ − g‖/‖g‖ against the float64 dense-solve hypergradient, at λ₀ and at the last λ "
                 "(medians over seeds).")
    return lines + [""]
