"""Declared options: each option's type and range is stated once and checked when given.

A method (forward solver, gradient method, the iteration loop) is a dataclass whose fields
are its options.  A field declared with :func:`option` carries a :class:`Check`; classes
deriving from :class:`Validated` check every declared field on construction and raise an
:class:`~fpibench.errors.OptionError` naming the method, the option, what it must be and
the value given, before anything runs.  :func:`describe` lists the options with their
defaults and constraints (``fpibench.available_methods()``).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from typing import Any, ClassVar, Optional

from .errors import OptionError

_CHECK = "fpibench.check"


class Check:
    """The values an option accepts; :meth:`describe` says which, in words."""

    def accepts(self, value: Any) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Integer(Check):
    """An integer (``True``/``False`` are not integers here) of at least ``low``."""

    low: int = 1

    def accepts(self, value):
        return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= self.low

    def describe(self):
        return f"an integer >= {self.low}"


@dataclasses.dataclass(frozen=True)
class Number(Check):
    """A real number (not a bool, not NaN) above ``low`` and up to ``high`` (``None``: unbounded);
    ``low_closed`` admits ``low`` itself."""

    low: float
    high: Optional[float] = None
    low_closed: bool = False

    def accepts(self, value):
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or math.isnan(value):
            return False
        above = value >= self.low if self.low_closed else value > self.low
        return above and (self.high is None or value <= self.high)

    def describe(self):
        if self.high is None:
            return f"a number {'>=' if self.low_closed else '>'} {self.low:g}"
        return f"a number in {'[' if self.low_closed else '('}{self.low:g}, {self.high:g}]"


@dataclasses.dataclass(frozen=True)
class OneOf(Check):
    """One of a few strings."""

    values: tuple

    def accepts(self, value):
        return isinstance(value, str) and value in self.values

    def describe(self):
        return "one of " + ", ".join(map(repr, self.values))


@dataclasses.dataclass(frozen=True)
class Flag(Check):
    """``True`` or ``False`` (not 0/1)."""

    def accepts(self, value):
        return isinstance(value, bool)

    def describe(self):
        return "True or False"


@dataclasses.dataclass(frozen=True)
class OrNone(Check):
    """``None`` (with the given meaning) or a value ``inner`` accepts."""

    inner: Check
    meaning: str

    def accepts(self, value):
        return value is None or self.inner.accepts(value)

    def describe(self):
        return f"None ({self.meaning}) or {self.inner.describe()}"


def option(default: Any, check: Check) -> Any:
    """A dataclass field for an option with ``default``, checked by ``check`` when given."""
    return dataclasses.field(default=default, metadata={_CHECK: check})


def declared(cls: type) -> dict[str, dataclasses.Field]:
    """The options of a dataclass: its init fields whose names do not start with ``_``."""
    return {f.name: f for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")}


def same_as(owner: type, name: str, inherit: Optional[str] = None) -> Any:
    """A field declaring option ``name`` as ``owner`` declares it, for a method that passes it
    on to ``owner``.  With ``inherit``, the default is ``None``, meaning ``inherit`` (e.g.
    "the forward solve's value"), and any value ``owner`` accepts may replace it."""
    field = declared(owner)[name]
    check = field.metadata[_CHECK]
    if inherit is None:
        return option(field.default, check)
    return option(None, OrNone(check.inner if isinstance(check, OrNone) else check, inherit))


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return None


def describe(cls: type) -> dict[str, dict[str, Any]]:
    """``{option: {"default": ..., "constraint": "..."}}`` for each option of ``cls``."""
    out = {}
    for name, field in declared(cls).items():
        check = field.metadata.get(_CHECK)
        out[name] = {"default": _default(field), "constraint": check.describe() if check else "not checked"}
    return out


@functools.lru_cache(maxsize=None)
def _checks(cls: type) -> tuple:
    """``(name, check)`` of each checked option of ``cls`` (computed once per class)."""
    return tuple((name, f.metadata[_CHECK]) for name, f in declared(cls).items() if _CHECK in f.metadata)


def validate(obj: Any, what: str) -> None:
    """Raise :class:`OptionError` for the first declared option of ``obj`` its check refuses."""
    for name, check in _checks(type(obj)):
        value = getattr(obj, name)
        if not check.accepts(value):
            raise OptionError(f"{what}: option {name} must be {check.describe()}, got {value!r} ({type(value).__name__})")


class Validated:
    """Mixin for a dataclass of options: every declared option is checked on construction.

    ``option_kind`` (e.g. "forward solver") and the instance's ``name`` name the method in
    the error."""

    option_kind: ClassVar[str] = "method"

    def __post_init__(self):
        name = getattr(self, "name", None)
        validate(self, f"{self.option_kind} {name!r}" if name else self.option_kind)


class GradientOptions(Validated):
    """Mixin for a gradient method's options (checked on construction)."""

    option_kind = "gradient method"
