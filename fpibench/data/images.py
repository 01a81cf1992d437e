"""Grayscale image sets for denoising: DnCNN Train400, BSD68, Set12.

Images are float32 arrays (H, W) with values in [0, 255].  Colour images are turned
gray with ITU-R 601 luma exactly as PIL's ``convert("L")`` does (:func:`rgb_to_gray`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ._datadir import DataFormatError
from ._download import dataset_files, ensure_dataset

# name -> (expected image count, allowed (H, W) shapes)
IMAGE_SETS: dict[str, tuple[int, frozenset[tuple[int, int]]]] = {
    "train400": (400, frozenset({(180, 180)})),
    "bsd68": (68, frozenset({(321, 481), (481, 321)})),
    "set12": (12, frozenset({(256, 256), (512, 512)})),
}
_GRAY_MODES = ("L", "RGB", "RGBA", "P", "LA", "1")
_SEP = rb"(?:\s|#[^\n]*\n)+"  # whitespace or comment lines between PPM header fields
_PPM_HEADER = re.compile(rb"P6" + _SEP + rb"(\d+)" + _SEP + rb"(\d+)" + _SEP + rb"(\d+)\s")
MAX_SIDE = 1 << 16


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> uint8 (H, W) luma, bit-exact with PIL ``convert("L")``."""
    r, g, b = (rgb[..., k].astype(np.uint32) for k in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def _pil():
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - pillow is in the data/test extras
        raise ImportError("reading PNG images needs pillow: pip install 'fpibench[data]'") from exc
    return Image


def read_gray_image(path: str | os.PathLike) -> np.ndarray:
    """Read an 8-bit image file as float32 (H, W) gray values in [0, 255]."""
    Image = _pil()
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            gray = np.asarray(im.convert("L")) if mode in _GRAY_MODES else None
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataFormatError(path, f"cannot read image ({exc})") from exc
    if gray is None:
        raise DataFormatError(path, f"unsupported image mode {mode!r} (need 8-bit gray or RGB)")
    return gray.astype(np.float32)


def read_ppm(path: str | os.PathLike) -> np.ndarray:
    """Read a binary PPM (P6, maxval <= 255) as uint8 (H, W, 3); header and size validated."""
    data = Path(path).read_bytes()
    match = _PPM_HEADER.match(data)
    if match is None:
        raise DataFormatError(path, f"not a binary PPM (P6) header: {data[:16]!r}")
    width, height, maxval = (int(g) for g in match.groups())
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE and 0 < maxval <= 255):
        raise DataFormatError(path, f"unsupported PPM size/maxval {width}x{height}, maxval {maxval}")
    expected, got = width * height * 3, len(data) - match.end()
    if got != expected:
        kind = "truncated" if got < expected else "trailing bytes"
        raise DataFormatError(path, f"{kind}: {got} pixel bytes, expected {expected} for {width}x{height} RGB")
    return np.frombuffer(data, np.uint8, offset=match.end()).reshape(height, width, 3).copy()


def _check_image(path: Path, image: np.ndarray, shapes: frozenset[tuple[int, int]]) -> None:
    if image.shape not in shapes:
        wanted = " or ".join(f"{h}x{w}" for h, w in sorted(shapes))
        raise DataFormatError(path, f"image is {image.shape[0]}x{image.shape[1]} (HxW), expected {wanted}")


def load_image_set(name: str, data_dir: str | os.PathLike | None = None, download: bool | None = None,
                   verify: bool = True) -> list[np.ndarray]:
    """All images of ``name`` ("train400", "bsd68", "set12") in file-name order, sizes checked."""
    if name not in IMAGE_SETS:
        raise ValueError(f"unknown image set {name!r}; known: {', '.join(IMAGE_SETS)}")
    count, shapes = IMAGE_SETS[name]
    folder = ensure_dataset(name, data_dir, download=download, verify=verify)
    paths = sorted(folder / Path(e.path).name for e in dataset_files(name))
    if len(paths) != count:
        raise DataFormatError(folder, f"{len(paths)} images, expected {count}")
    images = []
    for path in paths:
        image = read_gray_image(path)
        _check_image(path, image, shapes)
        images.append(image)
    return images
