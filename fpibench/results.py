"""The results store: one parquet file per finished cell, long format, with provenance.

Each row is one (cell, epoch or probe point, metric) value.  A cell file is written to a
temporary name in the same folder and renamed into place (atomic on POSIX), so a sweep
killed at any moment leaves either the whole file or nothing: resuming skips the cells
whose files exist.  Never pickle.

    store.write_cell(out_dir, cell_id, rows, provenance)
    df = fpibench.results.load(out_dir)
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

if TYPE_CHECKING:  # pragma: no cover
    import pandas

REQUIRED_COLUMNS = ("task", "model", "forward", "backward", "seed", "epoch", "metric", "value", "status")
CELL_SUFFIX = ".parquet"


class ResultsError(ValueError):
    """A results file that cannot be read, or rows that miss required columns."""


def config_hash(config: Mapping) -> str:
    """A stable 16-hex-digit hash of a cell's configuration (JSON with sorted keys)."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cell_path(out_dir, cell_id: str) -> Path:
    return Path(out_dir) / "cells" / f"{cell_id}{CELL_SUFFIX}"


def cell_done(out_dir, cell_id: str) -> bool:
    return cell_path(out_dir, cell_id).is_file()


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``'s model name where available)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def source_commit(package_dir) -> str:
    """The git commit of the checkout that holds this package's source, ``+dirty`` when
    ``fpibench/`` or ``solvers/`` have uncommitted edits; ``unknown`` for an installed copy,
    also one that sits inside some other git repository (a pyenv or conda tree kept in git
    would otherwise lend its own HEAD) and where git is missing."""
    here = Path(package_dir).resolve()

    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, cwd=here)

    try:
        top = git("rev-parse", "--show-toplevel")
        if top.returncode or Path(top.stdout.strip()).resolve() != here.parent:
            return "unknown"
        if git("ls-files", "--error-unmatch", "--", Path(__file__).name).returncode:
            return "unknown"  # a checkout, but not of this package's source
        head = git("rev-parse", "--verify", "-q", "HEAD")
        if head.returncode:
            return "unknown"  # files added, nothing committed yet
        changed = git("status", "--porcelain", "--", str(here), str(here.parent / "solvers")).stdout.strip()
        return head.stdout.strip() + ("+dirty" if changed else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance() -> dict:
    """Code fingerprint, git commit, package versions, device names: the columns every row carries."""
    import torch

    commit = source_commit(Path(__file__).resolve().parent)
    from . import __version__
    from .fingerprint import code_fingerprint

    return {
        "code_fingerprint": code_fingerprint(),
        "git_commit": commit,
        "fpibench_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "cpu_name": cpu_name(),
        "gpu_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "",
    }


def write_cell(out_dir, cell_id: str, rows: Iterable[Mapping], extra: Mapping | None = None) -> Path:
    """Write the rows of one finished cell atomically; ``extra`` columns are added to every row."""
    import pandas as pd

    frame = pd.DataFrame([{**(extra or {}), **row} for row in rows])
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ResultsError(f"cell {cell_id!r}: rows lack required column(s) {missing}")
    frame["cell_id"] = cell_id
    path = cell_path(out_dir, cell_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        frame.to_parquet(tmp, index=False)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _columns(path: Path) -> list:
    """The column names of a cell file (its schema only), or a :class:`ResultsError` naming it."""
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise ResultsError(f"cannot read results file {path}: {exc}") from exc


def check_schema(path) -> list:
    """The columns of the cell file at ``path``; an error naming it when required ones are missing."""
    columns = _columns(Path(path))
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ResultsError(f"results file {path} lacks required column(s) {', '.join(missing)}: it is not a cell "
                           "written by fpibench; move it out of the store's 'cells' folder")
    return columns


def stored_code(out_dir, cell_id: str) -> dict:
    """``code_fingerprint`` and ``git_commit`` recorded by a stored cell ("" where it records none)."""
    import pyarrow.parquet as pq

    path = cell_path(out_dir, cell_id)
    wanted = [c for c in ("code_fingerprint", "git_commit") if c in check_schema(path)]
    try:
        table = pq.read_table(path, columns=wanted) if wanted else None
    except Exception as exc:
        raise ResultsError(f"cannot read results file {path}: {exc}") from exc
    values = {c: table.column(c)[0].as_py() if table is not None and c in wanted and table.num_rows else ""
              for c in ("code_fingerprint", "git_commit")}
    return {k: v or "" for k, v in values.items()}


def load(out_dir) -> "pandas.DataFrame":
    """One DataFrame of every finished cell under ``out_dir`` (temporary files are ignored).

    Every file's schema is checked first: a file without the required columns, or one that is
    not parquet, is a :class:`ResultsError` naming it."""
    import pandas as pd

    folder = Path(out_dir) / "cells"
    if not folder.is_dir():
        raise ResultsError(f"no results store at {Path(out_dir)} (expected a 'cells' folder)")
    frames = []
    for path in sorted(folder.glob(f"*{CELL_SUFFIX}")):
        check_schema(path)
        try:
            frames.append(pd.read_parquet(path))
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise ResultsError(f"cannot read results file {path}: {exc}") from exc
    if not frames:
        return pd.DataFrame(columns=list(REQUIRED_COLUMNS) + ["cell_id"])
    return pd.concat(frames, ignore_index=True)
