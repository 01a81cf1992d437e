"""The asv suite in benchmarks/: every benchmark runs (setup + body once, first parameter set).

Benchmarks are found the way asv finds them (public classes of every module of the
``benchmarks`` package, methods named ``time_``/``peakmem_``/``track_``/``mem_``/``timeraw_``),
each runs once on the first value of every parameter — the suite lists the smallest,
runnable one first — with ``setup_cache`` (when defined) computed for that combination only.
``track_*`` must return a finite number and carry a ``unit``.  Plus: asv's own discovery
and signature check, the exact gradient methods' error on the contractive probe, and the
skip convention (NotImplementedError from setup).
"""
from __future__ import annotations

import importlib
import inspect
import math
import pkgutil
import sys
from pathlib import Path

import pytest
import torch

import fpibench

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import benchmarks  # noqa: E402
from benchmarks import _common  # noqa: E402

PREFIXES = ("time_", "peakmem_", "track_", "mem_", "timeraw_")


def _modules():
    return [importlib.import_module(m.name) for m in pkgutil.iter_modules(benchmarks.__path__, "benchmarks.")]


def _benchmarks():
    """(module, class, method name) for every benchmark method, as asv discovers them."""
    found = []
    for module in _modules():
        for cls_name, cls in vars(module).items():
            if cls_name.startswith("_") or not inspect.isclass(cls) or inspect.isabstract(cls):
                continue
            for name, _ in inspect.getmembers(cls, inspect.isfunction):
                if name.startswith(PREFIXES):
                    found.append(pytest.param(module, cls, name, id=f"{module.__name__}.{cls_name}.{name}"))
    return found


def _axes(cls) -> list:
    params = getattr(cls, "params", [])
    if params and not isinstance(params[0], (list, tuple)):
        params = [params]  # asv: a single parameter may be given as a flat list
    return [list(axis) for axis in params]


@pytest.fixture(autouse=True)
def _keep_threads():
    """The benchmarks pin torch's threads (asv runs each in its own process); restore them."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


_CACHE: dict = {}


def _run_once(cls, name, combo):
    """asv's sequence for one parameter combination: setup_cache, setup, the benchmark, teardown."""
    instance = cls()
    args = list(combo)
    if hasattr(instance, "setup_cache"):
        key = (inspect.getsourcefile(instance.setup_cache), inspect.getsourcelines(instance.setup_cache)[1], combo)
        if key not in _CACHE:
            # the suite's caches measure the grid of self.params: restrict it to this combination
            instance.params = [[value] for value in combo]
            _CACHE[key] = instance.setup_cache()
            del instance.params
        args.insert(0, _CACHE[key])
    if hasattr(instance, "setup"):
        instance.setup(*args)
    try:
        return getattr(instance, name)(*args)
    finally:
        if hasattr(instance, "teardown"):
            instance.teardown(*args)


@pytest.mark.parametrize("module, cls, name", _benchmarks())
def test_benchmark_runs_on_first_parameters(module, cls, name):
    combo = tuple(axis[0] for axis in _axes(cls))
    try:
        value = _run_once(cls, name, combo)
    except NotImplementedError as exc:  # asv's skip, e.g. no data directory
        pytest.skip(f"{cls.__name__}{combo}: {exc}")
    if name.startswith("track_"):
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{name} returned {value!r}"
        assert math.isfinite(value), f"{name}{combo} = {value}"
        assert getattr(getattr(cls, name), "unit", "unit") != "unit", f"{cls.__name__}.{name} has no unit attribute"


def test_suite_covers_every_registered_method():
    from benchmarks import probes, tasks

    import fpibench

    methods = fpibench.available_methods()
    assert set(_axes(probes.ProbeForward)[0]) == set(methods["forward"])
    for cls in (probes.ProbeGradient, probes.ProbeBackward):
        axes = dict(zip(cls.param_names, _axes(cls)))
        assert set(axes["forward"]) == set(methods["forward"]) and set(axes["backward"]) == set(methods["backward"])
    assert set(dict(zip(probes.ProbeTrack.param_names, _axes(probes.ProbeTrack)))["backward"]) == set(methods["backward"])
    assert set(dict(zip(tasks.VectorTaskStep.param_names, _axes(tasks.VectorTaskStep)))["backward"]) == set(methods["backward"])


def test_asv_discovers_and_checks_the_suite():
    discovery = pytest.importorskip("asv_runner.discovery")
    found = {b.name: b for b in discovery.disc_benchmarks(str(ROOT / "benchmarks"))}
    ours = {f"{p.values[0].__name__.split('.', 1)[1]}.{p.values[1].__name__}.{p.values[2]}" for p in _benchmarks()}
    assert ours <= set(found), sorted(ours - set(found))
    assert "probes.ProbeTrack.track_gradient_error" in found
    bad = [name for name, bench in found.items() if not bench.check(str(ROOT / "benchmarks"))]
    assert not bad, f"asv signature check failed for {bad}"
    for name, bench in found.items():
        if bench.type == "track":
            assert bench.unit != "unit", f"{name} has no unit attribute"


def test_exact_methods_have_small_gradient_error_and_jfb_does_not():
    from benchmarks.probes import TRACK_FORWARD, ProbeTrack

    grid = _common.measure_probes(([TRACK_FORWARD], list(_common.EXACT) + ["jfb"], [64], [0.9]))
    checked = []
    for backward in _common.EXACT:
        track = ProbeTrack()
        try:
            track.setup(grid, backward, 64, 0.9)
        except NotImplementedError:  # cg, minres: the probe's Jacobian is not symmetric
            assert fpibench.BACKWARD.get(backward).requires == "symmetric", backward
            continue
        checked.append(backward)
        error = track.track_gradient_error(grid, backward, 64, 0.9)
        assert error < 1e-4, f"{backward}: gradient relative error {error:.2e}"
    assert {"jacobian_inverse", "backward_fpi", "gmres", "unroll"} <= set(checked)
    track = ProbeTrack()
    track.setup(grid, "jfb", 64, 0.9)
    # the metric separates exact from approximate gradients: JFB drops (I - J)^-T
    assert track.track_gradient_error(grid, "jfb", 64, 0.9) > 1e-2


def test_unroll_saves_more_for_backward_than_implicit_methods():
    grid = _common.measure_probes((["picard"], ["backward_fpi", "unroll"], [64], [0.9]))
    implicit, unroll = grid[("picard", "backward_fpi", 64, 0.9)], grid[("picard", "unroll", 64, 0.9)]
    assert implicit["forward_iterations"] > 5
    assert unroll["saved_bytes"] > 2 * implicit["saved_bytes"] > 0


def test_cases_that_cannot_run_are_skips():
    from benchmarks.probes import ProbeBackward, ProbeForward

    if not torch.cuda.is_available():
        with pytest.raises(NotImplementedError, match="CUDA"):
            ProbeForward().setup("picard", 64, 0.5, "cuda")
    with pytest.raises(NotImplementedError, match="memory budget"):
        ProbeBackward().setup("picard", "jacobian_inverse", 2048, 0.9, "cpu")  # 768 MiB > 128 MiB
    grid = _common.measure_grid([["a", "b"]], lambda x: {"a": {"v": 1}}[x])
    assert _common.lookup(grid, "a") == {"v": 1}
    with pytest.raises(RuntimeError, match="KeyError"):
        _common.lookup(grid, "b")  # a failure of one case is a failure, not a skip


def test_missing_data_is_a_skip_naming_the_files(tmp_path, monkeypatch):
    from benchmarks.tasks import VectorTaskStep

    monkeypatch.setenv("FPIBENCH_DATA", str(tmp_path))
    assert _common.missing_data("box_constraint") is None  # generated, needs no files
    message = _common.missing_data("bibtex")
    assert message is not None and str(tmp_path) in message and "bibtex" in message
    batches = _common.task_batches(["bibtex"])
    assert batches == {"bibtex": message}
    with pytest.raises(NotImplementedError, match="FPIBENCH_DATA"):
        VectorTaskStep().setup(batches, "bibtex", "fpi_nn", "backward_fpi")
