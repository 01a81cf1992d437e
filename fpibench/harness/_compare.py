"""Compare the cells of a fresh store with those of another (e.g. the committed ``results/quick``).

For every cell in both stores: each store's cell status (the worst row status) and its key
number (the last headline training metric; for a probe cell, the gradient's relative error),
and the code that made the other store's cell.  Cells whose status differs, or whose key
number differs by more than ``rtol``, are listed; the others are counted.
"""
from __future__ import annotations

import math

from ..fingerprint import code_label
from ..results import load

SEVERITY = ("ok", "not_converged", "diverged", "oom", "skipped", "failed")


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _summary(frame) -> dict:
    """cell_id → (status, key number, code label) of every cell in a store's frame."""
    out = {}
    for cell_id, rows in frame.groupby("cell_id"):
        statuses = set(rows["status"].astype(str))
        status = max(statuses, key=lambda s: SEVERITY.index(s) if s in SEVERITY else len(SEVERITY))
        headline = rows["headline"].fillna(False).astype(bool) if "headline" in rows else False
        heads = rows[(rows["kind"] == "train") & headline]
        if len(heads):
            value = float(heads.sort_values("epoch")["value"].iloc[-1])
        else:
            errors = rows[(rows["kind"] == "gradient") & (rows["metric"] == "grad_rel_error")]["value"]
            value = float(errors.iloc[0]) if len(errors) else math.nan
        first = rows.iloc[0]
        out[cell_id] = (status, value, code_label(_text(first.get("code_fingerprint")), _text(first.get("git_commit"))))
    return out


def _close(a: float, b: float, rtol: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= rtol * max(abs(a), abs(b), 1e-300)


def compare_stores(ours, theirs, rtol: float = 1e-6) -> str:
    """A plain-text comparison of the cells that both stores hold."""
    mine, other = _summary(load(ours)), _summary(load(theirs))
    shared = sorted(set(mine) & set(other))
    codes = sorted({other[c][2] for c in shared})
    lines = [f"compared with {theirs} ({', '.join(codes) or 'no shared cells'}): {len(shared)} cells in both stores"]
    differ = 0
    for cell_id in shared:
        (s1, v1, _), (s2, v2, _) = mine[cell_id], other[cell_id]
        if s1 != s2 or not _close(v1, v2, rtol):
            differ += 1
            lines.append(f"  {cell_id}: status {s1} vs {s2}, key number {v1:.6g} vs {v2:.6g}")
    lines.append(f"  {len(shared) - differ} the same (status, key number to {rtol:g} relative), {differ} different")
    return "\n".join(lines)
