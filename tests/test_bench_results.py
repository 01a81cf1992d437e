"""fpibench.bench_results: loading pytest-benchmark JSON and asv results into DataFrames."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pytest_benchmark")

from fpibench.bench_results import load_asv_results, load_pytest_benchmark  # noqa: E402
from fpibench.results import ResultsError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pytest_benchmark_json(tmp_path_factory) -> Path:
    """A real pytest-benchmark run of two micro-benchmarks (a forward solver and a gradient method)."""
    out = tmp_path_factory.mktemp("pb") / "run.json"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "tests/benchmarks/test_bench_solvers.py", "tests/benchmarks/test_bench_gradients.py",
           "-k", "test_forward_solver and picard or test_gradient_method and jfb",
           "--benchmark-enable", "--benchmark-min-rounds=3", "--benchmark-max-time=0.05",
           f"--benchmark-json={out}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240, env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_load_pytest_benchmark_real_run(pytest_benchmark_json):
    df = load_pytest_benchmark(pytest_benchmark_json)
    assert sorted(df["name"]) == ["test_forward_solver[picard]", "test_gradient_method[jfb]"]
    rows = df.set_index("name")
    solver, grad = rows.loc["test_forward_solver[picard]"], rows.loc["test_gradient_method[jfb]"]
    assert solver["group"] == "forward-solve" and grad["group"] == "backward"
    assert solver["forward"] == "picard" and grad["backward"] == "jfb"  # test parameters as columns
    for row in (solver, grad):
        assert 0 < row["min"] <= row["median"] <= row["max"]
        assert row["min"] <= row["mean"] <= row["max"] and row["stddev"] >= 0
        assert row["rounds"] >= 3
    # extra_info flattened: plain keys and nested dicts as a.b
    assert solver["forward_iterations"] > 1 and solver["forward_residual"] < 1e-6
    assert grad["vjp_calls"] == 1 and grad["backward_iterations"] == 1
    assert grad["forward_status.converged"] > 0  # {"converged": n}: every sample converged
    assert [c for c in df.columns if c.startswith("forward_status.")] == ["forward_status.converged"]
    assert grad["gradient_error"] > 1e-2  # JFB is not the implicit gradient
    assert grad["saved_bytes"] > 0
    # a folder is searched for *.json
    again = load_pytest_benchmark(pytest_benchmark_json.parent)
    assert sorted(again["name"]) == sorted(df["name"])


def test_load_pytest_benchmark_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_pytest_benchmark(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ResultsError, match="bad.json.*not valid JSON"):
        load_pytest_benchmark(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"results": {}}))
    with pytest.raises(ResultsError, match="other.json.*not a pytest-benchmark"):
        load_pytest_benchmark(other)
    nostats = tmp_path / "nostats.json"
    nostats.write_text(json.dumps({"benchmarks": [{"name": "t", "stats": {"min": 1.0}}]}))
    with pytest.raises(ResultsError, match="nostats.json.*'t' lacks"):
        load_pytest_benchmark(nostats)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ResultsError, match="no pytest-benchmark JSON"):
        load_pytest_benchmark(empty)


# -- asv -------------------------------------------------------------------------------
NAN = float("nan")
PARAMS = [["'anderson'", "'picard'"], ["64", "512"]]
COLUMNS = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a", "stats_ci_99_b",
           "stats_q_25", "stats_q_75", "stats_number", "stats_repeat", "samples", "profile"]


def _asv_tree(root: Path) -> Path:
    """An asv results folder in asv's format 2: benchmarks.json, <machine>/machine.json, one result file."""
    results = root / "results"
    (results / "box").mkdir(parents=True)
    meta = {
        "probes.P.time_x": {"name": "probes.P.time_x", "param_names": ["forward", "dim"], "params": PARAMS,
                            "type": "time", "unit": "seconds", "version": "1"},
        "probes.P.track_y": {"name": "probes.P.track_y", "param_names": [], "params": [],
                             "type": "track", "unit": "bytes", "version": "2"},
        "version": 2,
    }
    (results / "benchmarks.json").write_text(json.dumps(meta))
    (results / "box" / "machine.json").write_text(json.dumps({"machine": "box", "num_cpu": "2", "version": 1}))
    pad = [None] * (len(COLUMNS) - 5)
    data = {
        "commit_hash": "abc123" * 6 + "abcd", "env_name": "existing-py", "date": 1700000000000,
        "params": {"machine": "box", "python": "3.11"}, "python": "3.11", "requirements": {}, "env_vars": {},
        "result_columns": COLUMNS,
        "results": {
            "probes.P.time_x": [[0.5, 1.5, NAN, None], PARAMS, "1", 1, 2.0, *pad],
            "probes.P.track_y": [[4096], [], "2", 1, 0.1, *pad],
        },
        "durations": {}, "version": 2,
    }
    (results / "box" / "abc123ab-existing-py.json").write_text(json.dumps(data))
    return results


def test_load_asv_results(tmp_path):
    results = _asv_tree(tmp_path)
    df = load_asv_results(tmp_path)
    assert len(df) == 5 and set(df["machine"]) == {"box"} and set(df["commit"]) == {"abc123" * 6 + "abcd"}
    timed = df[df["benchmark"] == "probes.P.time_x"]
    # parameter values parsed from asv's repr strings, in asv's order (cartesian product)
    assert list(zip(timed["forward"], timed["dim"])) == [("anderson", 64), ("anderson", 512), ("picard", 64), ("picard", 512)]
    assert timed["params"].iloc[1] == {"forward": "anderson", "dim": 512}
    assert timed["value"].iloc[:2].tolist() == [0.5, 1.5] and timed["value"].iloc[2:].isna().all()  # skipped / failed
    assert set(timed["unit"]) == {"seconds"} and set(timed["type"]) == {"time"}
    track = df[df["benchmark"] == "probes.P.track_y"].iloc[0]
    assert track["value"] == 4096 and track["unit"] == "bytes" and track["params"] == {}
    assert str(track["date"].year) == "2023"
    # the results folder itself works too
    assert len(load_asv_results(results)) == 5


def test_asv_fixture_is_what_asv_itself_reads(tmp_path):
    """Cross-check the loader against asv's own reader on the same file."""
    asv_results = pytest.importorskip("asv.results")
    results = _asv_tree(tmp_path)
    theirs = asv_results.Results.load(str(results / "box" / "abc123ab-existing-py.json"))
    ours = load_asv_results(results)
    values = theirs.get_result_value("probes.P.time_x", theirs.get_result_params("probes.P.time_x"))
    mine = ours[ours["benchmark"] == "probes.P.time_x"]["value"].tolist()
    assert [v if v is not None and not math.isnan(v) else None for v in values] == \
        [v if not math.isnan(v) else None for v in mine]


def test_load_asv_results_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        load_asv_results(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="benchmarks.json.*asv run"):
        load_asv_results(tmp_path)
    results = _asv_tree(tmp_path)
    broken = results / "box" / "abc123ab-existing-py.json"
    broken.write_text(broken.read_text()[:100])
    with pytest.raises(ResultsError, match="abc123ab-existing-py.json.*not valid JSON"):
        load_asv_results(tmp_path)
    broken.write_text(json.dumps({"results": {"probes.P.time_x": [[1.0], PARAMS]}, "result_columns": ["result", "params"]}))
    with pytest.raises(ResultsError, match="abc123ab-existing-py.json.*'probes.P.time_x' has 1 results for 4"):
        load_asv_results(tmp_path)
