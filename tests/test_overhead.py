"""The harness-overhead benchmark: its tables, and that both sides do identical training."""
import math
import os

import pandas as pd
import pytest
import torch

from fpibench import overhead
from fpibench.errors import OptionError

DATA = os.environ.get("FPIBENCH_DATA")


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_one_case_writes_the_tables_and_both_sides_train_identically(tmp_path, one_thread):
    argv = ["--out", str(tmp_path), "--repeats", "1", "--warmup", "0", "--cases", "box_constraint/fpi_nn"]
    assert overhead.main(argv + (["--data-dir", DATA] if DATA else [])) == 0
    runs = pd.read_csv(tmp_path / "overhead_cpu.csv")
    assert list(runs.columns) == list(overhead.RUN_COLUMNS)
    assert sorted(runs["side"]) == ["hand", "harness"] and (runs["seconds"] > 0).all()
    assert runs["git_commit"].notna().all() and (runs["threads"] == 1).all()
    # the real property: same seed, same batches, same training -> the same final numbers
    by_side = runs.set_index("side")
    assert by_side.loc["harness", "metric"] == by_side.loc["hand", "metric"] == "test_mse"
    for column in ("final_train_loss", "final_metric"):
        assert math.isfinite(by_side.loc["hand", column])
        assert by_side.loc["harness", column] == pytest.approx(by_side.loc["hand", column], rel=overhead.SAME_WORK_RTOL)
    ratios = pd.read_csv(tmp_path / "ratios_cpu.csv")
    assert list(ratios.columns) == list(overhead.RATIO_COLUMNS)
    row = ratios.iloc[0]
    assert row["case"] == "box_constraint/fpi_nn" and bool(row["same_work"]) and row["max_rel_diff"] <= 1e-6
    assert 0 < row["ratio"] < math.inf and row["ratio"] == pytest.approx(row["harness_s"] / row["hand_s"])
    assert bool(row["met"]) == (row["ratio"] <= overhead.GOAL)
    readme = (tmp_path / "README.md").read_text()
    assert "box_constraint/fpi_nn" in readme and "--repeats 1" in readme


def test_unknown_case_name_is_a_clear_error(capsys):
    with pytest.raises(OptionError, match="unknown case.*'nope'.*cases: box_constraint/fpi_nn"):
        overhead.select_cases(["box_constraint/fpi_nn", "nope"])
    with pytest.raises(SystemExit) as exc:
        overhead.main(["--cases", "nope", "--repeats", "1"])
    assert exc.value.code == 2
    assert "unknown case(s) 'nope'" in capsys.readouterr().err
