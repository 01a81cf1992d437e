"""Every report table as CSV (all columns, full precision) and as a LaTeX booktabs table.

The LaTeX view of a table DataFrame is derived from its columns, so any table function's
output can be exported: ``mean`` with ``std``/``sd`` becomes one "mean ± sd" column in the
row's ``unit``, the row a ``best`` column marks (the statistics rule of :mod:`._verdict`)
is set in bold, and columns with one value for every row move to the caption.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from ._markdown import DASH, fmt

_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                   "±": r"$\pm$", "×": r"$\times$", "σ": r"$\sigma$", "−": "--", "≥": r"$\geq$", "…": r"\dots{}"}
_SPREAD = ("std", "sd")


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def _is_blank(value) -> bool:
    if value is None or (isinstance(value, str) and value in ("", DASH)):
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _cell(value, unit: str = "") -> str:
    if _is_blank(value):
        return DASH
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return fmt(value, unit) if unit else (f"{value:g}" if float(value).is_integer() else fmt(value))
    return str(value)


def latex_view(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, dict]:
    """(text cells, bold mask per row, constant columns -> value) of a table as it is typeset."""
    units = frame["unit"].fillna("") if "unit" in frame else pd.Series("", index=frame.index)
    best = frame["best"].map(lambda b: b is True or b == 1.0) if "best" in frame else pd.Series(False, index=frame.index)
    spread = next((c for c in _SPREAD if c in frame), None)
    view = {}
    for col in frame.columns:
        if col in ("best", "unit") or col == spread:
            continue
        if col == "mean" and spread:
            view["mean ± sd"] = [_cell(m, u) if _is_blank(s) else f"{_cell(m, u)} ± {_cell(s, u)}"
                                 for m, s, u in zip(frame["mean"], frame[spread], units)]
        elif col in ("mean", "value", "reference_mean", "method_mean", "diff_mean", "ci_low", "ci_high"):
            view[col] = [_cell(v, u) for v, u in zip(frame[col], units)]
        else:
            view[col] = [_cell(v) for v in frame[col]]
    text = pd.DataFrame(view, index=frame.index)
    blank = [c for c in text if (text[c] == DASH).all()]
    constant = {c: text[c].iloc[0] for c in text if c not in blank and len(text) > 1 and text[c].nunique() == 1}
    if "unit" in frame and frame["unit"].nunique() == 1 and frame["unit"].iloc[0]:
        constant["unit"] = frame["unit"].iloc[0]
    return text.drop(columns=blank + [c for c in constant if c in text]), best, constant


def to_latex(frame: pd.DataFrame, caption: str = "", label: str = "") -> str:
    """A booktabs ``table`` of :func:`latex_view`; needs ``\\usepackage{booktabs}``."""
    text, best, constant = latex_view(frame)
    notes = "; ".join(f"{k}: {v}" for k, v in constant.items())
    caption = " ".join(p for p in (caption, f"({notes})" if notes else "") if p)
    lines = [r"\begin{table}", r"\centering", r"\small"]
    if caption:
        lines.append(r"\caption{" + latex_escape(caption) + "}")
    if label:
        lines.append(r"\label{" + label + "}")
    lines += [r"\begin{tabular}{" + "l" * max(1, len(text.columns)) + "}", r"\toprule",
              " & ".join(latex_escape(c) for c in text.columns) + r" \\", r"\midrule"]
    bold_col = "mean ± sd" if "mean ± sd" in text else ("mean" if "mean" in text else None)
    for idx, row in text.iterrows():
        cells = []
        for col, value in row.items():
            cell = latex_escape(value)
            cells.append(r"\textbf{" + cell + "}" if best[idx] and col == bold_col else cell)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def export_tables(tables: Mapping[str, pd.DataFrame], out_dir, captions: Mapping[str, str] = ()) -> list[Path]:
    """Write ``out_dir/<name>.csv`` and ``out_dir/<name>.tex`` for every non-empty table; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    captions = dict(captions)
    paths = []
    for name, frame in tables.items():
        if frame is None or frame.empty:
            continue
        csv, tex = out / f"{name}.csv", out / f"{name}.tex"
        frame.to_csv(csv, index=False)
        tex.write_text(to_latex(frame, captions.get(name, ""), f"tab:{name}"), encoding="utf-8")
        paths += [csv, tex]
    return paths
