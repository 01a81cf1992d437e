"""The task protocol: everything a benchmark needs to train and evaluate one experiment.

A task owns its data, its models (FPI_NN, FPI_GD and non-FPI baselines), loss, metrics and
hyperparameters.  ``preset="paper"`` holds the values of the IEEE Access appendix;
``preset="quick"`` a small version that runs on a 2-core CPU in about a minute.  The
gradient method and forward solver are never a task's choice: they come in as
:class:`FPIConfig` so a harness can sweep them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import torch
from torch import nn

from ..errors import OptionError, UnknownMethodError
from ._options import COMMON_RANGES, check_options

_TASKS: Dict[str, type] = {}


def register_task(name: str) -> Callable[[type], type]:
    def add(cls):
        cls.name = name
        _TASKS[name] = cls
        return cls

    return add


def available() -> list[str]:
    """Names of the registered tasks."""
    return sorted(_TASKS)


def get(name: str, preset: str = "quick", data_dir=None, **overrides) -> "Task":
    """Build task ``name`` with a preset and option overrides (unknown names raise)."""
    if name not in _TASKS:
        raise UnknownMethodError(f"unknown task {name!r}; valid tasks: {', '.join(available())}")
    return _TASKS[name](preset=preset, data_dir=data_dir, **overrides)


@dataclass
class FPIConfig:
    """How the task's FPI layer is solved and differentiated (the harness sweeps these)."""

    forward: str = "anderson"
    backward: str = "backward_fpi"
    tol: Optional[float] = None  # None: the task's paper value
    max_iter: Optional[int] = None
    forward_options: Dict[str, Any] = field(default_factory=dict)
    backward_options: Dict[str, Any] = field(default_factory=dict)
    criterion: Optional[str] = None  # None: the task's paper criterion

    def layer_kwargs(self, tol: float, max_iter: int, criterion: str = "relative") -> dict:
        forward_options = dict(self.forward_options)
        forward_options.setdefault("criterion", self.criterion or criterion)
        return dict(
            forward=self.forward,
            backward=self.backward,
            tol=self.tol if self.tol is not None else tol,
            max_iter=self.max_iter if self.max_iter is not None else max_iter,
            forward_options=forward_options,
            backward_options=dict(self.backward_options),
        )


class Task:
    """Base class.  Subclasses define ``Config`` (a dataclass), ``PRESETS`` and the hooks."""

    name = "task"
    models: Tuple[str, ...] = ()
    metric: str = ""  # the headline metric
    higher_is_better = True
    #: metric name -> unit, for metrics the harness's name patterns do not cover ("test_accuracy": "%")
    units: Dict[str, str] = {}
    PRESETS: Dict[str, Dict[str, Any]] = {}
    #: option name -> its range (``_options.Range``/``one_of``); types come from ``Config``'s annotations
    OPTION_RANGES: Dict[str, Any] = COMMON_RANGES

    @dataclass
    class Config:
        pass

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "evaluate" in cls.__dict__:  # evaluation never records a graph, whoever calls it
            cls.evaluate = torch.no_grad()(cls.__dict__["evaluate"])

    def __init__(self, preset: str = "quick", data_dir=None, **overrides):
        if preset not in self.PRESETS:
            raise OptionError(f"task {self.name!r} has no preset {preset!r}; presets: {', '.join(self.PRESETS)}")
        check_options(f"task {self.name!r}", self.Config, self.OPTION_RANGES, overrides)
        self.preset = preset
        self.data_dir = data_dir
        self.config = self.Config(**{**self.PRESETS[preset], **overrides})
        self._data = None

    # -- data -------------------------------------------------------------------------
    @property
    def data(self):
        if self._data is None:
            self._data = self.load_data()
        return self._data

    def load_data(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def data_sets(self) -> Tuple[str, ...]:
        """The data sets of ``fpibench.data`` that :meth:`load_data` reads (checked before a sweep runs)."""
        return ()

    # -- models -----------------------------------------------------------------------
    def check_model(self, kind: str) -> None:
        if kind not in self.models:
            raise UnknownMethodError(f"task {self.name!r} has no model {kind!r}; models: {', '.join(self.models)}")

    def build_model(self, kind: str, fpi: Optional[FPIConfig] = None, seed: int = 0) -> nn.Module:
        self.check_model(kind)
        torch.manual_seed(seed)
        return self.make_model(kind, fpi or FPIConfig())

    def make_model(self, kind: str, fpi: FPIConfig) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- training ---------------------------------------------------------------------
    @property
    def epochs(self) -> int:
        return self.config.epochs

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=self.config.lr)

    def clip_norm(self) -> Optional[float]:
        return getattr(self.config, "clip_norm", None)

    def train_batches(self, epoch: int, seed: int) -> Iterator[tuple]:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: tuple) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def train_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, batch: tuple) -> float:
        """One optimisation step (the unit the harness times); returns the loss."""
        loss = self.loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.clip_norm()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        return loss.item()

    def evaluate(self, model: nn.Module) -> Dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, model: nn.Module, epochs: Optional[int] = None, seed: int = 0, on_epoch=None) -> list[dict]:
        """Train for ``epochs`` (default: the preset's), evaluating after each; returns the history."""
        optimizer = self.optimizer(model)
        history = []
        for epoch in range(1, (epochs or self.epochs) + 1):
            model.train()
            losses = [self.train_step(model, optimizer, batch) for batch in self.train_batches(epoch, seed)]
            model.eval()
            with torch.no_grad():
                metrics = self.evaluate(model)
            row = {"epoch": epoch, "train_loss": sum(losses) / max(len(losses), 1), **metrics}
            history.append(row)
            if on_epoch is not None:
                on_epoch(row)
        return history

    # -- gradient study ---------------------------------------------------------------
    def probe_batch(self, seed: int = 0) -> tuple:
        """A fixed batch at which gradient methods are compared."""
        return next(iter(self.train_batches(1, seed)))


def fpi_layers(model: nn.Module):
    """The FixedPointLayers inside a model."""
    from .._layer import FixedPointLayer

    return [m for m in model.modules() if isinstance(m, FixedPointLayer)]


def scale_init_(module: nn.Module, factor: float) -> nn.Module:
    """Multiply every parameter by ``factor`` (the paper's "10×/100× smaller than default")."""
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(factor)
    return module


def seeded_batches(n: int, batch_size: int, epoch: int, seed: int, drop_last: bool = False):
    """Index batches of a seeded permutation (same for every method at the same (seed, epoch))."""
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=gen)
    stop = n - (n % batch_size) if drop_last else n
    for start in range(0, stop, batch_size):
        yield perm[start : start + batch_size]
