"""The spectral-radius estimate that diagnoses backward-FPI failures."""
import pytest
import torch

from fpibench.contraction import spectral_radius


def _matrix_with_spectrum(eigs, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=gen, dtype=torch.float64))
    s = torch.randn(len(eigs), len(eigs), generator=gen, dtype=torch.float64) * 0.1 + torch.eye(len(eigs), dtype=torch.float64)
    return s @ q @ torch.diag(torch.tensor(eigs, dtype=torch.float64)) @ q.T @ torch.linalg.inv(s)


@pytest.mark.parametrize("rho", [0.5, 0.95, 1.2])
def test_spectral_radius_of_a_linear_map_with_known_spectrum(rho):
    """Non-symmetric A with eigenvalues (rho, -0.6 rho, 0.3 ...): the estimate is rho, per sample."""
    eigs = [rho, -0.6 * rho, 0.3 * rho, 0.1, 0.05, 0.0]
    mats = [_matrix_with_spectrum(eigs, seed=s) for s in range(3)]
    x = torch.zeros(3, 6, dtype=torch.float64)

    def g(v):  # sample b uses its own matrix: per-sample Jacobians
        return torch.stack([m @ row for m, row in zip(mats, v)])

    est = spectral_radius(g, x, iters=200)
    assert torch.allclose(est, torch.full((3,), rho, dtype=torch.float64), rtol=5e-3)


def test_spectral_radius_handles_a_complex_pair_and_a_gradient_step():
    """A rotation-scaling block (eigenvalues 0.9 e^{±i}) and g = x - step * grad E (FPI_GD, VJPs
    through autograd.grad) with E = 0.5 x^T H x: rho(I - step H) = max |1 - step * lambda|."""
    c, s = torch.cos(torch.tensor(1.0, dtype=torch.float64)), torch.sin(torch.tensor(1.0, dtype=torch.float64))
    rot = 0.9 * torch.stack([torch.stack([c, -s]), torch.stack([s, c])])
    est = spectral_radius(lambda v: v @ rot.T, torch.zeros(2, 2, dtype=torch.float64), iters=400)
    assert torch.allclose(est, torch.full((2,), 0.9, dtype=torch.float64), rtol=1e-2)

    h = torch.diag(torch.tensor([0.5, 2.0, 3.5], dtype=torch.float64))

    def step(v):
        with torch.enable_grad():
            p = v if v.requires_grad else v.requires_grad_()
            (grad,) = torch.autograd.grad(0.5 * ((p @ h) * p).sum(), p, create_graph=True)
        return v - 0.5 * grad

    est = spectral_radius(step, torch.ones(4, 3, dtype=torch.float64), iters=100)
    assert torch.allclose(est, torch.full((4,), 0.75, dtype=torch.float64), rtol=1e-3)  # |1 - 0.5 * 3.5|


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="batch, n"):
        spectral_radius(lambda v: v, torch.zeros(3))
    with pytest.raises(ValueError, match="iters"):
        spectral_radius(lambda v: v, torch.zeros(2, 3), iters=1)


def test_trace_records_rho_statuses_and_loss_while_training(tmp_path, capsys):
    import csv
    import math

    from fpibench.contraction import main, trace

    rows = trace("box_constraint", "fpi_nn", "anderson", "backward_fpi", steps=3, every=1)
    assert [r["step"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert 0 < r["rho_median"] <= r["rho_max"] < 10 and math.isfinite(r["loss"])
        assert "converged" in r["forward_status"] and r["backward_status"]
    with pytest.raises(ValueError, match="not a vector FPI model"):
        trace("box_constraint", "feedforward", "anderson", "backward_fpi", steps=1, every=1)
    out = tmp_path / "rho.csv"
    assert main(["--task", "box_constraint", "--steps", "2", "--every", "1", "--out", str(out)]) == 0
    table = list(csv.DictReader(open(out)))
    assert len(table) == 2 and table[0]["forward"] == "anderson" and table[0]["git_commit"]
    assert "rho max" in capsys.readouterr().out
