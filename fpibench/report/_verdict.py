"""The rule every comparison of the report follows: statistics before verdicts.

A method is named better than another only when the difference exceeds the uncertainty
across seeds:

* both sides measured on at least two common seeds: the paired difference
  ``d_s = a_s − b_s`` and its Student-t interval ``mean(d) ± t(n−1) · sd(d) / √n``;
* otherwise, at least two seeds a side: Welch's interval for ``mean(a) − mean(b)``;
* otherwise (a side with one seed): no verdict.

The verdict is "better" / "worse" (for ``a``, given the metric's direction) when the
interval excludes 0, else "tie".  Ranking several candidates names a winner only when the
best mean beats every other candidate by this rule.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

LEVEL = 0.95
BETTER, WORSE, TIE, NO_VERDICT = "better", "worse", "tie", "no verdict"


@dataclass(frozen=True)
class Comparison:
    """``a`` against ``b``: mean difference a − b, its interval, the seeds behind it and the verdict."""

    diff: float
    low: float
    high: float
    n: int
    paired: bool
    verdict: str

    @property
    def how(self) -> str:
        """How the interval was formed, with its n: "paired t, n = 3", "Welch t, n = 5", "n = 1"."""
        if self.verdict == NO_VERDICT:
            return f"n = {self.n}"
        return f"{'paired' if self.paired else 'Welch'} t, n = {self.n}"


def _as_series(values) -> pd.Series:
    if isinstance(values, pd.Series):
        series = values
    elif isinstance(values, Mapping):
        series = pd.Series(values, dtype=float)
    else:
        series = pd.Series(np.asarray(values, dtype=float))
    return series[np.isfinite(series.to_numpy(dtype=float))].astype(float)


def _t_interval(mean: float, se: float, dof: float) -> tuple[float, float]:
    from scipy import stats

    if se == 0:
        return mean, mean
    half = float(stats.t.ppf(0.5 + LEVEL / 2, dof)) * se
    return mean - half, mean + half


def compare(a, b, higher_is_better: bool, paired: bool = True) -> Comparison:
    """``a`` against ``b`` (each a Series indexed by seed, a mapping seed -> value, or an array).

    Pairs by seed when ``paired`` and both are indexed by at least two common seeds; NaN
    values are dropped first.  See the module docstring for the rule."""
    a, b = _as_series(a), _as_series(b)
    common = a.index.intersection(b.index) if paired else pd.Index([])
    if paired and len(common) >= 2:
        d = a.loc[common].to_numpy() - b.loc[common].to_numpy()
        n = len(d)
        low, high = _t_interval(float(d.mean()), float(d.std(ddof=1)) / np.sqrt(n), n - 1)
        return _verdict(float(d.mean()), low, high, n, True, higher_is_better)
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else np.nan
    if len(a) < 2 or len(b) < 2:
        return _verdict(diff, np.nan, np.nan, min(len(a), len(b)), False, higher_is_better)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = float(np.sqrt(va + vb))
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if se > 0 else 1.0
    low, high = _t_interval(diff, se, dof)
    return _verdict(diff, low, high, len(a) + len(b), False, higher_is_better)


def _verdict(diff, low, high, n, paired, higher) -> Comparison:
    if not np.isfinite(low) or not np.isfinite(high):
        verdict = NO_VERDICT
    elif low > 0 or high < 0:
        verdict = BETTER if (low > 0) == higher else WORSE
    else:
        verdict = TIE
    return Comparison(diff, low, high, n, paired, verdict)


@dataclass(frozen=True)
class Ranking:
    """The outcome of ranking candidates: ``verdict`` is "winner", "tie" or "no verdict";
    ``best`` the candidate with the best mean; ``tied`` the candidates not separated from it
    (``best`` first); ``n`` the fewest seeds of any candidate."""

    verdict: str
    best: str
    tied: tuple
    n: int

    @property
    def text(self) -> str:
        if self.verdict == "winner":
            return str(self.best)
        if self.verdict == TIE:
            return "tie: " + " = ".join(map(str, self.tied))
        return f"{NO_VERDICT} (n = {self.n})"


def rank(candidates: Mapping[str, pd.Series], higher_is_better: bool, paired: bool = True) -> Ranking:
    """The statistical winner among ``candidates`` (name -> values by seed): the best mean
    when it is better than every other candidate by :func:`compare`, else a tie with the
    candidates it is not separated from; a candidate with one seed allows no verdict."""
    series = {name: _as_series(v) for name, v in candidates.items()}
    series = {name: s for name, s in series.items() if len(s)}
    if not series:
        return Ranking(NO_VERDICT, "", (), 0)
    means = pd.Series([s.mean() for s in series.values()], index=pd.Index(list(series), tupleize_cols=False))
    best = means.idxmax() if higher_is_better else means.idxmin()
    n = min(len(s) for s in series.values())
    if len(series) < 2 or n < 2:
        return Ranking(NO_VERDICT, best, (best,), n)
    tied = [name for name in series if name != best
            and compare(series[best], series[name], higher_is_better, paired).verdict != BETTER]
    if not tied:
        return Ranking("winner", best, (best,), n)
    order = means[tied].sort_values(ascending=not higher_is_better).index
    return Ranking(TIE, best, (best, *order), n)


def ordering(candidates: Mapping[str, pd.Series], higher_is_better: bool, paired: bool = True) -> str:
    """Candidates best mean first, joined by " > " (better) where the next one is worse by
    :func:`compare`, " = " where they tie and " ? " where one side has a single seed:
    "fpi_nn > fpi_gd = feedforward"."""
    series = {name: _as_series(v) for name, v in candidates.items()}
    series = {name: s for name, s in series.items() if len(s)}
    names = sorted(series, key=lambda k: series[k].mean(), reverse=higher_is_better)
    if not names:
        return ""
    out = [names[0]]
    for prev, name in zip(names, names[1:]):
        verdict = compare(series[prev], series[name], higher_is_better, paired).verdict
        out += [{BETTER: ">", TIE: "=", NO_VERDICT: "?"}.get(verdict, "<"), name]
    return " ".join(out)
