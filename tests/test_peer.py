"""The torchdeq peer comparison (fpibench.peer) on tiny problems: no timing assertions."""
import math

import pandas as pd
import pytest
import torch

pytest.importorskip("torchdeq")

from fpibench import peer  # noqa: E402
from fpibench.errors import OptionError  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    return peer.make_problem("contractive", dim=16, batch=4)


@pytest.mark.parametrize("solver", peer.SOLVERS)
def test_both_libraries_reach_the_tolerance_under_the_shared_rule(tiny, solver):
    for runner in (peer.ours_forward, peer.theirs_forward):
        run = runner(tiny, solver)
        assert run.iterations >= 2
        assert peer.residual(tiny.g, run.x) <= tiny.tol, (runner.__name__, solver)


def test_residual_is_the_fixed_point_residual_computed_the_same_way(tiny):
    ours, theirs = peer.ours_forward(tiny, "anderson").x, peer.theirs_forward(tiny, "anderson").x
    for x in (ours, theirs):
        with torch.no_grad():
            diff = tiny.g(x) - x
        by_hand = max(math.sqrt(sum(float(t) ** 2 for t in row)) for row in diff)
        assert peer.residual(tiny.g, x) == pytest.approx(by_hand, rel=1e-6)
    # it scores the returned point, not a solver's own step: a perturbed point scores worse
    assert peer.residual(tiny.g, ours + 1e-3) > 10 * tiny.tol


def test_every_row_is_scored_by_the_one_residual_function(monkeypatch):
    scored = []
    real = peer.residual
    monkeypatch.setattr(peer, "residual", lambda g, x: scored.append(tuple(x.shape)) or real(g, x))
    rows, _ = peer.compare(["contractive"], repeats=1, dim=8, batch=2, solvers=["picard"],
                           backward=["backward_fpi"], memory=False)
    assert len(scored) == len(rows) == 5  # 2 forward + 2 backward + the VJP row
    assert set(rows["library"]) == {"fpibench", "torchdeq"}


# torchdeq's Anderson is left out on purpose: its absolute ridge λ = 1e-4 dominates the
# Gram matrix near convergence and it stalls on the near-critical problem (see the README)
EXACT = [("fpibench", m) for m in (*peer.BACKWARD_PAIRS, *peer.BACKWARD_EXTRA)] + \
        [("torchdeq", "backward_fpi"), ("torchdeq", "broyden")]


@pytest.mark.parametrize("library,method", EXACT)
def test_exact_gradient_methods_match_the_reference(library, method):
    problem = peer.make_problem("near_critical_f64", dim=12, batch=3, tol=1e-12, backward_tol=1e-12)
    x_hat = peer.ours_forward(problem, "broyden").x
    runner = peer.ours_backward if library == "fpibench" else peer.theirs_backward
    run = runner(problem, method, x_hat)
    assert run.iterations > 0
    error = peer.grad_rel_error(run.grads, problem.reference(), list(problem.instance.leaves))
    assert error < 1e-7, error


def test_near_critical_problem_has_spectral_radius_099_and_is_slow_for_picard():
    problem = peer.make_problem("near_critical", dim=32, batch=4)
    w = problem.instance.leaves["W"].detach().double()
    assert torch.linalg.eigvals(w).abs().max().item() == pytest.approx(0.99, rel=1e-5)
    assert torch.linalg.matrix_norm(w, 2).item() == pytest.approx(0.99, rel=1e-5)
    run = peer.ours_forward(problem, "picard")
    assert run.iterations >= 200
    assert peer.residual(problem.g, run.x) <= problem.tol


def test_ratios_are_ours_over_theirs_and_flag_unmet_goals():
    def row(library, solver, seconds, iterations, residual=1e-7, problem="p"):
        return {"library": library, "solver": solver, "problem": problem, "tol": 1e-6, "rule": "abs", "repeat": 0,
                "seconds": seconds, "iterations": iterations, "residual": residual, "grad_rel_error": math.nan}

    frame = pd.DataFrame([
        row("fpibench", "picard", 4.0, 100), row("torchdeq", "picard", 5.0, 100),
        row("fpibench", "anderson", 1.0, 30), row("torchdeq", "anderson", 2.0, 40),
        row("fpibench", "broyden", 3.0, 20), row("torchdeq", "broyden", 1.0, 10, residual=1.0),  # theirs failed
        row("fpibench", "backward:backward_fpi", 0.30, 100), row("fpibench", "vjp", 0.002, 100),
    ])
    out = peer.ratios(frame, {"saved_bytes": {"ratio": 1.0, "low": 10, "high": 10, "problem": "p"}}).set_index("goal")
    assert list(out.reset_index().columns) == list(peer.RATIO_COLUMNS)
    assert out.loc["same_solver_time:anderson:p", "measured"] == pytest.approx(0.5)
    assert out.loc["same_solver_time:anderson:p", "met"]
    assert out.loc["same_solver_iterations:anderson:p", "measured"] == pytest.approx(0.75)
    assert not out.loc["same_solver_time:broyden:p", "met"]
    assert "did not reach tol" in out.loc["same_solver_time:broyden:p", "detail"]
    # fastest that reached tol: ours anderson 1.0 s vs theirs anderson 2.0 s (their broyden failed)
    assert out.loc["fastest_time:p", "measured"] == pytest.approx(0.5)
    assert out.loc["backward_fpi_vjp:p", "measured"] == pytest.approx(1.5)
    assert not out.loc["backward_fpi_vjp:p", "met"]
    assert out.loc["saved_bytes_200_vs_10", "met"]


def test_cli_writes_the_tables_and_the_markdown(tmp_path, capsys):
    assert peer.main(["--out", str(tmp_path), "--repeats", "1", "--dim", "8", "--batch", "2",
                      "--problems", "contractive"]) == 0
    rows = pd.read_csv(tmp_path / "peer_cpu.csv")
    assert list(rows.columns) == list(peer.COLUMNS)
    assert pd.read_parquet(tmp_path / "peer_cpu.parquet").shape == rows.shape
    assert set(rows["library"]) == {"fpibench", "torchdeq"}
    assert set(peer.SOLVERS) <= set(rows["solver"])
    assert (rows["device"] == "cpu").all() and rows["torchdeq_version"].eq("0.1.0").all()
    assert rows.loc[rows["solver"].str.startswith("backward:"), "grad_rel_error"].notna().all()
    ratios = pd.read_csv(tmp_path / "ratios_cpu.csv")
    assert list(ratios.columns) == list(peer.RATIO_COLUMNS)
    assert {"fastest_time:contractive", "backward_fpi_vjp:contractive", "saved_bytes_200_vs_10"} <= set(ratios["goal"])
    assert ratios.loc[ratios["goal"] == "saved_bytes_200_vs_10", "measured"].item() <= 1.05
    lines = peer.peer_markdown(tmp_path)
    assert any("same_solver_time:anderson:contractive" in line for line in lines)
    assert "saved_bytes_200_vs_10" in capsys.readouterr().out


def test_bad_input_raises_clear_errors():
    with pytest.raises(OptionError, match="unknown peer problem 'nope'.*contractive"):
        peer.make_problem("nope")
    with pytest.raises(OptionError, match="repeats"):
        peer.compare(["contractive"], repeats=0)
    with pytest.raises(OptionError, match="unknown solver 'newton'"):
        peer.compare(["contractive"], solvers=["newton"])
    with pytest.raises(SystemExit):
        peer.main(["--threads", "0"])
