"""The command line: ``fpibench list`` names every task and method."""
import subprocess
import sys

import fpibench
from fpibench.cli import main


def test_list_names_every_task_and_method(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ["box_constraint", "bibtex", "contractive_tanh", "picard", "anderson", "broyden"]:
        assert name in out
    for name in fpibench.available_methods()["backward"]:
        assert name in out


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "fpibench", "run", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--data-dir" in result.stdout
