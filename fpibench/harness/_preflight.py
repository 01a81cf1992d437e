"""Checks of a sweep's data before any cell runs, so that a missing data set is one clear
error up front instead of a failure inside every cell that needs it.

A data dir named explicitly (``--data-dir`` or ``FPIBENCH_DATA``) must exist: nothing is
created under a path that does not.  Data sets missing from an existing data dir (or from the
default cache, which is created) are downloaded once here, unless downloading is off, in
which case the error lists what is missing and where to get it.
"""
from __future__ import annotations

import os
from typing import Iterable, Optional

from ..data import DataNotFoundError, ensure_dataset
from ..data._datadir import ENV_DATA, data_dir as resolve_data_dir
from ._cells import Cell


def data_sets(cells: Iterable[Cell], data_dir: Optional[str] = None) -> list:
    """The data sets the training cells of a sweep read, in first-use order."""
    from ..tasks import get as get_task

    names, seen = [], set()
    for cell in cells:
        key = (cell.task, cell.preset, cell.options_json)
        if cell.is_probe or key in seen:
            continue
        seen.add(key)
        task = get_task(cell.task, preset=cell.preset, data_dir=data_dir, **cell.task_options)
        names += [n for n in task.data_sets() if n not in names]
    return names


def check_data(cells: Iterable[Cell], data_dir: Optional[str] = None) -> None:
    """Raise :class:`DataNotFoundError` (whole message) when a data set the cells need is missing."""
    needed = data_sets(cells, data_dir)
    if not needed:
        return
    root = resolve_data_dir(data_dir)
    source = "--data-dir" if data_dir is not None else ENV_DATA if os.environ.get(ENV_DATA) else None
    if source is not None and not root.is_dir():
        raise DataNotFoundError(
            f"data dir {root} (from {source}) does not exist; the sweep needs the data set(s) {', '.join(needed)}. "
            f"Point {source} at the folder that holds them, or create {root} to download them into it.")
    for name in needed:
        ensure_dataset(name, root, verify=False)
