"""Checkpoints never run code: a crafted ``partial/*.pt`` is refused, ours load with weights_only."""
import os

import pytest
import torch

from fpibench import results
from fpibench.harness import Cell, run_cell, run_sweep
from fpibench.harness import _checkpoint

PAPER_CHECKPOINT = "results/paper/partial/denoise-sigma15-fpi_nn-picard-backward_fpi-s2-paper-3bdc6296.pt"


class _Payload:
    """Unpickling this creates ``path``: what a malicious checkpoint would do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def _box_cell(**kw):
    return Cell("box_constraint", "fpi_nn", "anderson", "jfb", epochs=1, task_options={"n_train": 100}, **kw)


def _plant(store, cell, marker):
    path = _checkpoint.checkpoint_path(store, cell.cell_id)
    path.parent.mkdir(parents=True)
    torch.save({"format": _checkpoint.FORMAT, "config_hash": cell.config_hash, "epoch": 1, "x": _Payload(marker)}, path)
    return path


def test_a_crafted_checkpoint_runs_no_code_in_dry_run_load_or_run(tmp_path, capsys):
    from fpibench.cli import main

    cell, marker = _box_cell(), tmp_path / "pwned"
    path = _plant(tmp_path / "store", cell, marker)
    torch.load(path, weights_only=False)  # the payload works when code may run ...
    assert marker.exists()
    marker.rmdir()

    args = ["run", "--task", "box_constraint", "--model", "fpi_nn", "--backward", "jfb", "--epochs", "1",
            "--option", "n_train=100", "--out", str(tmp_path / "store"), "--dry-run"]
    assert main(args) == 0
    assert "unreadable checkpoint" in capsys.readouterr().out
    with pytest.raises(results.ResultsError, match="cannot be read.*delete it"):
        _checkpoint.load(path, cell.config_hash)
    (result,) = run_sweep([cell], tmp_path / "store", progress=False, repeats=1)
    assert result.status == "error" and "cannot be read" in result.error
    assert not marker.exists()  # ... and never here


def test_saved_checkpoints_load_with_weights_only_and_resume(tmp_path):
    cell = _box_cell()
    ckpt = tmp_path / "c.pt"
    run_cell(cell.to_dict(), repeats=1, checkpoint=str(ckpt))
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert state["format"] == _checkpoint.FORMAT and state["epoch"] == 1
    assert isinstance(state["rng"]["numpy"]["keys"], torch.Tensor)


def test_rng_states_round_trip_through_a_checkpoint(tmp_path):
    import random

    import numpy as np

    model = torch.nn.Linear(2, 2)
    _checkpoint.save(tmp_path / "c.pt", config_hash="h", epoch=1, model=model,
                     optimizer=torch.optim.Adam(model.parameters()), rows=[{"metric": "m", "value": 1.0}],
                     elapsed=1.0, commit="abc")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(5), random.random()
    state = _checkpoint.load(tmp_path / "c.pt", "h")
    _checkpoint.restore(state, model, torch.optim.Adam(model.parameters()))
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def test_the_committed_format_1_checkpoint_is_still_readable_and_restores():
    """The paper store's checkpoint (numpy RNG state as an array) loads safely and resumes."""
    from fpibench.tasks import FPIConfig, get

    root = os.path.join(os.path.dirname(__file__), "..", PAPER_CHECKPOINT)
    if not os.path.exists(root):
        pytest.skip("no committed format-1 checkpoint in this checkout")
    state = _checkpoint.read_state(root)
    assert state["format"] == 1 and state["epoch"] >= 1 and state["config_hash"][:8] in root
    task = get("denoise", preset="paper", sigma=15)
    model = task.build_model("fpi_nn", FPIConfig(forward="picard"))
    _checkpoint.restore(state, model, task.optimizer(model))
    assert torch.equal(next(iter(model.state_dict().values())), next(iter(state["model"].values())))
