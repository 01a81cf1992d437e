"""Bibtex multi-label data (Katakis et al. 2008, Mulan sparse ARFF release).

``load_bibtex("train")`` -> ``(X, Y)``: float32 arrays (4880, 1836) and (4880, 159);
``"test"`` has 2515 rows.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ._datadir import DataFormatError
from ._download import ensure_dataset

N_FEATURES = 1836
N_LABELS = 159
ROWS = {"train": 4880, "test": 2515}
LABEL_PREFIX = "TAG_"


def _attribute_name(rest: str) -> str:
    """Name in an ``@attribute <name> <type>`` line (``rest`` is after the keyword)."""
    rest = rest.strip()
    if rest[:1] in ("'", '"'):
        end = rest.find(rest[0], 1)
        return rest[1:end] if end > 0 else rest[1:]
    return rest.split(None, 1)[0] if rest else ""


def _read_header(lines: list[str], path: Path) -> tuple[list[str], int]:
    """Attribute names and the index of the first line after ``@data``."""
    names: list[str] = []
    for i, line in enumerate(lines):
        head = line.lstrip()[:10].lower()
        if head.startswith("@attribute"):
            names.append(_attribute_name(line.lstrip()[10:]))
        elif head.startswith("@data"):
            if not names:
                raise DataFormatError(path, "no @attribute lines before @data", i + 1)
            return names, i + 1
    raise DataFormatError(path, "no @data line (truncated or not an ARFF file)")


def _split_sizes(names: list[str], n_features: int | None, n_labels: int | None,
                 path: Path) -> tuple[int, int]:
    """(n_features, n_labels) from the header, checked against the requested sizes."""
    total = len(names)
    if n_features is None and n_labels is None:
        n_labels = next((k for k in range(total) if not names[total - 1 - k].startswith(LABEL_PREFIX)), total)
        if n_labels == 0:
            raise DataFormatError(path, f"no trailing {LABEL_PREFIX}* label attributes; pass n_labels")
    if n_features is None:
        n_features = total - n_labels
    if n_labels is None:
        n_labels = total - n_features
    if n_features < 0 or n_labels < 0 or n_features + n_labels != total:
        raise DataFormatError(path, f"header has {total} attributes, expected {n_features} features "
                                    f"+ {n_labels} labels = {n_features + n_labels}")
    return n_features, n_labels


def _parse_row(line: str, n_cols: int, path: Path, lineno: int) -> tuple[list[int], list[float]]:
    """Column indices and values of one sparse row ``{i v, j v, ...}``."""
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}")) or text.count("{") != 1 or text.count("}") != 1:
        raise DataFormatError(path, f"unbalanced braces in sparse row {text[:40]!r}", lineno)
    body = text[1:-1].strip()
    cols, vals = [], []
    for item in body.split(",") if body else ():
        parts = item.split()
        if len(parts) != 2:
            raise DataFormatError(path, f"bad sparse entry {item.strip()!r} (expected 'index value')", lineno)
        try:
            col, val = int(parts[0]), float(parts[1])
        except ValueError:
            raise DataFormatError(path, f"non-numeric sparse entry {item.strip()!r}", lineno) from None
        if not 0 <= col < n_cols:
            raise DataFormatError(path, f"attribute index {col} out of range [0, {n_cols})", lineno)
        if not math.isfinite(val):
            raise DataFormatError(path, f"non-finite value in {item.strip()!r}", lineno)
        cols.append(col)
        vals.append(val)
    return cols, vals


def read_arff_sparse(path: str | os.PathLike, n_features: int | None = None,
                     n_labels: int | None = None, n_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a sparse multi-label ARFF file -> ``(X, Y)`` float32 arrays.

    Label attributes are the last ``n_labels``; with neither size given they are the
    trailing ``TAG_*`` attributes.  ``n_rows`` checks the row count (truncation).
    Raises :class:`DataFormatError` naming the file and line for any bad row or header.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    names, start = _read_header(lines, path)
    n_features, n_labels = _split_sizes(names, n_features, n_labels, path)
    cols, vals = [], []
    for lineno, line in enumerate(lines[start:], start + 1):
        if not line.strip() or line.lstrip().startswith("%"):
            continue
        c, v = _parse_row(line, len(names), path, lineno)
        cols.append(c)
        vals.append(v)
    if n_rows is not None and len(cols) != n_rows:
        raise DataFormatError(path, f"{len(cols)} data rows, expected {n_rows} (truncated or wrong file)")
    dense = _to_dense(cols, vals, len(names))
    return dense[:, :n_features], dense[:, n_features:]


def _to_dense(cols: list[list[int]], vals: list[list[float]], n_cols: int) -> np.ndarray:
    """Dense float32 matrix from per-row column/value lists."""
    out = np.zeros((len(cols), n_cols), dtype=np.float32)
    lengths = [len(c) for c in cols]
    row_idx = np.repeat(np.arange(len(cols)), lengths)
    flat_cols = np.fromiter((c for row in cols for c in row), dtype=np.int64, count=sum(lengths))
    flat_vals = np.fromiter((v for row in vals for v in row), dtype=np.float32, count=sum(lengths))
    out[row_idx, flat_cols] = flat_vals
    return out


def load_bibtex(split: str, data_dir: str | os.PathLike | None = None, download: bool | None = None,
                verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Bibtex ``split`` ("train" 4880 rows / "test" 2515 rows) -> ``(X (n, 1836), Y (n, 159))``."""
    if split not in ROWS:
        raise ValueError(f"bibtex split must be one of {sorted(ROWS)}, got {split!r}")
    folder = ensure_dataset("bibtex", data_dir, download=download, verify=verify)
    return read_arff_sparse(folder / f"bibtex-{split}.arff", N_FEATURES, N_LABELS, ROWS[split])
