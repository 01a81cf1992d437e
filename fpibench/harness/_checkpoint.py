"""Epoch checkpoints of a training cell, so that a cell longer than a session resumes.

A cell is written to the store only when it has finished, so without checkpoints a cell
interrupted in its last epoch loses every epoch (the paper-scale denoising cells take hours
on a CPU).  After every epoch the harness writes ``<store>/partial/<cell_id>.pt``: the model
and optimizer state, the rows so far, the training clock, the RNG states and the code
version.  A later run of the same cell continues after the last finished epoch; the driver
deletes the file once the cell is in the store.  Batches and noise are seeded by
(seed, epoch), so a resumed run trains on the same data as an uninterrupted one and, on the
same machine and code, gives the same numbers (tested).
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from ..results import ResultsError

FORMAT = 1
FOLDER = "partial"


def checkpoint_path(store, cell_id: str) -> Path:
    return Path(store) / FOLDER / f"{cell_id}.pt"


def _rng_states() -> Dict[str, Any]:
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng(states: Dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save(path, *, config_hash: str, epoch: int, model, optimizer, rows: List[dict], elapsed: float,
         commit: str) -> None:
    """Write the state after ``epoch`` atomically (a kill mid-write leaves the previous file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, "config_hash": config_hash, "epoch": epoch, "model": model.state_dict(),
             "optimizer": optimizer.state_dict(), "rows": rows, "elapsed": elapsed, "commit": commit,
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
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated, not a torch file, ...
        raise ResultsError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); "
                           "delete it to run the cell from the start") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ResultsError(f"checkpoint {path} is not an fpibench checkpoint of format {FORMAT}; "
                           "delete it to run the cell from the start")
    if state.get("config_hash") != config_hash:
        raise ResultsError(f"checkpoint {path} belongs to config {state.get('config_hash')!r}, not {config_hash!r}; "
                           "delete it to run the cell from the start")
    return state


def saved_epoch(path) -> Optional[int]:
    """The last epoch saved at ``path`` (``None``: no readable checkpoint), for sweep listings."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:
        return None
    return state.get("epoch") if isinstance(state, dict) else None


def restore(state: Dict[str, Any], model, optimizer) -> None:
    """Load model, optimizer and RNG states saved by :func:`save`."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    _restore_rng(state["rng"])
