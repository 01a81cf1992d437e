"""Task options: checked when a task is built, before any data is loaded or cell runs.

A task declares its options' types by the annotations of its ``Config`` dataclass and their
ranges in ``OPTION_RANGES`` (option name → :class:`Range` or :func:`one_of`); a numeric
option without a declared range must be >= 0.  :func:`check_options` refuses an unknown
name, a value of the wrong type (``dim="abc"``, ``True`` for a count) or out of range
(``dim=-5``) with a message that names the task, the option and what it accepts.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ..errors import OptionError


@dataclass(frozen=True)
class Range:
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def __str__(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return " and ".join(parts) or "any value"


@dataclass(frozen=True)
class OneOf:
    values: tuple

    def __contains__(self, value) -> bool:
        return value in self.values

    def __str__(self) -> str:
        return "one of " + ", ".join(map(repr, self.values))


def one_of(*values) -> OneOf:
    return OneOf(tuple(values))


COUNT = Range(1)  # sizes, epochs, iteration caps
POSITIVE = Range(0, low_open=True)  # learning rates, tolerances, noise levels
NONNEGATIVE = Range(0)  # the default for numbers: seeds, limits where 0 means "all", scales
COMMON_RANGES = {"epochs": COUNT, "batch_size": COUNT, "hidden": COUNT, "max_iter": COUNT, "lr": POSITIVE,
                 "tol": POSITIVE}


def _type_name(kind) -> str:
    return getattr(kind, "__name__", str(kind).replace("typing.", ""))


def _type_ok(value, kind) -> bool:
    origin = typing.get_origin(kind)
    if origin is tuple:
        items = typing.get_args(kind)
        return (isinstance(value, (tuple, list)) and len(value) == len(items)
                and all(_type_ok(v, k) for v, k in zip(value, items)))
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is str:
        return isinstance(value, str)
    return True  # a type this check does not know: the task checks it itself


def check_options(owner: str, config: type, ranges: Mapping[str, Any], overrides: Mapping[str, Any]) -> None:
    """Refuse unknown options and values of the wrong type or out of their declared range."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise OptionError(f"{owner} does not take option(s) {', '.join(map(repr, unknown))}; "
                          f"it takes: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(config)
    for name, value in overrides.items():
        kind = hints.get(name)
        if not _type_ok(value, kind):
            raise OptionError(f"{owner}: option {name!r} must be {_type_name(kind)}, got {value!r}")
        allowed = ranges.get(name, NONNEGATIVE if kind in (int, float) else None)
        if allowed is not None and value not in allowed:
            raise OptionError(f"{owner}: option {name!r} must be {allowed}, got {value!r}")
