"""A cell: one (task, model, forward solver, gradient method, seed, options) job.

Cells are plain data: they serialise to JSON (``to_dict``/``from_dict``) so any executor —
in process, a process pool, a dask cluster — can run them, and their ``cell_id`` (readable
name + config hash) names their file in the results store.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from ..results import config_hash

NO_FPI = "-"  # forward/backward of a model without an FPI layer


def _frozen(options: Optional[dict]) -> Dict[str, Any]:
    return dict(sorted((options or {}).items()))


@dataclass(frozen=True)
class Cell:
    """One job of a sweep.  ``model == "probe"`` for the gradient study on a probe task."""

    task: str
    model: str
    forward: str = "anderson"
    backward: str = "backward_fpi"
    seed: int = 0
    preset: str = "quick"
    task_options: Dict[str, Any] = field(default_factory=dict)
    forward_options: Dict[str, Any] = field(default_factory=dict)
    backward_options: Dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    epochs: Optional[int] = None  # None: the preset's
    study: bool = True  # gradient-study rows at initialisation and after training

    def __post_init__(self):
        for name in ("task_options", "forward_options", "backward_options"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    def __hash__(self):
        return hash(self.cell_id)

    @property
    def is_probe(self) -> bool:
        return self.model == "probe"

    @property
    def has_fpi(self) -> bool:
        return self.forward != NO_FPI

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Cell":
        return cls(**data)

    @property
    def config_hash(self) -> str:
        return config_hash(self.to_dict())

    @property
    def cell_id(self) -> str:
        opts = "".join(f"-{k}{v}" for k, v in self.task_options.items())
        name = f"{self.task}{opts}-{self.model}-{self.forward}-{self.backward}-s{self.seed}-{self.preset}"
        safe = "".join(ch if ch.isalnum() or ch in "-_.=" else "_" for ch in name)
        return f"{safe}-{self.config_hash[:8]}"

    @property
    def options_json(self) -> str:
        return json.dumps({k: getattr(self, k) for k in ("task_options", "forward_options", "backward_options", "epochs", "study")},
                          sort_keys=True, default=str)

    def problem_label(self) -> str:
        """``"denoise sigma=25"``, ``"contractive_tanh k=0.9 d=64"``: the facet a figure groups by."""
        opts = dict(self.task_options)
        if self.is_probe:
            parts = [self.task] + [f"{short}={opts[key]}" for key, short in (("k", "k"), ("dim", "d")) if key in opts]
            return " ".join(parts)
        return " ".join([self.task] + [f"{k}={v}" for k, v in opts.items()])
