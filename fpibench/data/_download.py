"""The data manifest, digest checks and downloads.

``manifest.txt`` lists every file of every data set with its sha256 and canonical
source URL (raw GitHub at a pinned commit; CIFAR-10's archive from its authors' page).  ``FPIBENCH_MIRROR=<base URL>`` replaces
each URL by ``<base URL>/<path under the data dir>`` (a mirror laid out like the data
dir).  ``FPIBENCH_OFFLINE=1`` turns downloading off.  Checking all digests of a data set
costs milliseconds (Train400: 400 files, 8 MB), so loaders verify on every load.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from ._datadir import ENV_DATA, CorruptDataError, DataNotFoundError
from ._datadir import data_dir as _resolve_dir

ENV_MIRROR = "FPIBENCH_MIRROR"
ENV_OFFLINE = "FPIBENCH_OFFLINE"
DATASETS = ("bibtex", "train400", "bsd68", "set12", "flyingchairs_examples", "cifar10")
LAYOUT = "bibtex/, dncnn/Train400/, dncnn/BSD68/, dncnn/Set12/, flyingchairs_examples/, cifar10/"
_CHUNK = 1 << 20
_SHOW_MISSING = 5
_log = logging.getLogger("fpibench.data")


class ManifestEntry(NamedTuple):
    """One file of a data set: its path under the data dir, sha256 and canonical URL."""

    dataset: str
    sha256: str
    path: str
    url: str


@lru_cache(maxsize=1)
def _manifest() -> tuple[ManifestEntry, ...]:
    text = resources.files(__package__).joinpath("manifest.txt").read_text(encoding="utf-8")
    rows = (line.split() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return tuple(ManifestEntry(*row) for row in rows)


def dataset_files(name: str) -> list[ManifestEntry]:
    """The manifest entries of data set ``name`` (one of :data:`DATASETS`)."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    return [e for e in _manifest() if e.dataset == name]


def dataset_folder(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder holding data set ``name`` under the data dir ``root``."""
    parents = {os.path.dirname(e.path) for e in dataset_files(name)}
    return _resolve_dir(root) / os.path.commonpath(sorted(parents))


def source_url(entry: ManifestEntry) -> str:
    """Where to download ``entry``: its canonical URL, or ``$FPIBENCH_MIRROR/<path>``."""
    mirror = os.environ.get(ENV_MIRROR)
    if not mirror:
        return entry.url
    return f"{mirror.rstrip('/')}/{urllib.parse.quote(entry.path)}"


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _check_digest(path: Path, expected: str, actual: str) -> None:
    if actual != expected:
        raise CorruptDataError(
            f"{path}: sha256 mismatch (expected {expected}, got {actual}); "
            "delete the file to download it again", path, expected, actual)


def verify_dataset(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Check the digests of the files of ``name`` that are present; return the paths checked.

    Raises :class:`CorruptDataError` naming the first file whose digest differs.
    """
    root, checked = _resolve_dir(data_dir), []
    for entry in dataset_files(name):
        path = root / entry.path
        if path.is_file():
            _check_digest(path, entry.sha256, file_sha256(path))
            checked.append(path)
    return checked


def _download_allowed(download: bool | None) -> bool:
    if download is not None:
        return bool(download)
    return os.environ.get(ENV_OFFLINE, "").strip().lower() not in ("1", "true", "yes", "on")


def download_file(url: str, dest: Path, sha256: str, timeout: float = 60.0) -> None:
    """Download ``url`` to ``dest`` via a temp file in the same folder, verify, rename.

    On a digest mismatch the temp file is removed and :class:`CorruptDataError` raised;
    network errors propagate (``OSError``/``urllib.error.URLError``) with nothing left behind.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            for block in iter(lambda: resp.read(_CHUNK), b""):
                h.update(block)
                out.write(block)
        _check_digest(dest, sha256, h.hexdigest())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _not_found(name: str, root: Path, missing: list[ManifestEntry], reason: str) -> DataNotFoundError:
    shown = ", ".join(e.path for e in missing[:_SHOW_MISSING])
    more = f" and {len(missing) - _SHOW_MISSING} more" if len(missing) > _SHOW_MISSING else ""
    total = len(dataset_files(name))
    return DataNotFoundError(
        f"data set {name!r}: {len(missing)} of {total} files missing under data dir {root}: "
        f"{shown}{more}. {reason}. Get them from {source_url(missing[0])} (and the same "
        f"folder for the others), place them under {root} with the layout {LAYOUT}, or set "
        f"{ENV_DATA} (or --data-dir) to a folder that has them.")


def ensure_dataset(name: str, data_dir: str | os.PathLike | None = None,
                   download: bool | None = None, verify: bool = True) -> Path:
    """Make sure every file of data set ``name`` is present; return the data set's folder.

    Missing files are downloaded (unless ``download=False`` or ``FPIBENCH_OFFLINE=1``) and
    checked against the manifest digest.  With ``verify`` the files already present are
    checked too.  Raises :class:`DataNotFoundError` when files are missing and cannot be
    downloaded, :class:`CorruptDataError` on a digest mismatch.  Never substitutes data.
    """
    root = _resolve_dir(data_dir)
    entries = dataset_files(name)
    missing = [e for e in entries if not (root / e.path).is_file()]
    if verify:
        verify_dataset(name, root)
    if missing:
        _fetch(name, root, missing, download)
    return dataset_folder(name, root)


def _fetch(name: str, root: Path, missing: list[ManifestEntry], download: bool | None) -> None:
    if not _download_allowed(download):
        raise _not_found(name, root, missing, f"Downloading is off ({ENV_OFFLINE}=1 or download=False)")
    for i, entry in enumerate(missing):
        url = source_url(entry)
        _log.info("downloading %s -> %s", url, root / entry.path)
        try:
            download_file(url, root / entry.path, entry.sha256)
        except (urllib.error.URLError, OSError) as exc:
            raise _not_found(name, root, missing[i:], f"Download of {url} failed ({exc})") from exc
