"""CIFAR-10 from its official binary release (``cifar-10-binary.tar.gz``), never the pickled one.

The release (https://www.cs.toronto.edu/~kriz/cifar.html, 170,052,171 bytes, sha256 pinned in
``manifest.txt``) holds ``cifar-10-batches-bin/data_batch_{1..5}.bin`` (training, 10,000
images each) and ``test_batch.bin``.  Each file is a sequence of 3,073-byte records: one label
byte (0–9), then the 32×32 image as 1,024 red, 1,024 green and 1,024 blue bytes, each plane in
row-major order.  The archive is read in place (no extraction) and every file is checked: its
size must be a whole number of records, of the expected count, and every label must be 0–9.
"""
from __future__ import annotations

import os
import tarfile
import zlib
from pathlib import Path

import numpy as np

from ._datadir import DataFormatError
from ._download import dataset_files, ensure_dataset

SIDE = 32
CHANNELS = 3
RECORD_BYTES = 1 + CHANNELS * SIDE * SIDE  # 3073
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MEMBER_DIR = "cifar-10-batches-bin"
SPLITS = {"train": tuple(f"data_batch_{k}.bin" for k in range(1, 6)), "test": ("test_batch.bin",)}
RECORDS_PER_FILE = 10_000


def parse_batch(data: bytes, source: str | os.PathLike = "<bytes>", records: int | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Records of the binary format -> (uint8 images (N, 3, 32, 32), uint8 labels (N,)).

    Raises :class:`DataFormatError` naming ``source`` when the size is not a whole number of
    records (or not ``records`` of them) or a label is outside 0–9.
    """
    if len(data) % RECORD_BYTES or not data:
        raise DataFormatError(source, f"{len(data)} bytes is not a whole, non-zero number of {RECORD_BYTES}-byte "
                                      "records (label byte + 3072 pixel bytes)")
    count = len(data) // RECORD_BYTES
    if records is not None and count != records:
        raise DataFormatError(source, f"{count} records, expected {records}")
    table = np.frombuffer(data, np.uint8).reshape(count, RECORD_BYTES)
    labels = table[:, 0].copy()
    bad = np.flatnonzero(labels >= len(CLASSES))
    if bad.size:
        raise DataFormatError(source, f"record {int(bad[0])} has label {int(labels[bad[0]])}, expected 0-9")
    images = table[:, 1:].reshape(count, CHANNELS, SIDE, SIDE).copy()
    return images, labels


def read_batch_file(path: str | os.PathLike, records: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One ``*.bin`` file of the release (or of the same format) as (images, labels)."""
    return parse_batch(Path(path).read_bytes(), path, records)


def write_batch_file(path: str | os.PathLike, images: np.ndarray, labels: np.ndarray) -> None:
    """Write (N, 3, 32, 32) uint8 images and their labels in the release's binary format."""
    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype != np.uint8 or images.shape[1:] != (CHANNELS, SIDE, SIDE) or labels.shape != images.shape[:1]:
        raise ValueError(f"need uint8 images (N, 3, 32, 32) and N labels, got {images.dtype} {images.shape}, "
                         f"labels {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise ValueError("labels must be 0-9")
    table = np.concatenate([labels.astype(np.uint8)[:, None], images.reshape(len(images), -1)], axis=1)
    Path(path).write_bytes(table.tobytes())


def read_archive(archive: str | os.PathLike, split: str, records: int | None = RECORDS_PER_FILE
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The ``split`` ("train" or "test") of a ``cifar-10-binary.tar.gz``, read without extracting."""
    if split not in SPLITS:
        raise ValueError(f"unknown CIFAR-10 split {split!r}; splits: {', '.join(SPLITS)}")
    parts = []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for name in SPLITS[split]:
                member_name = f"{MEMBER_DIR}/{name}"
                try:
                    member = tar.getmember(member_name)
                except KeyError:
                    raise DataFormatError(archive, f"no member {member_name!r} in the archive") from None
                if not member.isfile():
                    raise DataFormatError(archive, f"member {member_name!r} is not a regular file")
                with tar.extractfile(member) as f:
                    parts.append(parse_batch(f.read(), f"{archive}:{member_name}", records))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DataFormatError(archive, f"cannot read the gzip'd tar archive ({exc})") from exc
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def load_cifar10(split: str = "train", data_dir: str | os.PathLike | None = None, download: bool | None = None,
                 verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 ``split``: uint8 images (N, 3, 32, 32) and labels (N,); 50,000 train / 10,000 test.

    The archive is fetched into ``<data dir>/cifar10/`` when missing (unless offline) and its
    sha256 checked against the manifest; offline without it, :class:`DataNotFoundError`.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown CIFAR-10 split {split!r}; splits: {', '.join(SPLITS)}")
    folder = ensure_dataset("cifar10", data_dir, download=download, verify=verify)
    (entry,) = dataset_files("cifar10")
    return read_archive(folder / Path(entry.path).name, split)
