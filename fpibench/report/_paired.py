"""Gradient methods compared on the same seeds: what a method changes against the paper's
backward FPI when the initialisation and data order are held fixed.

Means over different seed sets mix the method with the seed (on the small-initialised
denoiser one seed moves the 20-epoch PSNR by 0.5 dB, more than any method).  Per problem,
budget and model this pairs every method's cells with the reference method's cell of the
same seed and reports the paired difference of the final headline metric

    Δ_s = metric(method, seed s) − metric(reference, seed s),

its mean, range, the seeds on which the method is better / worse, the paired t-test p and the
95 % t interval of the mean difference with its verdict (:func:`._verdict.compare`: "better",
"worse", "tie" or "no verdict" at one seed), the ratio of training time (``elapsed_seconds``
at the final epoch, median over seeds) and the unconverged solves of both.  The reference is
the paper's gradient, backward FPI (Jeon, Lee & Choi, §3.2), with the forward solver that has
the most seeds (Picard, the paper's, on ties); without it, the method with the most seeds.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ._frame import NO_METHOD, final_epoch, headline_metric, higher_is_better, takes_store_frame, unit_of
from ._verdict import compare
from .paper_numbers import PAPER_METHOD

GROUP_KEYS = ("task", "panel", "preset", "setting", "model")
COLUMNS = (*GROUP_KEYS, "metric", "unit", "higher_is_better", "reference", "method", "seeds", "seed_list",
           "reference_mean", "method_mean", "diff_mean", "diff_min", "diff_max", "better_seeds", "worse_seeds", "p_paired", "ci_low", "ci_high", "verdict", "time_ratio",
           "unconverged_reference", "unconverged_method")


def _per_cell(df: pd.DataFrame, task: str, metric: str) -> pd.DataFrame:
    """One row per implicit-model cell: its group keys, method, seed, final metric, training
    seconds and unconverged solves summed over epochs."""
    train = df[(df["task"] == task) & (df["kind"] == "train") & ~df["backward"].isin(NO_METHOD)]
    keys = ["cell_id", *GROUP_KEYS, "forward", "backward", "seed"]
    final = final_epoch(train[train["metric"] == metric]).drop_duplicates("cell_id")
    if final.empty:
        return pd.DataFrame(columns=[*keys, "method", "value", "seconds", "unconverged"])
    seconds = final_epoch(train[train["metric"] == "elapsed_seconds"]).groupby("cell_id")["value"].max()
    unconverged = train[train["metric"] == "unconverged_solves"].groupby("cell_id")["value"].sum(min_count=1)
    cells = final[keys + ["value"]].copy()
    cells["method"] = [f"{b} [{f}]" for f, b in zip(cells["forward"], cells["backward"])]
    cells["seconds"] = cells["cell_id"].map(seconds)
    cells["unconverged"] = cells["cell_id"].map(unconverged)
    return cells


def _reference(methods: pd.DataFrame) -> tuple[str, str]:
    """(forward, backward) of the reference: backward FPI with the most seeds, else any method."""
    counts = methods.groupby(["forward", "backward"])["seed"].nunique().reset_index()
    paper_forward, paper_backward = PAPER_METHOD
    ours = counts[counts["backward"] == paper_backward]
    pool = ours if len(ours) else counts
    pool = pool.assign(_other=pool["forward"] != paper_forward)
    pool = pool.sort_values(["seed", "_other", "forward", "backward"], ascending=[False, True, True, True])
    top = pool.iloc[0]
    return top["forward"], top["backward"]


@takes_store_frame
def table_paired_methods(df: pd.DataFrame) -> pd.DataFrame:
    """Per (task, problem, budget, model) and method: the paired difference to the reference
    method over the seeds both have (see the module docstring); methods without a shared seed
    are left out."""
    from scipy import stats

    out = []
    tasks = sorted(set(df.loc[(df["kind"] == "train") & ~df["backward"].isin(NO_METHOD), "task"]))
    for task in tasks:
        metric = headline_metric(df, task)
        if metric is None:
            continue
        higher, unit = higher_is_better(df, task, metric), unit_of(df, metric)
        cells = _per_cell(df, task, metric)
        for key, group in cells.groupby(list(GROUP_KEYS), sort=True):
            if group[["forward", "backward"]].drop_duplicates().shape[0] < 2:
                continue
            ref_fwd, ref_bwd = _reference(group)
            is_ref = (group["forward"] == ref_fwd) & (group["backward"] == ref_bwd)
            ref = group[is_ref].drop_duplicates("seed").set_index("seed")
            for (fwd, bwd), sub in group[~is_ref].groupby(["forward", "backward"], sort=True):
                sub = sub.drop_duplicates("seed").set_index("seed")
                seeds = sorted(set(sub.index) & set(ref.index))
                if not seeds:
                    continue
                a, b = sub.loc[seeds], ref.loc[seeds]
                diff = a["value"].to_numpy(float) - b["value"].to_numpy(float)
                p = (float(stats.ttest_rel(a["value"], b["value"]).pvalue)
                     if len(seeds) > 1 and np.ptp(diff) > 0 else np.nan)
                ratio = (a["seconds"] / b["seconds"]).to_numpy(float)
                verdict = compare(a["value"], b["value"], higher)
                out.append(dict(zip(GROUP_KEYS, key), metric=metric, unit=unit, higher_is_better=higher,
                                reference=ref["method"].iloc[0], method=sub["method"].iloc[0], seeds=len(seeds),
                                seed_list=" / ".join(f"{s:g}" for s in seeds),
                                reference_mean=float(b["value"].mean()), method_mean=float(a["value"].mean()),
                                diff_mean=float(diff.mean()), diff_min=float(diff.min()), diff_max=float(diff.max()),
                                better_seeds=int(((diff > 0) if higher else (diff < 0)).sum()),
                                worse_seeds=int(((diff < 0) if higher else (diff > 0)).sum()),
                                p_paired=p, ci_low=verdict.low, ci_high=verdict.high, verdict=verdict.verdict,
                                time_ratio=float(np.nanmedian(ratio)) if np.isfinite(ratio).any() else np.nan,
                                unconverged_reference=float(b["unconverged"].mean()),
                                unconverged_method=float(a["unconverged"].mean())))
    return pd.DataFrame(out, columns=list(COLUMNS))
