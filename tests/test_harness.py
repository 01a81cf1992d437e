"""The harness: sweep expansion and validation, cell rows, resume, executors (pool, dask)."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from fpibench import results
from fpibench.errors import OptionError, UnknownMethodError
from fpibench.harness import Cell, SweepError, expand_sweep, load_sweep_file, run_cell, run_sweep

DATA = os.environ.get("FPIBENCH_DATA")
PROBE = {"k": 0.8, "dim": 16, "batch": 4}


def _metric(rows, kind, metric, epoch=None):
    vals = [r for r in rows if r["kind"] == kind and r["metric"] == metric and (epoch is None or r["epoch"] == epoch)]
    return vals


# -- sweep expansion ----------------------------------------------------------------
def test_grid_expands_axes_and_collapses_models_without_fpi_layer():
    cells = expand_sweep({"task": "box_constraint", "model": ["feedforward", "fpi_nn"], "backward": ["backward_fpi", "jfb"],
                          "seeds": [0, 1]})
    ff = [c for c in cells if c.model == "feedforward"]
    assert len(ff) == 2 and all(c.forward == c.backward == "-" for c in ff)  # one per seed, not per method
    assert sorted((c.backward, c.seed) for c in cells if c.model == "fpi_nn") == [
        ("backward_fpi", 0), ("backward_fpi", 1), ("jfb", 0), ("jfb", 1)]
    assert len({c.cell_id for c in cells}) == len(cells)


def test_option_lists_are_grid_axes():
    cells = expand_sweep({"task": "denoise", "model": "fpi_nn", "task_options": {"sigma": [15, 25], "epochs": 1}})
    assert sorted(c.task_options["sigma"] for c in cells) == [15, 25]
    assert cells[0].problem_label().startswith("denoise")


def test_toml_and_yaml_sweep_files_give_the_same_cells(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text('preset = "quick"\nseeds = [0, 1]\n[[grid]]\ntask = "bibtex"\nmodel = ["fpi_nn"]\n'
                    'backward = ["backward_fpi", "unroll"]\nforward_options = { m = [3, 5] }\n')
    yaml = tmp_path / "s.yaml"
    yaml.write_text("preset: quick\nseeds: [0, 1]\ngrid:\n  - task: bibtex\n    model: [fpi_nn]\n"
                    "    backward: [backward_fpi, unroll]\n    forward_options: {m: [3, 5]}\n")
    a, b = load_sweep_file(toml), load_sweep_file(yaml)
    assert len(a) == 8 and [c.cell_id for c in a] == [c.cell_id for c in b]


@pytest.mark.parametrize("text, match", [
    ('task = "nope"\n', "unknown task 'nope'"),
    ('task = "bibtex"\nmodel = "fpi_xx"\n', "no model 'fpi_xx'"),
    ('task = "bibtex"\nbackward = "magic"\n', "unknown gradient method 'magic'"),
    ('task = "bibtex"\nforward = "newton"\n', "newton"),
    ('task = "bibtex"\nbackward_options = { colour = 1 }\n', "colour"),
    ('task = "bibtex"\ntask_options = { sigma = 15 }\n', "sigma"),
    ('task = "bibtex"\nseedz = [1]\n', "seedz"),
    ('task = "bibtex"\nseeds = ["a"]\n', "seeds must be integers"),
    ('task = "bibtex"\npreset = "huge"\n', "huge"),
    ('model = "fpi_nn"\n', "at least one task"),
    ('task = [ "bibtex"\n', "not valid TOML"),
])
def test_bad_sweep_files_name_the_problem(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises((SweepError, OptionError, UnknownMethodError), match=match) as info:
        load_sweep_file(path)
    assert "bad.toml" in str(info.value)


def test_missing_or_unknown_format_sweep_file(tmp_path):
    with pytest.raises(SweepError, match="does not exist"):
        load_sweep_file(tmp_path / "none.toml")
    (tmp_path / "s.json").write_text("{}")
    with pytest.raises(SweepError, match="unknown format"):
        load_sweep_file(tmp_path / "s.json")


def test_cells_round_trip_through_json():
    import json

    cell = Cell("contractive_tanh", "probe", "broyden", "gmres", seed=3, task_options={"k": 0.5},
                backward_options={"restart": 10})
    back = Cell.from_dict(json.loads(json.dumps(cell.to_dict())))
    assert back == cell and back.cell_id == cell.cell_id


# -- cell rows --------------------------------------------------------------------------
def test_probe_cell_exact_method_matches_reference_and_curves_behave():
    rows = run_cell(Cell("contractive_tanh", "probe", "anderson", "backward_fpi", task_options=PROBE).to_dict(), repeats=1)["rows"]
    assert _metric(rows, "gradient", "grad_rel_error")[0]["value"] < 1e-8
    curve = sorted((r["budget"], r["value"]) for r in _metric(rows, "gradient_curve", "grad_rel_error"))
    errors = [v for _, v in curve]
    assert errors[0] > 1e-2 and errors[-1] < 1e-8  # 1 backward step is far off, the full budget is exact
    assert all(b <= a * 1.01 + 1e-12 for a, b in zip(errors, errors[1:]))  # more budget never hurts (k < 1)
    saved = [r["value"] for r in _metric(rows, "memory_curve", "saved_bytes")]
    assert max(saved) == min(saved)  # implicit: memory independent of forward iterations


def test_probe_cell_unroll_memory_grows_and_jfb_is_inexact():
    unroll = run_cell(Cell("contractive_tanh", "probe", "picard", "unroll", task_options=PROBE).to_dict(), repeats=1)["rows"]
    saved = sorted((r["budget"], r["value"]) for r in _metric(unroll, "memory_curve", "saved_bytes"))
    assert saved[-1][1] > 10 * saved[0][1]
    jfb = run_cell(Cell("contractive_tanh", "probe", "anderson", "jfb", task_options=PROBE, study=False).to_dict(), repeats=1)["rows"]
    assert _metric(jfb, "gradient", "grad_rel_error")[0]["value"] > 1e-2
    assert not _metric(jfb, "gradient_curve", "grad_rel_error")


def test_oversized_jacobian_cell_is_skipped_with_its_size():
    out = run_cell(Cell("contractive_tanh", "probe", "anderson", "jacobian_inverse", task_options=PROBE,
                        backward_options={"memory_budget": 100}).to_dict())
    assert out["status"] == "skipped"
    assert out["rows"][0]["status"] == "skipped" and "bytes" in out["rows"][0]["reason"]


needs_data = pytest.mark.skipif(not DATA, reason="FPIBENCH_DATA not set")


def test_training_cell_records_epochs_and_study_rows():
    cell = Cell("box_constraint", "fpi_nn", "anderson", "backward_fpi", epochs=2, task_options={"n_train": 300})
    out = run_cell(cell.to_dict(), repeats=1)
    rows = out["rows"]
    assert [r["epoch"] for r in _metric(rows, "train", "test_mse")] == [1, 2]
    assert all(r["headline"] for r in _metric(rows, "train", "test_mse"))
    for epoch in (0, 2):
        err = _metric(rows, "gradient", "grad_rel_error", epoch)[0]["value"]
        assert err < 1e-4  # float32 method vs float64 reference
        assert _metric(rows, "gradient", "backward_iterations_mean", epoch)[0]["value"] >= 1
    assert _metric(rows, "gradient_curve", "grad_rel_error")  # curves at initialisation
    elapsed = [r["value"] for r in _metric(rows, "train", "elapsed_seconds")]
    assert elapsed[1] > elapsed[0] > 0
    assert out["columns"]["dtype"] == "float32" and out["columns"]["device"] == "cpu"


def test_failing_final_study_keeps_the_training_rows(monkeypatch):
    """A trained model whose float64 reference solve ends in NaN made the loss raise; the
    cell then lost every epoch.  The study's error is now a ``failed`` row with the reason."""
    from fpibench.harness import _study

    calls = []

    def broken_reference(self):
        calls.append(1)
        if len(calls) > 1:  # the study at initialisation works, the final one fails
            raise RuntimeError("all elements of input should be between 0 and 1")
        return real(self)

    real = _study.TaskProblem.reference
    monkeypatch.setattr(_study.TaskProblem, "reference", broken_reference)
    cell = Cell("box_constraint", "fpi_nn", "anderson", "backward_fpi", epochs=2, task_options={"n_train": 300})
    rows = run_cell(cell.to_dict(), repeats=1)["rows"]
    assert [r["epoch"] for r in _metric(rows, "train", "test_mse")] == [1, 2]
    assert _metric(rows, "gradient", "grad_rel_error", 0)[0]["value"] < 1e-4
    (failed,) = _metric(rows, "gradient", "grad_rel_error", 2)
    assert failed["status"] == "failed" and math.isnan(failed["value"])
    assert "RuntimeError: all elements of input" in failed["reason"]


@needs_data
def test_flow_cell_studies_the_training_loss_after_evaluation():
    """Evaluation leaves the model in eval mode (FlowNetS then returns one flow); the final
    gradient study must differentiate the multi-scale training loss all the same."""
    cell = Cell("optical_flow", "fpi_nn", "anderson", "backward_fpi", epochs=1,
                task_options={"width": 1 / 32, "n_train": 4, "train_size": [64, 64], "batch_size": 2, "max_iter": 15})
    out = run_cell(cell.to_dict(), data_dir=DATA, repeats=1)
    assert out["status"] in ("ok", "not_converged")
    for epoch in (0, 1):  # the study ran (before and after training) instead of crashing
        assert _metric(out["rows"], "gradient", "backward_seconds", epoch)
    assert _metric(out["rows"], "train", "aepe_zero_flow_examples")[0]["value"] > 10


# -- driver: store, resume, executors -------------------------------------------------------
def _tiny_probe_cells(n=3):
    return expand_sweep({"task": "contractive_tanh", "backward": ["backward_fpi", "neumann", "jfb"][:n],
                         "task_options": PROBE, "study": False})


def test_sweep_writes_store_with_schema_and_resumes(tmp_path):
    cells = _tiny_probe_cells()
    first = run_sweep(cells, tmp_path, progress=False, repeats=1)
    assert [r.status for r in first] == ["ok"] * 3
    df = results.load(tmp_path)
    for col in list(results.REQUIRED_COLUMNS) + ["kind", "unit", "cell_id", "config_hash", "git_commit", "torch_version",
                                                 "device_name", "dtype", "start_time", "end_time", "problem", "budget"]:
        assert col in df.columns, col
    assert set(df["cell_id"]) == {c.cell_id for c in cells}
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "cells").iterdir()}
    again = run_sweep(cells, tmp_path, progress=False)
    assert [r.status for r in again] == ["done"] * 3
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cells").iterdir()} == mtimes


def test_sweeps_sharing_a_store_keep_one_plan(tmp_path):
    cells = _tiny_probe_cells()
    run_sweep(cells[:2], tmp_path, progress=False, repeats=1)
    run_sweep(cells[1:], tmp_path, progress=False, repeats=1)  # a second sweep into the same store
    plan = [Cell.from_dict(c).cell_id for c in json.loads((tmp_path / "sweep.json").read_text())]
    assert plan == [c.cell_id for c in cells]  # union, in first-seen order, no duplicates


def test_local_pool_and_dask_cluster_fill_the_same_store(tmp_path):
    cells = _tiny_probe_cells()
    run_sweep(cells[:1], tmp_path / "serial", progress=False, repeats=1)
    pool = run_sweep(cells, tmp_path / "pool", workers=2, progress=False, repeats=1)
    assert {r.status for r in pool} == {"ok"}
    dask = run_sweep(cells, tmp_path / "dask", executor="dask", workers=2, progress=False, repeats=1)
    assert {r.status for r in dask} == {"ok"}
    frames = {k: results.load(tmp_path / k) for k in ("serial", "pool", "dask")}
    assert set(frames["pool"]["cell_id"]) == set(frames["dask"]["cell_id"]) == {c.cell_id for c in cells}
    key = ["cell_id", "metric"]
    pick = lambda df: df[df["metric"] == "grad_rel_error"].set_index(key)["value"]  # noqa: E731
    # same cell, same numbers whichever executor ran it (deterministic solves)
    assert pick(frames["serial"]).iloc[0] == pytest.approx(pick(frames["dask"]).loc[pick(frames["serial"]).index[0]], rel=1e-6)


def test_bad_executor_options_are_rejected(tmp_path):
    with pytest.raises(OptionError, match="unknown executor 'ray'"):
        run_sweep([], tmp_path, executor="ray")
    with pytest.raises(OptionError, match="only used with --executor dask"):
        run_sweep([], tmp_path, scheduler="tcp://x:1")


def test_sigkilled_sweep_loses_no_finished_cell_and_resumes(tmp_path):
    """Kill a running sweep with SIGKILL right after its first cell lands; resume finishes the rest."""
    out = tmp_path / "store"
    script = ("import sys; from fpibench.harness import expand_sweep, run_sweep\n"
              f"cells = expand_sweep({{'task': 'contractive_tanh', 'backward': ['backward_fpi', 'neumann', 'gmres', 'broyden'],"
              f" 'task_options': {PROBE!r}, 'study': False}})\n"
              f"run_sweep(cells, {str(out)!r}, progress=False, repeats=40)\n")
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "cells").is_dir() or not any((out / "cells").glob("*.parquet")):
        assert proc.poll() is None, "sweep ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    files = sorted((out / "cells").iterdir())
    assert files and all(f.suffix == ".parquet" and not f.name.startswith(".") for f in files)  # no partial files
    before = {f.name: f.stat().st_mtime_ns for f in files}
    done = results.load(out)  # every file that exists is whole
    assert len(before) < 4 and done["cell_id"].nunique() == len(before)
    cells = expand_sweep({"task": "contractive_tanh", "backward": ["backward_fpi", "neumann", "gmres", "broyden"],
                          "task_options": PROBE, "study": False})
    resumed = run_sweep(cells, out, progress=False, repeats=1)
    assert sum(r.status == "done" for r in resumed) == len(before)
    assert results.load(out)["cell_id"].nunique() == 4
    assert all((out / "cells" / name).stat().st_mtime_ns == t for name, t in before.items())


# -- CLI end to end on real data --------------------------------------------------------------
@needs_data
def test_cli_runs_a_tiny_sweep_on_real_data_reports_and_resumes(tmp_path, capsys):
    from fpibench.cli import main

    out = tmp_path / "store"
    args = ["run", "--task", "bibtex", "--model", "fpi_nn,feedforward", "--backward", "backward_fpi,jfb", "--epochs", "1",
            "--option", "train_limit=200", "--no-study", "--threads", "1", "--out", str(out), "--quiet", "--data-dir", DATA]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "3 cells run" in text
    df = results.load(out)
    f1 = df[(df["metric"] == "test_f1") & (df["kind"] == "train")]
    assert len(f1) == 3 and f1["value"].between(0, 100).all() and f1["headline"].all()
    assert (out / "report.md").is_file()
    assert main(args) == 0
    assert "0 cells run, 3 already stored" in capsys.readouterr().out


def test_cli_errors_are_clear(capsys, tmp_path):
    from fpibench.cli import main

    assert main(["run", "--task", "bibtex", "--backward", "magic", "--out", str(tmp_path)]) == 2
    assert "unknown gradient method 'magic'" in capsys.readouterr().err
    bad = tmp_path / "s.yaml"
    bad.write_text("task: [bibtex\n")
    assert main(["run", "--sweep", str(bad), "--out", str(tmp_path)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert main(["run", "--task", "bibtex", "--seeds", "x", "--out", str(tmp_path)]) == 2
    assert "--seeds" in capsys.readouterr().err


def test_shipped_sweeps_expand_by_name():
    from fpibench import sweeps

    assert {"paper-box", "paper-bibtex", "denoise-sigma", "probes"} <= set(sweeps.available())
    for name in sweeps.available():
        assert load_sweep_file(name), name
    with pytest.raises(SweepError, match="named sweeps: "):
        load_sweep_file("no-such-sweep")


def test_reference_uses_picard_where_the_anderson_reference_diverges():
    """Box FPI_GD at initialisation: Anderson diverges on the float64 reference solve (the energy
    is non-convex), Picard does not; the reference keeps Picard's gradient and says so."""
    from fpibench.harness._study import TaskProblem
    from fpibench.tasks import FPIConfig, get

    task = get("box_constraint", preset="quick")
    model = task.build_model("fpi_gd", FPIConfig(forward="picard", backward="backward_fpi"), seed=0)
    grads, note = TaskProblem(task, model, task.probe_batch(0)).reference()
    assert grads is not None and all(torch.isfinite(g).all() for g in grads)
    assert note.startswith("reference forward picard (anderson diverged)")


def test_picard_reference_gives_the_anderson_reference_gradient(monkeypatch):
    """Where both forwards converge the fallback changes nothing: the Picard reference (reached by
    making the first forward fail) equals the Anderson one to float64 accuracy."""
    from fpibench.harness import _study
    from fpibench.tasks import FPIConfig, get

    task = get("box_constraint", preset="quick")
    model = task.build_model("fpi_nn", FPIConfig(), seed=0)
    problem = _study.TaskProblem(task, model, task.probe_batch(0))
    anderson, note = problem.reference()
    assert note == ""
    monkeypatch.setattr(_study, "REFERENCE_FORWARDS", ("no_such_solver", "picard"))
    picard, note = problem.reference()
    assert note.startswith("reference forward picard (no_such_solver failed)")
    a, p = torch.cat([g.flatten() for g in anderson]), torch.cat([g.flatten() for g in picard])
    assert float((a - p).norm() / a.norm()) < 1e-6  # float32 storage of a float64 solve


def test_reference_failure_names_every_forward(monkeypatch):
    from fpibench.harness import _study
    from fpibench.tasks import FPIConfig, get

    task = get("box_constraint", preset="quick")
    model = task.build_model("fpi_nn", FPIConfig(), seed=0)
    monkeypatch.setattr(_study, "REFERENCE_FORWARDS", ("no_such_solver",))
    grads, note = _study.TaskProblem(task, model, task.probe_batch(0)).reference()
    assert grads is None and "no_such_solver" in note and note.startswith("reference gradient failed")


def _capped_box_fpi_gd(steps):
    """Box FPI_GD at initialisation with its Picard forward cut to ``steps`` iterations (not converged)."""
    from fpibench.tasks import FPIConfig, fpi_layers, get

    task = get("box_constraint", preset="quick")
    model = task.build_model("fpi_gd", FPIConfig(forward="picard", backward="backward_fpi"), seed=0)
    for layer in fpi_layers(model):
        layer.tol, layer.max_iter = 1e-12, steps
    return task, model


def test_unrolled_reference_is_the_gradient_of_the_capped_iteration():
    """Independent float64 check: the layer's forward replaced by a hand-written loop of x ← g(x)
    for the cap's number of steps gives the same gradient as ``unrolled_reference``."""
    import copy

    from fpibench.harness._study import TaskProblem
    from fpibench.tasks import fpi_layers

    steps = 7
    task, model = _capped_box_fpi_gd(steps)
    batch = task.probe_batch(0)
    unrolled, note = TaskProblem(task, model, batch).unrolled_reference()
    assert note == "" and unrolled is not None

    manual = copy.deepcopy(model).double()
    for layer in fpi_layers(manual):
        def loop(z, x0=None, layer=layer):
            g = layer.map_for(z)
            x = layer.initial_state(z) if x0 is None else x0
            for _ in range(steps):
                x = g(x)
            return x
        layer.forward = loop
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        double_batch = [b.double() if torch.is_floating_point(b) else b for b in batch]
        params = [p for p in manual.parameters() if p.requires_grad]
        expected = torch.autograd.grad(task.loss(manual, double_batch), params)
    finally:
        torch.set_default_dtype(default)
    u, e = torch.cat([g.flatten() for g in unrolled]), torch.cat([g.double().flatten() for g in expected])
    assert float((u.double() - e).norm() / e.norm()) < 1e-6  # float32 storage of a float64 gradient


def test_study_compares_with_the_unrolled_gradient_only_where_the_forward_stopped_at_its_cap():
    from fpibench.harness import _study
    from fpibench.tasks import FPIConfig, get

    task, model = _capped_box_fpi_gd(7)
    problem = _study.TaskProblem(task, model, task.probe_batch(0))
    reference = problem.reference()
    kwargs = dict(repeats=1, reference=reference, memory=False, unrolled_reference=problem.unrolled_reference)
    unroll, _, _ = _study.measure(problem, "unroll", {}, **kwargs)
    implicit, _, _ = _study.measure(problem, "jacobian_inverse", {}, **kwargs)
    # float32 unrolling is the computation as run; the implicit gradient at a non-fixed point is not
    assert unroll["grad_rel_error_unrolled"] < 1e-4 and unroll["grad_cosine_unrolled"] > 1 - 1e-6
    assert implicit["grad_rel_error_unrolled"] > 100 * unroll["grad_rel_error_unrolled"]

    converged = get("box_constraint", preset="quick")
    model = converged.build_model("fpi_nn", FPIConfig(), seed=0)
    problem = _study.TaskProblem(converged, model, converged.probe_batch(0))
    metrics, status, _ = _study.measure(problem, "backward_fpi", {}, repeats=1, memory=False,
                                        unrolled_reference=problem.unrolled_reference)
    assert status == "ok" and "grad_rel_error_unrolled" not in metrics


def test_fpi_gd_gradient_vs_unrolled_script_compares_every_method():
    """benchmarks/fpi_gd_gradient_vs_unrolled.py: one row per method; unrolling is the computation
    as run (float32 vs float64), and every row has finite comparisons with both references."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import fpi_gd_gradient_vs_unrolled as script

    rows = {r["method"]: r for r in script.rows_for("box_constraint", 0)}
    assert set(rows) == set(script.METHODS)
    assert rows["unroll"]["grad_rel_error_unrolled"] < 1e-5 and abs(rows["unroll"]["norm_ratio_unrolled"] - 1) < 1e-5
    assert rows["unroll"]["forward_iterations_mean"] == 500  # the paper's cap: the forward never converges
    for r in rows.values():
        assert all(math.isfinite(r[k]) for k in ("grad_rel_error_implicit", "grad_rel_error_unrolled",
                                                  "grad_cosine_unrolled", "norm_ratio_unrolled"))


# -- epoch checkpoints: a cell longer than a session resumes ----------------------------------
TRAIN_METRICS = ("test_mse", "train_mse", "train_loss", "forward_iterations_mean", "backward_iterations_mean",
                 "unconverged_solves")


def _interrupt_evaluation_at(monkeypatch, call: int):
    """Make the box task's evaluation raise at its ``call``-th call (a kill in that epoch)."""
    from fpibench.tasks import _base

    cls = _base._TASKS["box_constraint"]
    real, calls = cls.evaluate, []

    def evaluate(self, model):
        calls.append(1)
        if len(calls) == call:
            raise RuntimeError("killed in epoch 3")
        return real(self, model)

    monkeypatch.setattr(cls, "evaluate", evaluate)


def test_interrupted_training_cell_resumes_from_its_last_epoch_with_identical_numbers(tmp_path, monkeypatch, capsys):
    """A kill in epoch 3 loses only epoch 3: the rerun starts after epoch 2 from the checkpoint
    and ends with the same metrics and final gradient study as an uninterrupted run."""
    from fpibench.harness._checkpoint import checkpoint_path

    torch.set_num_threads(1)
    cell = Cell("box_constraint", "fpi_nn", "anderson", "backward_fpi", epochs=3, task_options={"n_train": 300})
    whole = run_cell(cell.to_dict(), repeats=1)["rows"]

    with monkeypatch.context() as patch:
        _interrupt_evaluation_at(patch, 3)
        (first,) = run_sweep([cell], tmp_path, progress=False, repeats=1)
    assert first.status == "error" and "killed in epoch 3" in first.error
    ckpt = checkpoint_path(tmp_path, cell.cell_id)
    assert ckpt.is_file() and torch.load(ckpt, weights_only=True)["epoch"] == 2
    assert not results.cell_done(tmp_path, cell.cell_id)
    from fpibench.cli import main

    listing = ["run", "--task", "box_constraint", "--model", "fpi_nn", "--backward", "backward_fpi", "--epochs", "3",
               "--option", "n_train=300", "--out", str(tmp_path), "--dry-run"]
    assert main(listing) == 0
    assert f"{cell.cell_id}  partial (epochs 1-2 saved)" in capsys.readouterr().out

    (second,) = run_sweep([cell], tmp_path, progress=False, repeats=1)
    assert second.status == "ok" and not ckpt.exists()  # stored, checkpoint removed
    assert main(listing) == 0
    assert "1 cells: 1 stored, 0 stale, 0 partial, 0 to run" in capsys.readouterr().out
    rows = results.load(tmp_path).to_dict("records")
    (resumed,) = _metric(rows, "train", "resumed_after_epoch")
    assert resumed["value"] == 2 and "after epoch 2" in resumed["reason"]
    for metric in TRAIN_METRICS:
        got = sorted((r["epoch"], r["value"]) for r in _metric(rows, "train", metric))
        want = sorted((r["epoch"], r["value"]) for r in _metric(whole, "train", metric))
        assert got == want and len(got) == 3, metric
    for epoch in (0, 3):  # the study at initialisation (kept from the first run) and after training
        got = _metric(rows, "gradient", "grad_rel_error", epoch)[0]["value"]
        assert got == _metric(whole, "gradient", "grad_rel_error", epoch)[0]["value"]
    from fpibench import report

    assert report.provenance_summary(results.load(tmp_path))["resumed_cells"] == 1
    clock = sorted((r["epoch"], r["value"]) for r in _metric(rows, "train", "elapsed_seconds"))
    assert [e for e, _ in clock] == [1, 2, 3] and clock[0][1] < clock[1][1] < clock[2][1]  # one training clock


def test_unreadable_or_foreign_checkpoint_is_a_clear_error(tmp_path):
    from fpibench.harness import _checkpoint

    cell = Cell("box_constraint", "fpi_nn", "anderson", "jfb", epochs=1, task_options={"n_train": 100})
    path = tmp_path / "c.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(results.ResultsError, match="c.pt cannot be read.*delete it"):
        run_cell(cell.to_dict(), repeats=1, checkpoint=str(path))
    model = torch.nn.Linear(2, 2)
    _checkpoint.save(path, config_hash="other", epoch=1, model=model, optimizer=torch.optim.Adam(model.parameters()),
                     rows=[], elapsed=1.0, commit="abc")
    with pytest.raises(results.ResultsError, match="belongs to config 'other'"):
        run_cell(cell.to_dict(), repeats=1, checkpoint=str(path))
