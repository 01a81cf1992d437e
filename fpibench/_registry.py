"""String-keyed registries for forward solvers and gradient methods.

Built-in entries live in the top-level ``solvers/`` folder (installed as
``fpibench.solvers``).  Third-party packages register through the entry-point group
``fpibench.solvers``: each entry point names a module (imported for its registration side
effects) or a callable that is called with no arguments.
"""
from __future__ import annotations

import importlib
import warnings
from importlib import metadata
from typing import Any, Callable, Dict, Type

from ._iterate import IterationControl
from ._options import declared, describe
from .errors import OptionError, PluginWarning, UnknownMethodError

ENTRY_POINT_GROUP = "fpibench.solvers"


class Registry:
    """A name -> class mapping with aliases and helpful errors."""

    def __init__(self, kind: str):
        self.kind = kind
        self._classes: Dict[str, type] = {}
        self._aliases: Dict[str, str] = {}

    def register(self, name: str, cls: type | None = None, *, aliases: tuple[str, ...] = ()):
        """Register ``cls`` under ``name`` (usable as a decorator)."""

        def add(klass):
            if name in self._classes and self._classes[name] is not klass:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._classes[name] = klass
            for alias in aliases:
                self._aliases[alias] = name
            return klass

        return add(cls) if cls is not None else add

    def names(self) -> list[str]:
        _load_plugins()
        return sorted(self._classes)

    def aliases(self) -> dict[str, str]:
        _load_plugins()
        return dict(self._aliases)

    def resolve(self, name: str) -> str:
        _load_plugins()
        if not isinstance(name, str):
            raise UnknownMethodError(f"{self.kind} must be given by name (a str), got {type(name).__name__}")
        canonical = self._aliases.get(name, name)
        if canonical not in self._classes:
            valid = ", ".join(self.names() + sorted(self._aliases))
            raise UnknownMethodError(f"unknown {self.kind} {name!r}; valid names: {valid}")
        return canonical

    def get(self, name: str) -> type:
        return self._classes[self.resolve(name)]

    def create(self, name: str, options: dict | None = None, shared: tuple[str, ...] = ()):
        """Instantiate ``name`` with ``options``, rejecting options it does not take.

        ``shared``: option names the caller takes out of the same dict before (e.g. the loop
        options in ``forward_options``); they are listed with the valid names in the error."""
        cls = self.get(name)
        return build_with_options(cls, options or {}, f"{self.kind} {self.resolve(name)!r}", shared)

    def describe(self) -> dict[str, dict[str, Any]]:
        """Each entry's options: ``{name: {option: {"default": ..., "constraint": ...}}}``."""
        return {name: _describe(self._classes[name]) for name in self.names()}


def _describe(cls: type) -> dict[str, dict[str, Any]]:
    custom = getattr(cls, "describe_options", None)
    return custom() if custom is not None else describe(cls)


def build_with_options(cls: type, options: dict, what: str, shared: tuple[str, ...] = ()):
    """``cls(**options)`` after refusing unknown option names; the values are checked by ``cls``."""
    custom = getattr(cls, "from_options", None)
    if custom is not None:  # options that depend on another option (a solver named by option)
        return custom(options, what)
    if not isinstance(options, dict):
        raise OptionError(f"options for {what} must be a dict, got {type(options).__name__}")
    accepted = sorted(declared(cls)) + sorted(shared)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise OptionError(
            f"{what} does not take option(s) {', '.join(map(repr, unknown))}; "
            f"it takes: {', '.join(accepted) or 'no options'}"
        )
    return cls(**options)


FORWARD = Registry("forward solver")
BACKWARD = Registry("gradient method")

_plugins_loaded = False
_builtins_loaded = False


def _load_plugins() -> None:
    global _plugins_loaded, _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        importlib.import_module("fpibench.solvers")
    if _plugins_loaded:
        return
    _plugins_loaded = True
    try:
        entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except TypeError:  # pragma: no cover - Python < 3.10
        entry_points = metadata.entry_points().get(ENTRY_POINT_GROUP, [])
    for ep in entry_points:
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, type(importlib)):
                obj()
        except Exception as exc:  # a broken plugin must not break fpibench: name it and go on
            warnings.warn(
                f"fpibench plugin {ep.name!r} ({ep.value}) failed to load and is skipped: {type(exc).__name__}: {exc}",
                PluginWarning, stacklevel=2,
            )


def register_forward(name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[Type], Type]:
    """Decorator: register a forward solver class under ``name``."""
    return FORWARD.register(name, aliases=aliases)


def register_backward(name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[Type], Type]:
    """Decorator: register a gradient method class under ``name``."""
    return BACKWARD.register(name, aliases=aliases)


def available_methods() -> dict[str, dict[str, dict[str, Any]]]:
    """Every registered method with its options, each ``{"default": ..., "constraint": "..."}``:
    ``{"forward": {name: options}, "backward": {name: options}}``.  A forward solver's entry
    includes the loop options it takes in ``forward_options`` (``tol`` and ``max_iter`` are
    arguments of ``fixed_point`` itself)."""
    loop = {k: v for k, v in describe(IterationControl).items() if k in IterationControl.forward_option_names()}
    forward = {name: {**options, **loop} for name, options in FORWARD.describe().items()}
    return {"forward": forward, "backward": BACKWARD.describe()}
