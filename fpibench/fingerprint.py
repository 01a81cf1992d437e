"""Which code computed a number: a fingerprint of the package's sources that needs no git.

:func:`code_fingerprint` hashes every Python source of ``fpibench`` and its ``solvers``
subpackage (and the data manifest), by path relative to the package as installed, so a
source checkout and ``pip install .`` of the same code give the same fingerprint.  The
``report`` subpackage is left out: it only reads stores and computes no cell.  Every stored
cell records the fingerprint beside its git commit.

Cells stored before fingerprints were recorded carry only a commit; :func:`code_label` names
them by it, and :func:`same_code` counts them as made by this code only when they name the
very commit (without local edits) this code is checked out at.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Mapping, Optional, Tuple

PREFIX = "src-"
SKIPPED = ("report",)  # subpackages that read stores and compute no cell
DATA_FILES = ("data/manifest.txt",)
UNKNOWN = ("", "unknown")


def _sources(package: Path, prefix: str, skipped=()) -> Iterator[Tuple[str, Path]]:
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        if "__pycache__" in rel.parts or (rel.parts[0] in skipped and len(rel.parts) > 1):
            continue
        yield f"{prefix}{rel.as_posix()}", path


def source_files(package_dir=None, solvers_dir=None) -> list:
    """``(name as installed, path)`` of every file the fingerprint covers, sorted by name."""
    if package_dir is None or solvers_dir is None:
        import importlib.util

        import fpibench

        package_dir = Path(fpibench.__file__).resolve().parent
        # located, not imported: the core imports no solver module
        solvers_dir = Path(list(importlib.util.find_spec("fpibench.solvers").submodule_search_locations)[0]).resolve()
    package_dir, solvers_dir = Path(package_dir), Path(solvers_dir)
    files = dict(_sources(package_dir, "fpibench/", SKIPPED + ("solvers",)))
    files.update(_sources(solvers_dir, "fpibench/solvers/"))
    for name in DATA_FILES:
        if (package_dir / name).is_file():
            files[f"fpibench/{name}"] = package_dir / name
    return sorted(files.items())


def fingerprint_of(files) -> str:
    digest = hashlib.sha256()
    for name, path in files:
        digest.update(name.encode() + b"\0" + hashlib.sha256(Path(path).read_bytes()).digest())
    return PREFIX + digest.hexdigest()[:16]


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """The fingerprint of the code this process runs (computed once per process)."""
    return fingerprint_of(source_files())


def _short(commit: str) -> str:
    return commit[:12] + ("+dirty" if commit.endswith("+dirty") else "")


def code_label(fingerprint: Optional[str], commit: Optional[str]) -> str:
    """How a report or listing names the code that made a cell."""
    if fingerprint and fingerprint not in UNKNOWN:
        return f"code {fingerprint}" + (f" (commit {_short(commit)})" if commit and commit not in UNKNOWN else "")
    if commit and commit not in UNKNOWN:
        return f"commit {_short(commit)} (no code fingerprint)"
    return "unknown code (no fingerprint, no commit)"


def same_code(stored: Mapping[str, Optional[str]], current: Mapping[str, str]) -> bool:
    """Whether a cell's recorded ``code_fingerprint``/``git_commit`` name the ``current`` code."""
    fingerprint = stored.get("code_fingerprint")
    if fingerprint and fingerprint not in UNKNOWN:
        return fingerprint == current["code_fingerprint"]
    commit = stored.get("git_commit") or ""
    return commit not in UNKNOWN and not commit.endswith("+dirty") and commit == current["git_commit"]
