"""Load benchmark results into pandas: pytest-benchmark JSON files and asv result folders.

    df = load_pytest_benchmark("results/benchmarks/pytest-benchmark-cpu.json")  # or a folder
    df = load_asv_results(".asv")                                               # or .asv/results

``load_pytest_benchmark``: one row per benchmark — ``name``, ``fullname``, ``group``, one
column per test parameter, the timing statistics in seconds (``min``, ``max``, ``mean``,
``median``, ``stddev``, ``iqr``), ``rounds``, ``iterations``, ``ops``, every ``extra_info``
entry (nested dicts flattened to ``a.b`` columns), and ``machine``, ``commit``,
``datetime``, ``file``.

``load_asv_results``: one row per (benchmark, parameter combination, machine, commit) —
``benchmark``, ``params`` (dict name → value), ``value`` (asv's summary: the median for
timings; NaN when skipped or failed), ``unit``, ``machine``, ``commit``, ``type``,
``env``, ``date`` and one column per parameter.

A parameter or ``extra_info`` key that collides with a fixed column is prefixed
``param_`` / ``extra_``.  Missing paths raise :class:`FileNotFoundError`; files that are
not valid results raise :class:`fpibench.results.ResultsError`; both name the file.
"""
from __future__ import annotations

import ast
import itertools
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, List

from .results import ResultsError

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = ["load_pytest_benchmark", "load_asv_results", "ResultsError"]

PYTEST_STATS = ("min", "max", "mean", "median", "stddev", "iqr", "ops", "rounds", "iterations")
ASV_RESULT_COLUMNS = ("result", "params")


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ResultsError(f"{path}: not a text file ({exc})") from exc


def _existing(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or directory")
    return p


def _free(row: dict, key: str, prefix: str) -> str:
    return prefix + key if key in row else key


def _flatten(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _frame(rows: List[dict], what: str, where: Path) -> "pandas.DataFrame":
    import pandas as pd

    if not rows:
        raise ResultsError(f"{where}: no {what} results found")
    return pd.DataFrame(rows)


# -- pytest-benchmark ----------------------------------------------------------------
def _pytest_rows(path: Path) -> Iterable[dict]:
    data = _read_json(path)
    benchmarks = data.get("benchmarks") if isinstance(data, dict) else None
    if not isinstance(benchmarks, list):
        raise ResultsError(f"{path}: not a pytest-benchmark JSON file (no 'benchmarks' list)")
    machine = (data.get("machine_info") or {}).get("node")
    commit = (data.get("commit_info") or {}).get("id")
    for i, bench in enumerate(benchmarks):
        stats = bench.get("stats") if isinstance(bench, dict) else None
        if not isinstance(stats, dict) or "name" not in bench:
            raise ResultsError(f"{path}: benchmark #{i} has no 'name' or no 'stats'")
        missing = [s for s in PYTEST_STATS if s not in stats]
        if missing:
            raise ResultsError(f"{path}: benchmark {bench['name']!r} lacks statistic(s) {missing}")
        row = {"name": bench["name"], "fullname": bench.get("fullname"), "group": bench.get("group")}
        for key, value in (bench.get("params") or {}).items():
            row[_free(row, key, "param_")] = value
        row.update({s: stats[s] for s in PYTEST_STATS})
        row.update(machine=machine, commit=commit, datetime=data.get("datetime"), file=str(path))
        for key, value in _flatten(bench.get("extra_info") or {}).items():
            row[_free(row, key, "extra_")] = value
        yield row


def load_pytest_benchmark(path_or_dir) -> "pandas.DataFrame":
    """Rows of the pytest-benchmark JSON file ``path_or_dir``, or of every ``*.json`` under the
    folder (e.g. ``.benchmarks/`` from ``--benchmark-autosave``); times in seconds."""
    root = _existing(path_or_dir)
    files = sorted(root.rglob("*.json")) if root.is_dir() else [root]
    if not files:
        raise ResultsError(f"{root}: no pytest-benchmark JSON files (*.json) in this folder")
    return _frame([row for f in files for row in _pytest_rows(f)], "pytest-benchmark", root)


# -- asv -----------------------------------------------------------------------------
def _results_dir(asv_dir: Path) -> Path:
    for candidate in (asv_dir / "results", asv_dir):
        if (candidate / "benchmarks.json").is_file():
            return candidate
    raise FileNotFoundError(
        f"{asv_dir}: no asv results here (expected {asv_dir / 'results' / 'benchmarks.json'} or "
        f"{asv_dir / 'benchmarks.json'}; run `asv run` without --dry-run first)")


def _param_value(text: Any) -> Any:
    """asv stores parameter values as their repr: "'anderson'" -> 'anderson', "64" -> 64."""
    if not isinstance(text, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _asv_rows(path: Path, machine: str, meta: dict) -> Iterable[dict]:
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise ResultsError(f"{path}: not an asv result file (no 'results' mapping)")
    columns = data.get("result_columns")
    if not isinstance(columns, list) or not set(ASV_RESULT_COLUMNS) <= set(columns):
        raise ResultsError(f"{path}: not an asv result file of format version 2 (no 'result_columns' "
                           f"with {list(ASV_RESULT_COLUMNS)})")
    commit, env, date = data.get("commit_hash"), data.get("env_name"), data.get("date")
    for name, entry in data["results"].items():
        if not isinstance(entry, list):
            raise ResultsError(f"{path}: result of {name!r} is not a list")
        fields = dict(zip(columns, entry))
        values, params = fields.get("result"), fields.get("params") or []
        info = meta.get(name, {})
        names = info.get("param_names") or [f"param{i}" for i in range(len(params))]
        combos = list(itertools.product(*params)) if params else [()]
        if values is None:
            values = [None] * len(combos)
        if not isinstance(values, list) or len(values) != len(combos):
            raise ResultsError(f"{path}: {name!r} has {len(values) if isinstance(values, list) else values!r} "
                               f"results for {len(combos)} parameter combinations")
        for combo, value in zip(combos, values):
            param_dict = {n: _param_value(v) for n, v in zip(names, combo)}
            row = {"benchmark": name, "params": param_dict, "value": _number(value), "unit": info.get("unit"),
                   "machine": machine, "commit": commit, "type": info.get("type"), "env": env, "date": date}
            for key, value_ in param_dict.items():
                row[_free(row, key, "param_")] = value_
            yield row


def load_asv_results(asv_dir) -> "pandas.DataFrame":
    """Rows of every asv result under ``asv_dir`` (the folder holding ``results/``, or the results
    folder itself): one per benchmark, parameter combination, machine and commit."""
    import pandas as pd

    results = _results_dir(_existing(asv_dir))
    meta = _read_json(results / "benchmarks.json")
    if not isinstance(meta, dict):
        raise ResultsError(f"{results / 'benchmarks.json'}: not an asv benchmarks.json (not a mapping)")
    rows: List[dict] = []
    for machine_dir in sorted(p for p in results.iterdir() if p.is_dir()):
        if not (machine_dir / "machine.json").is_file():
            continue
        for f in sorted(machine_dir.glob("*.json")):
            if f.name != "machine.json":
                rows.extend(_asv_rows(f, machine_dir.name, meta))
    frame = _frame(rows, "asv", results)
    if "date" in frame:
        frame["date"] = pd.to_datetime(frame["date"], unit="ms", errors="coerce")
    return frame
