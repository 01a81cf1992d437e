"""The parquet results store: schema, atomic writes, resumability under SIGKILL, errors."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

from fpibench import results  # noqa: E402


def rows(n, **kw):
    base = dict(task="box_constraint", model="fpi_nn", forward="anderson", backward="backward_fpi", seed=0, status="ok")
    return [{**base, **kw, "epoch": e, "metric": "test_mse", "value": 1.0 / e} for e in range(1, n + 1)]


def test_write_and_load_round_trip_with_provenance(tmp_path):
    prov = results.provenance()
    results.write_cell(tmp_path, "a", rows(3), {**prov, "config_hash": results.config_hash({"x": 1})})
    results.write_cell(tmp_path, "b", rows(2, backward="unroll"), prov)
    df = results.load(tmp_path)
    assert len(df) == 5
    assert set(results.REQUIRED_COLUMNS) <= set(df.columns)
    assert {"git_commit", "torch_version", "cpu_name", "cell_id"} <= set(df.columns)
    assert sorted(df.backward.unique()) == ["backward_fpi", "unroll"]
    assert results.cell_done(tmp_path, "a") and not results.cell_done(tmp_path, "c")


def _git(cwd, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_source_commit_is_the_packages_own_checkout_not_an_enclosing_repository(tmp_path):
    """An installed copy inside some other git repository (a pyenv tree kept in git) must not
    record that repository's HEAD as the code that produced a result."""
    outer = tmp_path / "pyenv"
    installed = outer / "lib" / "site-packages" / "fpibench"
    installed.mkdir(parents=True)
    (installed / "results.py").write_text("# installed copy\n")
    (outer / "README").write_text("x\n")
    _git(outer, "init", "-q")
    _git(outer, "add", "README")
    _git(outer, "commit", "-qm", "outer")
    assert results.source_commit(installed) == "unknown"
    assert results.source_commit(tmp_path) == "unknown"  # not a repository at all

    checkout = tmp_path / "checkout"
    (checkout / "fpibench").mkdir(parents=True)
    (checkout / "fpibench" / "results.py").write_text("# source\n")
    _git(checkout, "init", "-q")
    assert results.source_commit(checkout / "fpibench") == "unknown"  # untracked: not this package's source
    _git(checkout, "add", "fpibench")
    assert results.source_commit(checkout / "fpibench") == "unknown"  # tracked, but no commit yet
    _git(checkout, "commit", "-qm", "source")
    head = _git(checkout, "rev-parse", "HEAD")
    assert results.source_commit(checkout / "fpibench") == head
    (checkout / "fpibench" / "results.py").write_text("# edited\n")
    assert results.source_commit(checkout / "fpibench") == head + "+dirty"


def test_missing_columns_and_corrupt_files_give_named_errors(tmp_path):
    with pytest.raises(results.ResultsError, match="lack required column"):
        results.write_cell(tmp_path, "x", [{"task": "t", "value": 1.0}])
    results.write_cell(tmp_path, "ok", rows(1))
    bad = results.cell_path(tmp_path, "broken")
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(results.ResultsError, match="broken.parquet"):
        results.load(tmp_path)
    with pytest.raises(results.ResultsError, match="no results store"):
        results.load(tmp_path / "nowhere")


def test_config_hash_is_stable_and_order_free():
    assert results.config_hash({"a": 1, "b": [1, 2]}) == results.config_hash({"b": [1, 2], "a": 1})
    assert results.config_hash({"a": 1}) != results.config_hash({"a": 2})


def test_sigkill_during_a_sweep_loses_no_finished_cell_and_leaves_no_partial_file(tmp_path):
    """A real writer process is SIGKILLed mid-sweep; every file left is a complete cell."""
    script = textwrap.dedent(f"""
        import sys
        from fpibench import results
        for i in range(100000):
            rows = [dict(task="t", model="m", forward="f", backward="b", seed=0, status="ok",
                         epoch=e, metric="v", value=float(e)) for e in range(200)]
            results.write_cell({str(tmp_path)!r}, f"cell{{i:06d}}", rows)
            print(i, flush=True)
    """)
    for delay in (0.0, 0.37, 1.1):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        first = proc.stdout.readline()  # the writer is past its imports and writing cells
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        printed = [int(line) for line in (first + proc.stdout.read()).split()]
        proc.wait()
        assert printed and proc.returncode == -signal.SIGKILL
        df = results.load(tmp_path)  # would raise on a partial parquet file
        done = set(df.cell_id)
        assert {f"cell{i:06d}" for i in printed} <= done  # every reported cell survived
        assert all((df[df.cell_id == c].shape[0] == 200) for c in done)
        # leftover temporaries are hidden dot-files and never loaded
        for name in os.listdir(tmp_path / "cells"):
            assert name.endswith(".parquet") or name.startswith(".")
