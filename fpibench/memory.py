"""Memory measurements: bytes saved for backward, counted once per storage."""
from __future__ import annotations

import contextlib

import torch


class SavedBytes:
    """Result of :func:`saved_tensor_bytes`: ``.bytes`` and ``.tensors`` (distinct storages)."""

    def __init__(self):
        self._storages: dict = {}

    def add(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = (storage.data_ptr(), str(tensor.device))
        self._storages[key] = max(self._storages.get(key, 0), storage.nbytes())

    @property
    def bytes(self) -> int:
        return sum(self._storages.values())

    @property
    def tensors(self) -> int:
        return len(self._storages)


@contextlib.contextmanager
def saved_tensor_bytes():
    """Count the bytes autograd saves for backward inside the block.

    Uses ``torch.autograd.graph.saved_tensors_hooks``; each storage counts once, so views
    and tensors saved by several nodes are not double-counted.
    """
    counter = SavedBytes()

    def pack(tensor):
        counter.add(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield counter
