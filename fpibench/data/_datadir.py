"""Where the real data lives, and the errors raised when it is missing or bad.

Resolution order of :func:`data_dir`: an explicit ``override`` argument, then
:func:`set_data_dir` (what a ``--data-dir`` flag sets for the process), then the
environment variable ``FPIBENCH_DATA``, else the user cache
(``$XDG_CACHE_HOME/fpibench`` or ``~/.cache/fpibench``).

The layout under the data dir is fixed: ``bibtex/``, ``dncnn/Train400``,
``dncnn/BSD68``, ``dncnn/Set12``, ``flyingchairs_examples/``, ``cifar10/``.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_DATA = "FPIBENCH_DATA"

_process_dir: Path | None = None


class DataNotFoundError(FileNotFoundError):
    """Data files are missing and could not be downloaded."""


class CorruptDataError(ValueError):
    """A file's sha256 digest differs from the manifest."""

    def __init__(self, message: str, path: Path | str, expected: str, actual: str):
        super().__init__(message)
        self.path, self.expected, self.actual = Path(path), expected, actual


class DataFormatError(ValueError):
    """A file does not parse as its format (message names the file and, where known, the line)."""

    def __init__(self, path: Path | str, problem: str, line: int | None = None):
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.problem = Path(path), line, problem


def _as_path(value: str | os.PathLike) -> Path:
    return Path(os.fspath(value)).expanduser()


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/fpibench``, or ``~/.cache/fpibench``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = _as_path(xdg) if xdg else Path.home() / ".cache"
    return base / "fpibench"


def set_data_dir(path: str | os.PathLike | None) -> None:
    """Set the data dir for this process (``None`` clears it); beats ``FPIBENCH_DATA``."""
    global _process_dir
    _process_dir = None if path is None else _as_path(path)


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The data directory: ``override`` > :func:`set_data_dir` > ``$FPIBENCH_DATA`` > user cache."""
    if override is not None:
        return _as_path(override)
    if _process_dir is not None:
        return _process_dir
    env = os.environ.get(ENV_DATA)
    if env:
        return _as_path(env)
    return default_cache_dir()
