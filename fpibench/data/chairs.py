"""Flying Chairs optical-flow data (Dosovitskiy et al. 2015).

Two layouts are recognised by the files present:

* release: ``<root>/data/NNNNN_img1.ppm``, ``NNNNN_img2.ppm``, ``NNNNN_flow.flo`` numbered
  from 00001 (``data/`` may also be ``root`` itself);
* examples: ``<root>/NNNNNNN-img0.ppm``, ``-img1.ppm``, ``-gt.flo`` numbered from 0000000.

Sample ``i`` (0-based) is the i-th pair of the release; line ``i`` of the split list
(``FlyingChairs_train_val.txt`` or ``FlyingChairs_release_test_train_split.list``:
1 = train, 2 = val) gives its split.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._datadir import DataFormatError, DataNotFoundError
from ._download import ensure_dataset
from .flow import read_flo
from .images import read_ppm, rgb_to_gray

SPLIT_CODES = {"train": 1, "val": 2}
SPLIT_FILES = ("FlyingChairs_train_val.txt", "FlyingChairs_release_test_train_split.list")


@dataclass(frozen=True)
class _Layout:
    name: str
    first_image: re.Pattern  # file name of a sample's first image; group 1 = its number
    first_number: int        # number of sample 0
    suffixes: tuple[str, str, str]  # appended to the number: img0, img1, flow

    def files(self, folder: Path, number: str) -> tuple[Path, Path, Path]:
        return tuple(folder / f"{number}{s}" for s in self.suffixes)  # type: ignore[return-value]


RELEASE = _Layout("release", re.compile(r"(\d+)_img1\.ppm"), 1, ("_img1.ppm", "_img2.ppm", "_flow.flo"))
EXAMPLES = _Layout("examples", re.compile(r"(\d+)-img0\.ppm"), 0, ("-img0.ppm", "-img1.ppm", "-gt.flo"))


def _numbers(folder: Path, layout: _Layout) -> list[str]:
    """Sample numbers (as written in the file names) of ``layout`` in ``folder``, sorted."""
    found = (layout.first_image.fullmatch(name) for name in os.listdir(folder))
    return sorted((m.group(1) for m in found if m), key=int)


def _detect(root: Path) -> tuple[_Layout, Path, list[str]]:
    """(layout, folder holding the samples, sample numbers) for a Flying Chairs root."""
    for folder in (root / "data", root):
        for layout in (RELEASE, EXAMPLES):
            if folder.is_dir() and (numbers := _numbers(folder, layout)):
                return layout, folder, numbers
    raise DataNotFoundError(
        f"no Flying Chairs samples under {root}: expected data/NNNNN_img1.ppm (release) "
        "or NNNNNNN-img0.ppm (examples)")


def read_split_list(path: str | os.PathLike) -> np.ndarray:
    """Split codes (1 = train, 2 = val), one per sample, from a split list file."""
    codes = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        token = line.strip()
        if not token:
            continue
        if token not in ("1", "2"):
            raise DataFormatError(path, f"split code {token!r}, expected 1 (train) or 2 (val)", lineno)
        codes.append(int(token))
    return np.asarray(codes, dtype=np.int8)


def _find_split_file(root: Path, folder: Path) -> Path | None:
    for base in (root, folder, root.parent):
        for name in SPLIT_FILES:
            if (base / name).is_file():
                return base / name
    return None


class FlyingChairs:
    """Flying Chairs samples of one split; ``ds[k]`` -> ``(img0, img1, flow)``.

    ``img0``/``img1`` are uint8 (H, W, 3) and ``flow`` float32 (H, W, 2).
    ``split`` is "train", "val" or "all"; ``split_file`` overrides the split list search
    (``root``, the sample folder, then ``root``'s parent).
    """

    def __init__(self, root: str | os.PathLike, split: str = "train",
                 split_file: str | os.PathLike | None = None):
        if split not in (*SPLIT_CODES, "all"):
            raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}")
        self.root, self.split = Path(root), split
        self.layout, self.folder, numbers = _detect(self.root)
        samples = [(int(n) - self.layout.first_number, n) for n in numbers]
        if split != "all":
            samples = self._select(samples, split_file)
        if not samples:
            raise ValueError(f"no Flying Chairs samples in split {split!r} under {self.root}")
        self.indices = [i for i, _ in samples]
        self._files = [self._check_files(n) for _, n in samples]

    def _select(self, samples: list[tuple[int, str]], split_file) -> list[tuple[int, str]]:
        path = Path(split_file) if split_file is not None else _find_split_file(self.root, self.folder)
        if path is None:
            raise DataNotFoundError(f"no split list ({' or '.join(SPLIT_FILES)}) under {self.root} "
                                    "or its parent; pass split_file= or split='all'")
        codes = read_split_list(path)
        last = max(i for i, _ in samples)
        if last >= len(codes):
            raise DataFormatError(path, f"{len(codes)} split codes, but there is a sample with index {last}")
        return [(i, n) for i, n in samples if codes[i] == SPLIT_CODES[self.split]]

    def _check_files(self, number: str) -> tuple[Path, Path, Path]:
        files = self.layout.files(self.folder, number)
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            raise DataNotFoundError(f"Flying Chairs sample {number} is incomplete: missing {', '.join(missing)}")
        return files

    def __len__(self) -> int:
        return len(self._files)

    def paths(self, k: int) -> tuple[Path, Path, Path]:
        """The (img0, img1, flow) files of item ``k``."""
        return self._files[k]

    def __getitem__(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p0, p1, pf = self._files[k]
        img0, img1, flow = read_ppm(p0), read_ppm(p1), read_flo(pf)
        if img1.shape != img0.shape or flow.shape[:2] != img0.shape[:2]:
            raise DataFormatError(pf, f"sizes disagree: {p0.name} {img0.shape}, {p1.name} {img1.shape}, "
                                      f"flow {flow.shape}")
        return img0, img1, flow

    def __iter__(self):
        return (self[k] for k in range(len(self)))

    def __repr__(self) -> str:
        return f"FlyingChairs({str(self.root)!r}, split={self.split!r}, layout={self.layout.name!r}, n={len(self)})"


def load_chairs_examples(data_dir: str | os.PathLike | None = None, download: bool | None = None,
                         verify: bool = True) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The 9 real Flying Chairs example samples (flownet2 repo) as (img0, img1, flow) tuples."""
    folder = ensure_dataset("flyingchairs_examples", data_dir, download=download, verify=verify)
    return list(FlyingChairs(folder, split="all"))


def center_crop(image: np.ndarray, size: int, path: str | os.PathLike = "<array>") -> np.ndarray:
    """The central ``size`` x ``size`` window of an (H, W, ...) array."""
    height, width = image.shape[:2]
    if height < size or width < size:
        raise DataFormatError(path, f"image {height}x{width} is smaller than the {size}x{size} crop")
    top, left = (height - size) // 2, (width - size) // 2
    return image[top:top + size, left:left + size]


def chairs_denoising_crops(root: str | os.PathLike, n: int = 500, size: int = 180, n_train: int | None = None,
                           allow_fewer: bool = False) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The paper's denoising images: first ``n`` Flying Chairs samples (all splits), first image
    of each pair, centre ``size`` x ``size`` crop, gray float32 in [0, 255].

    Returns ``(train, test)``: the first ``n_train`` (default ``4n/5``, i.e. 400 of 500) and the rest.
    Fewer than ``n`` samples is an error unless ``allow_fewer``.
    """
    chairs = FlyingChairs(root, split="all")
    if len(chairs) < n and not allow_fewer:
        raise DataNotFoundError(f"only {len(chairs)} Flying Chairs samples under {root}, need n={n} "
                                "(pass allow_fewer=True to use what is there)")
    first_images = [chairs.paths(k)[0] for k in range(min(n, len(chairs)))]
    crops = [rgb_to_gray(center_crop(read_ppm(p), size, p)).astype(np.float32) for p in first_images]
    n_train = len(crops) * 4 // 5 if n_train is None else n_train
    return crops[:n_train], crops[n_train:]
