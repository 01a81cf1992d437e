"""Reading the results store into one tidy frame for tables and figures.

``prepare`` adds every optional schema column that is missing (numbers as NaN, strings as
""), so the table and figure functions can select on any column of the schema without
checking for it; ``headline_metric`` / ``higher_is_better`` decide the headline of a task
from the rows (``headline`` flag) with the task registry as fallback.
"""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..results import ResultsError, load

STRING_COLUMNS = (
    "task", "model", "forward", "backward", "metric", "status", "reason", "kind", "preset", "problem",
    "unit", "cell_id", "config_hash", "options", "device", "device_name", "dtype", "start_time", "end_time",
    "code_fingerprint", "git_commit", "fpibench_version", "torch_version", "python_version", "cpu_name", "gpu_name",
)
FLOAT_COLUMNS = ("value", "seed", "epoch", "k", "sigma", "budget")
CELL_KEYS = ("task", "model", "forward", "backward", "seed", "preset", "problem", "kind")
METHOD_KEYS = ("model", "forward", "backward")
NO_METHOD = ("-", "")

# Headline metric names: the ones of the results schema, then the task classes' own names.
_HEADLINE_FALLBACK = {
    "denoise": ("psnr_bsd68", "psnr_chairs"),
    "bibtex": ("f1", "test_f1"),
    "box_constraint": ("test_mse",),
    "optical_flow": ("aepe", "aepe_chairs_examples", "aepe_chairs_val"),
}
_LOWER_IS_BETTER = re.compile(r"(mse|epe|error|loss|seconds|bytes)", re.I)
_SIGMA = re.compile(r"sigma\s*=\s*([0-9.]+)")


def load_store(results_dir) -> pd.DataFrame:
    """``fpibench.results.load`` plus :func:`prepare`; an empty store is a :class:`ResultsError`."""
    frame = load(results_dir)
    if frame.empty:
        raise ResultsError(f"results store at {Path(results_dir)} has no finished cells (no rows under 'cells/')")
    return prepare(frame)


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with every schema column present and typed; adds ``panel`` (problem, else task)."""
    df = frame.copy()
    for col in STRING_COLUMNS:
        df[col] = df[col].fillna("").astype(str) if col in df else ""
    for col in FLOAT_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df else np.nan
    df.loc[df["forward"] == "", "forward"] = "-"
    df.loc[df["backward"] == "", "backward"] = "-"
    df["headline"] = df["headline"].fillna(False).astype(bool) if "headline" in df else False
    if "higher_is_better" in df:
        df["higher_is_better"] = df["higher_is_better"].map(lambda v: np.nan if pd.isna(v) else float(bool(v)))
    else:
        df["higher_is_better"] = np.nan
    # sigma from the problem label ("denoise sigma=25") where the column is empty
    parsed = df["problem"].str.extract(_SIGMA, expand=False).astype(float)
    df["sigma"] = df["sigma"].fillna(parsed)
    if (df["cell_id"] == "").any():  # rows not written by write_cell: one cell per key
        keys = df[list(CELL_KEYS)].astype(str).agg("|".join, axis=1)
        df["cell_id"] = df["cell_id"].where(df["cell_id"] != "", keys)
    df["panel"] = df["problem"].where(df["problem"] != "", df["task"])
    df["setting"] = df["options"].map(_setting_label)
    return df


@functools.lru_cache(maxsize=None)
def _setting_label(options: str) -> str:
    """The training budget a cell departs from its preset with ("epochs=10", "train_limit=0,
    epochs=20"), from its options JSON; σ has its own column.  "" = the preset as is."""
    try:
        parsed = json.loads(options) if options else {}
    except ValueError:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((parsed.get("task_options") or {}).items()) if k != "sigma"]
    if parsed.get("epochs"):
        parts.append(f"epochs={parsed['epochs']}")
    return ", ".join(parts)


def budget_label(preset: str, setting: str) -> str:
    """"preset paper, epochs=40": the preset and the training budget a cell departs from it with."""
    return f"preset {preset or '—'}" + (f", {setting}" if setting else "")


_INIT_SCALE = "feedforward_init_scale="


def split_init_scale(setting: str) -> tuple[str, float]:
    """"feedforward_init_scale=0.1, epochs=40" -> ("epochs=40", 0.1); no scale -> (setting, 1.0).

    A feedforward baseline trained with a smaller initialisation is a different baseline,
    not a different budget: tables and figures compare it with implicit cells of the
    remaining setting."""
    parts = setting.split(", ") if setting else []
    scales = [float(p[len(_INIT_SCALE):]) for p in parts if p.startswith(_INIT_SCALE)]
    rest = ", ".join(p for p in parts if not p.startswith(_INIT_SCALE))
    return rest, (scales[0] if scales else 1.0)


def takes_store_frame(fn):
    """Let a table/figure function take ``results.load``'s frame as is: prepare it once."""
    @functools.wraps(fn)
    def wrapper(df, *args, **kwargs):
        return fn(df if "panel" in df.columns else prepare(df), *args, **kwargs)

    return wrapper


def _registry_attr(task: str, name: str):
    try:
        from ..tasks._base import _TASKS
        import fpibench.tasks  # noqa: F401  (registers the tasks)
    except Exception:  # pragma: no cover - the report must work without the task code
        return None
    return getattr(_TASKS.get(task), name, None) or None


def headline_metric(df: pd.DataFrame, task: str) -> str | None:
    """The task's headline metric: flagged rows first, then the schema/registry names present."""
    rows = df[(df["task"] == task) & (df["kind"] == "train")]
    flagged = rows.loc[rows["headline"], "metric"]
    if not flagged.empty:
        return str(flagged.value_counts().index[0])
    present = set(rows["metric"])
    candidates = list(_HEADLINE_FALLBACK.get(task, ())) + [_registry_attr(task, "metric")]
    for name in candidates:
        if name and name in present:
            return name
    return None


def higher_is_better(df: pd.DataFrame, task: str, metric: str) -> bool:
    """From the rows' ``higher_is_better`` column, else the task class, else the metric name."""
    flags = df.loc[(df["task"] == task) & (df["metric"] == metric), "higher_is_better"].dropna()
    if not flags.empty:
        return bool(flags.iloc[0])
    if _registry_attr(task, "metric") == metric:
        return bool(_registry_attr(task, "higher_is_better"))
    return not _LOWER_IS_BETTER.search(metric)


def unit_of(df: pd.DataFrame, metric: str) -> str:
    units = df.loc[(df["metric"] == metric) & (df["unit"] != ""), "unit"]
    return str(units.iloc[0]) if not units.empty else ""


def final_train_rows(df: pd.DataFrame, task: str, metric: str) -> pd.DataFrame:
    """``task``'s training rows of ``metric`` at the last epoch of each cell."""
    return final_epoch(df[(df["task"] == task) & (df["kind"] == "train") & (df["metric"] == metric)])


def final_epoch(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows at the last epoch of each cell (per metric)."""
    if rows.empty:
        return rows
    last = rows.groupby(["cell_id", "metric"])["epoch"].transform("max")
    return rows[rows["epoch"] == last]


def method_labels(rows: pd.DataFrame) -> pd.Series:
    """Short legend labels: the gradient method (the model for non-FPI models), with the
    model prefixed when several FPI models and the forward solver appended when several
    forward solvers occur in ``rows``."""
    fpi = rows[~rows["backward"].isin(NO_METHOD)]
    many_models = fpi["model"].nunique() > 1
    many_forwards = fpi["forward"].nunique() > 1

    def label(model, forward, backward):
        if backward in NO_METHOD:
            return model
        text = f"{model}/{backward}" if many_models else backward
        return f"{text} [{forward}]" if many_forwards else text

    return pd.Series([label(*t) for t in zip(rows["model"], rows["forward"], rows["backward"])],
                     index=rows.index, dtype=object)


def method_name(model: str, forward: str, backward: str) -> str:
    """A full method name for tables: ``fpi_nn / backward_fpi [anderson]`` or ``feedforward``."""
    if backward in NO_METHOD:
        return model
    return f"{model} / {backward} [{forward}]"


def with_labels(rows: pd.DataFrame) -> pd.DataFrame:
    out = rows.copy()
    out["label"] = method_labels(out) if not out.empty else pd.Series(dtype=object)
    return out
