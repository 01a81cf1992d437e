"""Epoch checkpoints of a training cell, so that a cell longer than a session resumes.

A cell is written to the store only when it has finished, so without checkpoints a cell
interrupted in its last epoch loses every epoch (the paper-scale denoising cells take hours
on a CPU).  After every epoch the harness writes ``<store>/partial/<cell_id>.pt``: the model
and optimizer state, the rows so far, the training clock, the RNG states and the code
version.  A later run of the same cell continues after the last finished epoch; the driver
deletes the file once the cell is in the store.  Batches and noise are seeded by
(seed, epoch), so a resumed run trains on the same data as an uninterrupted one and, on the
same machine and code, gives the same numbers (tested).

A checkpoint holds plain data only (tensors, dicts, lists, numbers, strings) and is read with
``torch.load(weights_only=True)``, so a crafted file cannot run code when a sweep reads it.
Files of format 1 kept numpy's RNG state as a numpy array; they are still read, with numpy's
array constructor as the one extra allowed type.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from ..results import ResultsError

FORMAT = 2
READABLE_FORMATS = (1, 2)
FOLDER = "partial"


def checkpoint_path(store, cell_id: str) -> Path:
    return Path(store) / FOLDER / f"{cell_id}.pt"


def _rng_states() -> Dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, mt_state, gauss_next = random.getstate()
    states = {"torch": torch.get_rng_state(),
              "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                        "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
              "python": [version, list(mt_state), gauss_next]}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng(states: Dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    numpy_state = states["numpy"]
    if isinstance(numpy_state, dict):
        numpy_state = (numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                       numpy_state["has_gauss"], numpy_state["cached_gaussian"])
    np.random.set_state(numpy_state)
    version, mt_state, gauss_next = states["python"]
    random.setstate((version, tuple(mt_state), gauss_next))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _numpy_array_types() -> list:
    """What a pickled numpy array needs (format-1 checkpoints): its constructor, class and dtypes."""
    reconstruct = np.zeros(1).__reduce__()[0]
    return [reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def _why(exc: Exception) -> str:
    """The reason a file did not load, in one line (torch's own advice to load unsafely left out)."""
    text = str(exc)
    refused = [line.strip() for line in text.splitlines() if "GLOBAL" in line]
    if refused:
        return f"it is not plain data: {refused[0]} (fpibench checkpoints hold no code; this one was not written by fpibench)"
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def read_state(path) -> Any:
    """``torch.load`` that never runs code: tensors and plain containers only (plus numpy arrays)."""
    with torch.serialization.safe_globals(_numpy_array_types()):
        return torch.load(path, map_location="cpu", weights_only=True)


def save(path, *, config_hash: str, epoch: int, model, optimizer, rows: List[dict], elapsed: float,
         commit: str, code_fingerprint: str = "") -> None:
    """Write the state after ``epoch`` atomically (a kill mid-write leaves the previous file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, "config_hash": config_hash, "epoch": epoch, "model": model.state_dict(),
             "optimizer": optimizer.state_dict(), "rows": rows, "elapsed": elapsed, "commit": commit,
             "code_fingerprint": code_fingerprint,
             "rng": _rng_states()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load(path, config_hash: str) -> Optional[Dict[str, Any]]:
    """The saved state, or ``None`` when there is no checkpoint; a file that cannot be read or
    belongs to another configuration is an error naming the file (delete it to start over)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = read_state(path)
    except Exception as exc:  # truncated, not a torch file, a pickle that asks for other code, ...
        raise ResultsError(f"checkpoint {path} cannot be read ({_why(exc)}); "
                           "delete it to run the cell from the start") from None
    if not isinstance(state, dict) or state.get("format") not in READABLE_FORMATS:
        raise ResultsError(f"checkpoint {path} is not an fpibench checkpoint of format {FORMAT}; "
                           "delete it to run the cell from the start")
    if state.get("config_hash") != config_hash:
        raise ResultsError(f"checkpoint {path} belongs to config {state.get('config_hash')!r}, not {config_hash!r}; "
                           "delete it to run the cell from the start")
    return state


def saved_epoch(path) -> Optional[int]:
    """The last epoch saved at ``path`` (``None``: no readable checkpoint), for sweep listings."""
    try:
        state = read_state(path)
    except Exception:
        return None
    return state.get("epoch") if isinstance(state, dict) else None


def restore(state: Dict[str, Any], model, optimizer) -> None:
    """Load model, optimizer and RNG states saved by :func:`save`."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    _restore_rng(state["rng"])
