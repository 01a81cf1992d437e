"""scikit-learn's bundled handwritten digits: 1,797 grey 8×8 images, labels 0–9.

They ship inside the scikit-learn wheel (``sklearn/datasets/data/digits.csv.gz``, the test set
of the UCI "Optical Recognition of Handwritten Digits" data), so they need no download.  Pixel
values are counts 0–16.
"""
from __future__ import annotations

import numpy as np

from ._datadir import DataFormatError

DIGITS_COUNT = 1797
DIGITS_SIDE = 8
DIGITS_MAX = 16


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """float32 images (1797, 1, 8, 8) with values 0–16 and int64 labels (1797,), in file order."""
    try:
        from sklearn.datasets import load_digits as _sklearn_digits
    except ImportError as exc:
        raise ImportError("the digits images ship with scikit-learn: pip install 'fpibench[data]'") from exc
    bunch = _sklearn_digits()
    images, labels = np.asarray(bunch.images, np.float32), np.asarray(bunch.target, np.int64)
    if images.shape != (DIGITS_COUNT, DIGITS_SIDE, DIGITS_SIDE) or labels.shape != (DIGITS_COUNT,):
        raise DataFormatError("sklearn digits", f"images {images.shape}, labels {labels.shape}; expected "
                                                f"({DIGITS_COUNT}, 8, 8) and ({DIGITS_COUNT},)")
    if images.min() < 0 or images.max() > DIGITS_MAX or labels.min() < 0 or labels.max() > 9:
        raise DataFormatError("sklearn digits", "pixel values outside 0-16 or labels outside 0-9")
    return images[:, None], labels
