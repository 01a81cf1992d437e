"""Table 1's claim tested seed by seed: the implicit denoiser's PSNR gap to each feedforward
baseline, with its standard error and Welch's p-value.

The paper (Jeon, Lee & Choi, Table 1) reports one number per model and σ and claims FPI_NN
beats the feedforward denoiser at every σ with a gap that grows with σ.  Per preset, training
setting and σ this takes every seed's final-epoch PSNR and computes

    gap = mean(implicit) − mean(baseline),   se = √(s₁²/n₁ + s₂²/n₂),
    p   = Welch's two-sided t-test (unequal variances),

with its 95 % Welch t interval and verdict (:func:`._verdict.compare`; different models share
no initialisation, so their seeds are not paired), so a reader sees whether a gap exceeds
the seed spread.  Implicit models contribute one cell
per seed: the paper's method (Picard forward + backward FPI) where that seed has it, else the
seed's first other method by name (``methods`` names the cells used).  Feedforward cells trained with ``feedforward_init_scale`` form their own baseline
group ("feedforward init×0.1"), compared with implicit cells of the same remaining setting.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._frame import final_train_rows, headline_metric, split_init_scale, takes_store_frame
from ._verdict import compare
from .paper_numbers import PAPER_METHOD

BASELINE = "feedforward"
COLUMNS = ("preset", "setting", "sigma", "row", "n", "seeds", "values", "methods", "mean", "sd", "p_welch", "ci_low",
           "ci_high", "verdict")


def _group(model: str, scale: float) -> str:
    if model != BASELINE:
        return model
    return BASELINE if scale == 1.0 else f"{BASELINE} init×{scale:g}"


@takes_store_frame
def seed_cells(df: pd.DataFrame, task: str = "denoise") -> pd.DataFrame:
    """One row per cell and seed used by :func:`table_seed_gap`: preset, setting (without the
    baseline's init scale), σ, group, seed, method, cell_id and the final-epoch headline value."""
    columns = ["preset", "setting", "sigma", "group", "seed", "method", "cell_id", "value"]
    metric = headline_metric(df, task)
    if metric is None:
        return pd.DataFrame(columns=columns)
    rows = final_train_rows(df, task, metric)
    if rows.empty:
        return pd.DataFrame(columns=columns)
    split = rows["setting"].map(split_init_scale)
    cells = pd.DataFrame({
        "preset": rows["preset"], "setting": split.map(lambda s: s[0]), "sigma": rows["sigma"],
        "group": [_group(m, s[1]) for m, s in zip(rows["model"], split)], "seed": rows["seed"],
        "method": np.where(rows["model"] == BASELINE, "", rows["forward"] + "+" + rows["backward"]),
        "cell_id": rows["cell_id"], "value": rows["value"]})
    rank = cells["method"].map(lambda m: (m != "+".join(PAPER_METHOD), m))
    cells = cells.assign(_rank=rank).sort_values(["preset", "setting", "sigma", "group", "seed", "_rank"])
    keys = ["preset", "setting", "sigma", "group", "seed"]
    return cells.drop_duplicates(keys).drop(columns="_rank").reset_index(drop=True)[columns]


def _gap(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """mean(a) − mean(b), its standard error and Welch's two-sided p (NaN with < 2 values a side)."""
    from scipy import stats

    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return diff, np.nan, np.nan
    se = float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
    p = float(stats.ttest_ind(a, b, equal_var=False).pvalue) if se > 0 else np.nan
    return diff, se, p


@takes_store_frame
def table_seed_gap(df: pd.DataFrame, task: str = "denoise") -> pd.DataFrame:
    """Per (preset, setting, σ): one row per group (its seeds, values, methods, mean, sample
    sd) then one ``gap <model> − <baseline>`` row per implicit model and baseline (``mean`` =
    the gap, ``sd`` = its standard error, ``p_welch``).  Only settings holding both an implicit
    model and a feedforward baseline appear."""
    cells = seed_cells(df, task)
    out = []
    for (preset, setting, sigma), part in cells.groupby(["preset", "setting", "sigma"], dropna=False, sort=True):
        groups = {g: sub.sort_values("seed") for g, sub in part.groupby("group")}
        implicit = sorted(g for g in groups if not g.startswith(BASELINE))
        baselines = sorted((g for g in groups if g.startswith(BASELINE)), key=lambda g: (g != BASELINE, g))
        if not implicit or not baselines:
            continue
        key = dict(preset=preset, setting=setting, sigma=sigma)
        for name in implicit + baselines:
            sub = groups[name]
            values = sub["value"].to_numpy(dtype=float)
            out.append(dict(key, row=name, n=len(sub), seeds=" / ".join(f"{s:g}" for s in sub["seed"]),
                            values=" / ".join(f"{v:.2f}" for v in values),
                            methods=" / ".join(sub["method"]) if name in implicit else "",
                            mean=float(values.mean()), sd=float(values.std(ddof=1)) if len(values) > 1 else np.nan))
        for model in implicit:
            for base in baselines:
                a, b = (groups[g]["value"].to_numpy(dtype=float) for g in (model, base))
                diff, se, p = _gap(a, b)
                verdict = compare(a, b, higher_is_better=True, paired=False)
                out.append(dict(key, row=f"gap {model} − {base}", n=len(a) + len(b), mean=diff, sd=se, p_welch=p,
                                ci_low=verdict.low, ci_high=verdict.high, verdict=verdict.verdict))
    return pd.DataFrame(out, columns=list(COLUMNS))
