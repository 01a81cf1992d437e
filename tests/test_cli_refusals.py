"""The CLI refuses bad input before anything runs: rc 2, one clear message, nothing created."""
import subprocess
import sys

import pytest

from fpibench.cli import main


@pytest.mark.parametrize("option, message", [
    ("dim=-5", "task 'box_constraint': option 'dim' must be >= 1, got -5"),
    ("dim=abc", "task 'box_constraint': option 'dim' must be int, got 'abc'"),
    ("dim=true", "option 'dim' must be int, got True"),
    ("lr=0", "option 'lr' must be > 0, got 0"),
])
@pytest.mark.parametrize("dry_run", [True, False])
def test_bad_task_options_are_refused_before_anything_runs(tmp_path, capsys, option, message, dry_run):
    out = tmp_path / "store"
    args = ["run", "--task", "box_constraint", "--option", option, "--out", str(out)] + (["--dry-run"] if dry_run else [])
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_probe_and_denoise_options_declare_their_ranges(capsys, tmp_path):
    assert main(["run", "--task", "contractive_tanh", "--option", "k=0", "--dry-run", "--out", str(tmp_path)]) == 2
    assert "probe 'contractive_tanh': option 'k' must be > 0, got 0" in capsys.readouterr().err
    assert main(["run", "--task", "denoise", "--option", "dataset=imagenet", "--dry-run", "--out", str(tmp_path)]) == 2
    assert "option 'dataset' must be one of 'dncnn', 'chairs', got 'imagenet'" in capsys.readouterr().err


def test_an_empty_seed_range_is_refused(tmp_path, capsys):
    assert main(["run", "--task", "box_constraint", "--seeds", "3-1", "--out", str(tmp_path / "s"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "--seeds: range '3-1' is empty" in err and "no results store" not in err


def test_an_out_that_cannot_be_created_is_one_clear_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    run = subprocess.run([sys.executable, "-m", "fpibench", "run", "--task", "contractive_tanh", "--option", "dim=4",
                          "--out", str(blocker / "store"), "--quiet"], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [f"fpibench run: error: cannot create the results store {blocker / 'store'}: "
                                               "Not a directory"]


def test_a_missing_data_dir_is_the_whole_message_and_creates_nothing(tmp_path):
    missing = tmp_path / "no" / "data"
    out = tmp_path / "store"
    run = subprocess.run([sys.executable, "-m", "fpibench", "run", "--task", "bibtex", "--model", "feedforward",
                          "--data-dir", str(missing), "--out", str(out), "--quiet"],
                         capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert run.returncode == 2, run.stderr
    err = run.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"data dir {missing} (from --data-dir) does not exist" in err and err.endswith("to download them into it.")
    assert not (tmp_path / "no").exists() and not out.exists()


def test_data_missing_from_an_existing_data_dir_is_listed_in_full_up_front(tmp_path):
    empty = tmp_path / "data"
    empty.mkdir()
    run = subprocess.run([sys.executable, "-m", "fpibench", "run", "--task", "bibtex", "--model", "feedforward",
                          "--out", str(tmp_path / "store"), "--quiet"], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FPIBENCH_DATA": str(empty),
                              "FPIBENCH_OFFLINE": "1"})
    assert run.returncode == 2
    err = run.stderr.strip()
    assert "data set 'bibtex'" in err and "Downloading is off" in err and err.endswith("a folder that has them.")
    assert len(err) > 300 and not (tmp_path / "store").exists()
