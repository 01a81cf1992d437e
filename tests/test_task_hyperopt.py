"""The hyperparameter-optimisation task: real Bibtex data, exact hypergradients, the outer loop."""
import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import fpibench
from fpibench.harness import expand_sweep, run_sweep
from fpibench.harness._study import TaskProblem
from fpibench.report import table_hyperopt
from fpibench.results import load
from fpibench.tasks import FPIConfig, get
from fpibench.tasks.logistic import exact_hypergradient, logistic_loss, solve_inner

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SMALL = dict(features=20, labels=2, train_limit=200, init_log_alpha=-3.0)  # 20 hyperparameters, 2 problems
IMPLICIT = ("jacobian_inverse", "backward_fpi", "anderson", "broyden", "gmres", "cg", "minres", "implicit")


@pytest.fixture(autouse=True)
def bibtex_dir():
    if not DATA.is_dir():
        pytest.skip(f"shared data not found at {DATA}")
    fpibench.data.set_data_dir(DATA)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fpibench.FixedPointWarning)
        yield
    fpibench.data.set_data_dir(None)


def _float64_model(task, backward, seed=0, **layer):
    fpi = FPIConfig(forward="anderson", backward=backward, tol=1e-13, max_iter=3000, **layer)
    return task.build_model("fpi_gd", fpi, seed=seed).double()


def _float64_split(task, seed=0):
    return tuple(t.double() for t in task.split(seed))


def test_data_is_bibtex_with_its_most_frequent_tags():
    task = get("hyperopt", features=20, labels=3)
    data = task.data
    assert data["x"].shape == (4880, 21) and data["test"][0].shape == (2515, 21)  # 20 words + bias column
    assert data["labels"].tolist() == [134, 14, 131]
    assert data["y"].sum(dim=1).tolist() == [691.0, 327.0, 289.0]
    assert data["test"][1].sum(dim=1).tolist() == [351.0, 195.0, 154.0]
    assert hashlib.sha256(data["y"].numpy().tobytes()).hexdigest()[:16] == "1eb9fd57006cbc60"
    raw, _ = fpibench.data.load_bibtex("train")
    assert hashlib.sha256(np.ascontiguousarray(raw).tobytes()).hexdigest()[:16] == "3a7970eda242e6b3"
    rows = data["x"][:, :-1]
    assert torch.allclose(rows.norm(dim=1)[rows.abs().sum(1) > 0], torch.ones(1)) and bool((data["x"][:, -1] == 1).all())
    x, y, x_val, y_val = task.split(0)
    assert len(x) + len(x_val) == 4880 and y.shape == (3, len(x))
    assert not torch.equal(task.split(1)[0], x)  # the seed draws the validation split


@pytest.mark.parametrize("option, value", [("labels", 0), ("labels", 160), ("features", 1837), ("features", -1),
                                           ("val_fraction", 1.0), ("lr", 0.0), ("labels", "2"), ("epochs", True),
                                           ("init_log_alpha", float("nan")), ("alpha", 1.0)])
def test_options_are_refused_before_any_data_is_read(option, value, tmp_path):
    with pytest.raises(fpibench.OptionError, match=option):
        get("hyperopt", data_dir=tmp_path / "nowhere", **{option: value})
    with pytest.raises(fpibench.OptionError, match=option):
        expand_sweep({"task": "hyperopt", "task_options": {option: value}})


def test_exact_hypergradient_matches_central_differences_in_float64():
    task = get("hyperopt", **SMALL)
    x, y, x_val, y_val = _float64_split(task)
    lam = torch.linspace(-4.0, -2.0, SMALL["features"], dtype=torch.float64)
    exact = exact_hypergradient(lam, (x, y), (x_val, y_val))

    def outer(point):
        return float(logistic_loss(solve_inner(point, x, y), x_val, y_val))

    h = 1e-5
    eye = torch.eye(len(lam), dtype=torch.float64)
    fd = torch.tensor([(outer(lam + h * e) - outer(lam - h * e)) / (2 * h) for e in eye], dtype=torch.float64)
    assert float(exact.norm()) > 1e-4  # a hypergradient worth checking
    assert float((fd - exact).norm() / exact.norm()) < 1e-6  # measured 3e-8


@pytest.mark.parametrize("backward", IMPLICIT)
def test_implicit_hypergradients_match_the_exact_one(backward):
    task = get("hyperopt", **SMALL)
    options = {} if backward == "jacobian_inverse" else {"tol": 1e-13, "max_iter": 3000}
    model = _float64_model(task, backward, backward_options=options)
    batch = _float64_split(task)
    (grad,) = torch.autograd.grad(task.loss(model, batch), model.log_alpha)
    exact = exact_hypergradient(model.log_alpha, batch[:2], batch[2:])
    assert float((grad - exact).norm() / exact.norm()) < 1e-8, backward


def test_truncated_methods_are_measurably_off():
    task = get("hyperopt", **SMALL)
    batch = _float64_split(task)
    errors = {}
    for backward in ("jfb", "neumann"):
        model = _float64_model(task, backward, backward_options={"terms": 2} if backward == "neumann" else {})
        (grad,) = torch.autograd.grad(task.loss(model, batch), model.log_alpha)
        exact = exact_hypergradient(model.log_alpha, batch[:2], batch[2:])
        errors[backward] = float((grad - exact).norm() / exact.norm())
    assert all(e > 1e-3 for e in errors.values()), errors


def test_the_study_reference_is_the_exact_hypergradient():
    task = get("hyperopt", **SMALL)
    model = task.build_model("fpi_gd", FPIConfig(backward="cg"), seed=0)
    batch = task.split(0)
    (reference,), note = TaskProblem(task, model, batch).reference()
    exact = exact_hypergradient(model.log_alpha, batch[:2], batch[2:])
    assert note == "" and float((reference.double() - exact).norm() / exact.norm()) < 1e-5  # stored in float32


def test_the_jacobian_is_symmetric_so_cg_and_minres_apply():
    task = get("hyperopt", **SMALL)
    model = task.build_model("fpi_gd", FPIConfig(), seed=0).double()
    x, y, _, _ = _float64_split(task)
    g = model.fpi.map_for((x, y))
    w = torch.randn(2, x.shape[1], dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: g(v.unsqueeze(0))[0], w[0])
    assert torch.allclose(jac, jac.T, atol=1e-12)
    assert float(torch.linalg.eigvalsh(torch.eye(len(jac), dtype=torch.float64) - jac).min()) > 0  # I − J ≻ 0


def test_outer_optimisation_lowers_the_validation_loss():
    task = get("hyperopt", features=100, train_limit=500, epochs=5, lr=0.2)
    model = task.build_model("fpi_gd", FPIConfig(backward="cg"), seed=0)
    history = task.fit(model, seed=0)
    start, end = history[0]["train_loss"], history[-1]["val_loss"]
    assert end < 0.9 * start, (start, end)
    assert history[-1]["test_loss"] < history[0]["test_loss"]
    assert all(b["val_loss"] < a["val_loss"] for a, b in zip(history, history[1:]))


def test_a_sweep_records_units_headline_and_the_time_to_target(tmp_path):
    spec = {"task": "hyperopt", "backward": ["cg", "jfb"], "epochs": 4,
            "task_options": {"features": 30, "train_limit": 300, "lr": 0.3}}
    run_sweep(expand_sweep(spec), tmp_path / "store", executor="local", workers=1)
    df = load(tmp_path / "store")
    heads = set(df.loc[df["headline"].astype(bool), "metric"])
    assert heads == {"test_loss"} and set(df.loc[df["metric"] == "val_loss", "unit"]) == {"nats"}
    curve = df[(df["kind"] == "gradient_curve") & (df["backward"] == "cg") & (df["metric"] == "vjp_calls")]
    assert len(curve) > 3  # the Krylov adjoints have an error-vs-budget curve
    table = table_hyperopt(df).set_index("backward")
    assert table.loc["cg", "reached"] == 1 and table.loc["cg", "seconds_to_target"] > 0
    assert table.loc["cg", "grad_rel_error_init"] < 1e-3 < table.loc["jfb", "grad_rel_error_init"]
