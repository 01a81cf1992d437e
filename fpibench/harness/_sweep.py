"""Expand a sweep (flags or a TOML/YAML file) into validated :class:`Cell` objects.

A sweep file holds shared settings and one or more grids; every list is an axis of the
grid, scalars are fixed values, and option tables expand over their list values::

    preset = "quick"
    seeds = [0, 1, 2]
    [[grid]]
    task = "denoise"
    model = ["feedforward", "fpi_nn"]
    forward = "anderson"
    backward = ["backward_fpi", "unroll", "jfb"]
    task_options = { sigma = [15, 20, 25] }

Every name and option is checked before anything runs: an unknown task, model, solver,
gradient method or option raises an error that names it and lists the valid choices.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from ..errors import OptionError, UnknownMethodError
from ._cells import NO_FPI, Cell

GRID_KEYS = {"task", "model", "forward", "backward", "seeds", "seed", "preset", "device", "epochs", "study",
             "task_options", "forward_options", "backward_options"}
SWEEP_KEYS = GRID_KEYS | {"grid", "name", "description"}
DEFAULTS = {"forward": "anderson", "backward": "backward_fpi", "seeds": [0], "preset": "quick", "device": "cpu",
            "epochs": None, "study": True}


class SweepError(OptionError):
    """A sweep file or flag set that cannot be expanded (names the problem)."""


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _option_grid(options: Optional[Mapping], where: str) -> List[Dict[str, Any]]:
    if options is None:
        return [{}]
    if not isinstance(options, Mapping):
        raise SweepError(f"{where} must be a table of option = value(s), got {type(options).__name__}")
    keys = sorted(options)
    axes = [_as_list(options[k]) or [None] for k in keys]
    return [dict(zip(keys, combo)) for combo in itertools.product(*axes)]


def _task_class(name: str):
    from ..tasks import _base

    if name not in _base._TASKS:
        raise UnknownMethodError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(_base._TASKS))}")
    return _base._TASKS[name]


def is_probe_task(name: str) -> bool:
    from ..tasks.probes import Probe

    return issubclass(_task_class(name), Probe)


def task_models(name: str) -> tuple:
    return ("probe",) if is_probe_task(name) else tuple(_task_class(name).models)


def _validate(cell: Cell) -> None:
    from .._fixed_point import build_methods
    from ..tasks import get as get_task

    get_task(cell.task, preset=cell.preset, **cell.task_options)  # checks preset and options (no data loaded)
    models = task_models(cell.task)
    if cell.model not in models:
        raise UnknownMethodError(f"task {cell.task!r} has no model {cell.model!r}; models: {', '.join(models)}")
    if cell.has_fpi:
        build_methods(cell.forward, cell.backward, forward_options=cell.forward_options, backward_options=cell.backward_options)
    if cell.device not in ("cpu", "cuda") and not cell.device.startswith("cuda:"):
        raise SweepError(f"device must be cpu or cuda[:n], got {cell.device!r}")
    if cell.epochs is not None and (not isinstance(cell.epochs, int) or cell.epochs < 1):
        raise SweepError(f"epochs must be a positive integer, got {cell.epochs!r}")


def expand_grid(grid: Mapping, defaults: Optional[Mapping] = None) -> List[Cell]:
    """Cells of one grid (a mapping of axis → value or list), validated; duplicates removed."""
    merged = {**DEFAULTS, **(defaults or {}), **grid}
    unknown = sorted(set(merged) - GRID_KEYS)
    if unknown:
        raise SweepError(f"unknown sweep key(s) {unknown}; valid keys: {sorted(GRID_KEYS)}")
    tasks = _as_list(merged.get("task"))
    if not tasks:
        raise SweepError("a sweep grid needs at least one task (key 'task')")
    seeds = _as_list(merged.get("seed", merged["seeds"]))
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise SweepError(f"seeds must be integers, got {seeds!r}")
    cells: List[Cell] = []
    for task in tasks:
        _task_class(task)
        models = _as_list(merged.get("model")) or list(task_models(task))
        for model, forward, backward, seed, preset, device, t_opts, f_opts, b_opts in itertools.product(
            models, _as_list(merged["forward"]), _as_list(merged["backward"]), seeds,
            _as_list(merged["preset"]), _as_list(merged["device"]),
            _option_grid(merged.get("task_options"), "task_options"),
            _option_grid(merged.get("forward_options"), "forward_options"),
            _option_grid(merged.get("backward_options"), "backward_options"),
        ):
            fpi = model == "probe" or model.startswith("fpi")  # fpi_nn, fpi_gd carry an FPI layer
            cell = Cell(
                task=task, model=model, forward=forward if fpi else NO_FPI, backward=backward if fpi else NO_FPI,
                seed=seed, preset=preset, task_options=t_opts, forward_options=f_opts if fpi else {},
                backward_options=b_opts if fpi else {}, device=device, epochs=merged["epochs"], study=bool(merged["study"]),
            )
            _validate(cell)
            cells.append(cell)
    return _unique(cells)


def _unique(cells: Iterable[Cell]) -> List[Cell]:
    seen, out = set(), []
    for cell in cells:
        if cell.cell_id not in seen:
            seen.add(cell.cell_id)
            out.append(cell)
    return out


def expand_sweep(spec: Mapping) -> List[Cell]:
    """Cells of a whole sweep spec: shared keys at top level, ``grid`` a table or list of tables."""
    if not isinstance(spec, Mapping):
        raise SweepError(f"a sweep must be a table of keys, got {type(spec).__name__}")
    unknown = sorted(set(spec) - SWEEP_KEYS)
    if unknown:
        raise SweepError(f"unknown sweep key(s) {unknown}; valid keys: {sorted(SWEEP_KEYS)}")
    shared = {k: v for k, v in spec.items() if k in GRID_KEYS}
    grids = spec.get("grid")
    if grids is None:
        return expand_grid(shared)
    grids = [grids] if isinstance(grids, Mapping) else grids
    if not isinstance(grids, list) or not all(isinstance(g, Mapping) for g in grids):
        raise SweepError("'grid' must be a table or a list of tables")
    return _unique(c for grid in grids for c in expand_grid(grid, shared))


def load_sweep_file(path) -> List[Cell]:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) sweep file and expand it.

    A bare name (no suffix, not a file) is one of the sweeps shipped in ``fpibench/sweeps``.
    """
    from .. import sweeps

    path = Path(path)
    if not path.is_file() and not path.suffix and sweeps.path(str(path)).is_file():
        path = sweeps.path(str(path))
    if not path.is_file():
        raise SweepError(f"sweep file {path} does not exist (named sweeps: {', '.join(sweeps.available())})")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            import tomllib

            spec = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            spec = yaml.safe_load(text)
        else:
            raise SweepError(f"sweep file {path}: unknown format {path.suffix!r} (use .toml, .yaml or .yml)")
    except SweepError:
        raise
    except Exception as exc:  # tomllib.TOMLDecodeError, yaml.YAMLError
        raise SweepError(f"sweep file {path} is not valid {path.suffix[1:].upper()}: {exc}") from exc
    try:
        return expand_sweep(spec)
    except (OptionError, UnknownMethodError) as exc:
        raise type(exc)(f"sweep file {path}: {exc}") from exc


def parse_list(text: Optional[str]) -> Optional[list]:
    """``"a,b"`` → ``["a", "b"]``; None stays None."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise SweepError(f"empty list {text!r}")
    return items


def parse_seeds(text: Optional[str]) -> Optional[List[int]]:
    """``"0,1,2"`` or ``"0-2"`` → ``[0, 1, 2]``."""
    if text is None:
        return None
    seeds: List[int] = []
    for part in parse_list(text):
        try:
            if "-" in part[1:]:
                lo, hi = (int(v) for v in part.split("-", 1))
                if hi < lo:
                    raise SweepError(f"--seeds: range {part!r} is empty (write it low-high, e.g. {hi}-{lo})")
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise SweepError(f"--seeds: {part!r} is not an integer or a range like 0-2") from None
    return seeds


def parse_options(pairs: Sequence[str], flag: str) -> Dict[str, Any]:
    """``["sigma=15,25", "m=5"]`` → ``{"sigma": [15, 25], "m": 5}`` (values parsed as TOML scalars)."""
    import tomllib

    out: Dict[str, Any] = {}
    for pair in pairs or ():
        if "=" not in pair:
            raise SweepError(f"{flag} expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        values = []
        for item in raw.split(","):
            try:
                values.append(tomllib.loads(f"v = {item.strip()}")["v"])
            except Exception:
                values.append(item.strip())
        out[key.strip()] = values if len(values) > 1 else values[0]
    return out
