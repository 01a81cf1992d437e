"""Middlebury ``.flo`` optical-flow files (as in Flying Chairs).

Layout, little-endian: float32 magic 202021.25 (bytes ``PIEH``), int32 width, int32
height, then height*width*2 float32 (u, v interleaved, row-major).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._datadir import DataFormatError

FLO_MAGIC = np.float32(202021.25)
_HEADER = 12
MAX_SIDE = 1 << 16


def _flo_size(data: bytes, path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) from a .flo header, validated against the file length."""
    if len(data) < _HEADER:
        raise DataFormatError(path, f"truncated .flo: {len(data)} bytes, header needs {_HEADER}")
    magic = np.frombuffer(data, "<f4", 1)[0]
    if magic != FLO_MAGIC:
        raise DataFormatError(path, f"wrong .flo magic {magic!r} (bytes {data[:4]!r}), expected 202021.25 ('PIEH')")
    width, height = (int(v) for v in np.frombuffer(data, "<i4", 2, offset=4))
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise DataFormatError(path, f"absurd .flo size {width}x{height} (width x height)")
    expected, got = height * width * 2 * 4, len(data) - _HEADER
    if got != expected:
        kind = "truncated" if got < expected else "trailing bytes in"
        raise DataFormatError(path, f"{kind} .flo: {got} data bytes, expected {expected} "
                                    f"for {width}x{height}x2 float32")
    return height, width


def read_flo(path: str | os.PathLike) -> np.ndarray:
    """Read a Middlebury .flo file -> float32 (H, W, 2) (u = x, v = y displacement)."""
    data = Path(path).read_bytes()
    height, width = _flo_size(data, path)
    return np.frombuffer(data, "<f4", offset=_HEADER).reshape(height, width, 2).astype(np.float32)


def write_flo(path: str | os.PathLike, flow: np.ndarray) -> None:
    """Write a float (H, W, 2) array as a Middlebury .flo file."""
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2 or 0 in flow.shape:
        raise ValueError(f"flow must have shape (H, W, 2), got {flow.shape}")
    height, width = flow.shape[:2]
    with open(path, "wb") as f:
        f.write(np.asarray(FLO_MAGIC, "<f4").tobytes())
        f.write(np.array([width, height], "<i4").tobytes())
        f.write(np.ascontiguousarray(flow, "<f4").tobytes())
