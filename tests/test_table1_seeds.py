"""Table 1 seed by seed (fpibench.report.table_seed_gap and its CLI benchmarks/table1_seeds.py):
seed selection, the Welch statistics, budgets kept apart, the report section, the committed store."""
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import table1_seeds  # noqa: E402


def _cell(model, seed, sigma, psnr, forward="-", backward="-", epochs=20, init_scale=None):
    """A denoise/paper cell as the store writes it: one psnr_bsd68 row per epoch, the last = psnr."""
    task_options = {"sigma": sigma}
    if init_scale is not None:
        task_options["feedforward_init_scale"] = init_scale
    options = json.dumps({"epochs": None if epochs == 20 else epochs, "task_options": task_options})
    cell_id = f"{model}-{forward}-{backward}-{seed}-{sigma}-{init_scale}-{epochs}"
    return pd.DataFrame(dict(
        task="denoise", preset="paper", kind="train", metric="psnr_bsd68", model=model,
        forward=forward, backward=backward, seed=seed, sigma=float(sigma), options=options,
        cell_id=cell_id, epoch=np.arange(1, epochs + 1),
        value=np.r_[np.full(epochs - 1, psnr - 1.0), psnr]))


def _store(fpi, small, default, sigma=25):
    cells = [_cell("fpi_nn", s, sigma, v, "anderson", "gmres") for s, v in enumerate(fpi)]
    cells += [_cell("feedforward", s, sigma, v, init_scale=0.1) for s, v in enumerate(small)]
    cells += [_cell("feedforward", s, sigma, v) for s, v in enumerate(default)]
    return cells


def _welch_p(a, b):
    """Welch's two-sided p from its definition (Welch-Satterthwaite degrees of freedom)."""
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    t = (np.mean(a) - np.mean(b)) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return 2 * stats.t.sf(abs(t), dof)


def test_gap_standard_error_and_welch_p_match_their_definitions():
    fpi, small, default = [26.7, 26.2, 26.4], [26.1, 26.8, 26.0], [27.4, 27.3, 27.2]
    cells = _store(fpi, small, default)
    # another method for seed 0 (the paper's), a 40-epoch baseline and a baseline at another
    # initialisation scale: the first replaces the GMRES cell of that seed, the others stay out
    # of Table 1 (another budget; a group Table 1 does not have)
    cells.append(_cell("fpi_nn", 0, 25, 26.9, "picard", "backward_fpi"))
    cells.append(_cell("feedforward", 0, 25, 30.0, init_scale=0.1, epochs=40))
    cells.append(_cell("feedforward", 3, 25, 31.0, init_scale=0.5))  # neither baseline: ignored
    table = table1_seeds.table1(pd.concat(cells, ignore_index=True)).set_index("row")
    used = [26.9, 26.2, 26.4]
    assert table.loc["fpi_nn", "methods"] == "picard+backward_fpi / anderson+gmres / anderson+gmres"
    assert table.loc["fpi_nn", "mean"] == pytest.approx(np.mean(used))
    assert table.loc["feedforward init×0.1", "mean"] == pytest.approx(np.mean(small))
    gap = table.loc["gap fpi_nn − feedforward init×0.1"]
    assert gap["mean"] == pytest.approx(np.mean(used) - np.mean(small))
    assert gap["sd"] == pytest.approx(math.sqrt(np.var(used, ddof=1) / 3 + np.var(small, ddof=1) / 3))
    assert gap["p_welch"] == pytest.approx(_welch_p(used, small), rel=1e-9)
    default_gap = table.loc["gap fpi_nn − feedforward"]
    assert default_gap["p_welch"] == pytest.approx(_welch_p(used, default), rel=1e-9)


def test_a_missing_group_is_named():
    cells = _store([26.7, 26.2], [26.1, 26.8], [27.4])
    with pytest.raises(table1_seeds.Table1Error, match="'feedforward' has 1 seed"):
        table1_seeds.table1(pd.concat(cells, ignore_index=True))
    with pytest.raises(table1_seeds.Table1Error, match="no denoise cells"):
        table1_seeds.table1(pd.concat(cells, ignore_index=True), setting="epochs=7")


def test_committed_store_sigma_25_reads_the_cells_themselves():
    """On results/paper: the σ = 25 FPI_NN row is the mean of the stored Picard + backward FPI
    cells' epoch-20 PSNR, read here straight from their parquet files."""
    folder = ROOT / "results" / "paper" / "cells"
    files = sorted(folder.glob("denoise-sigma25-fpi_nn-picard-backward_fpi-s*-paper-*.parquet"))
    if len(files) < 2:
        pytest.skip("results/paper lacks the sigma 25 FPI_NN cells")
    direct = []
    for path in files:
        cell = pd.read_parquet(path)
        psnr = cell[(cell.metric == "psnr_bsd68") & (cell.epoch == 20)]
        direct.append(float(psnr.value.iloc[0]))
    from fpibench.results import load

    table = table1_seeds.table1(load(ROOT / "results" / "paper"))
    row = table[(table.sigma == 25) & (table.row == "fpi_nn")].iloc[0]
    assert row["n"] == len(files)
    assert row["mean"] == pytest.approx(np.mean(direct), abs=1e-9)


def test_report_keeps_budgets_and_init_scales_apart_and_says_what_a_single_seed_cannot():
    from fpibench.report import table_seed_gap
    from fpibench.report._markdown import section_seed_gap

    cells = _store([26.7, 26.2, 26.4], [26.1, 26.8, 26.0], [27.4, 27.3, 27.2], sigma=25)
    cells += _store([27.7, 27.6], [27.0, 27.1], [28.0, 28.1], sigma=20)
    cells.append(_cell("feedforward", 0, 25, 30.0, init_scale=0.1, epochs=40))
    cells.append(_cell("fpi_nn", 0, 25, 29.0, "anderson", "gmres", epochs=40))
    cells.append(_cell("feedforward", 3, 25, 31.0, init_scale=0.5))
    table = table_seed_gap(pd.concat(cells, ignore_index=True))
    rows = table.set_index(["setting", "sigma", "row"])
    # the 40-epoch cells form their own budget with one seed per group: a gap without an error
    long = rows.loc[("epochs=40", 25.0, "gap fpi_nn − feedforward init×0.1")]
    assert long["mean"] == pytest.approx(-1.0) and math.isnan(long["sd"]) and long["n"] == 2
    # another initialisation scale is its own baseline group, never mixed into the others
    assert rows.loc[("", 25.0, "feedforward init×0.5"), "mean"] == pytest.approx(31.0)
    assert rows.loc[("", 25.0, "feedforward init×0.1"), "n"] == 3
    lines = "\n".join(section_seed_gap(table))
    # one seed per group: a difference, no standard error and no verdict
    assert "#### preset paper, epochs=40" in lines and "| 29.00 (n=1) | 30.00 (n=1) | -1.00: no verdict |" in lines
    # σ = 20 then 25: the default-init gap goes -0.40 -> -0.87, the small-init gap +0.60 -> +0.13
    assert "gap fpi_nn − feedforward over σ = 20, 25: -0.40 → -0.87 dB; implicit worse at 2 of 2 σ" in lines
    # +0.13 ± 0.29 at σ = 25 is a tie: only σ = 20's +0.60 beats the seed uncertainty
    assert "gap fpi_nn − feedforward init×0.1 over σ = 20, 25: +0.60 → +0.13 dB; implicit better at 1, tie at 1 of 2 σ" in lines
    assert "| 25 | 26.43 ± 0.25 (n=3) |" in lines
    assert "+0.65 |" in lines  # the paper's σ = 25 gap, 29.74 − 29.09
