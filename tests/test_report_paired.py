"""fpibench.report.table_paired_methods: gradient methods compared on the same seeds.

Built from hand-made cells whose final metric, training time and unconverged solves are
known, so every paired statistic is checked against its definition (the paired t-test by
hand from the differences, not through scipy's ttest_rel)."""
import math

import numpy as np
import pytest
from scipy import stats

pd = pytest.importorskip("pandas")

from fpibench.report import table_paired_methods  # noqa: E402
from fpibench.report._markdown import section_paired  # noqa: E402


def _cell(forward, backward, seed, final, seconds, unconverged=(0, 0), model="fpi_nn", task="box_constraint",
          metric="test_mse", setting_epochs=None):
    """A two-epoch training cell: the headline at each epoch (``final`` at the last), the
    cumulative elapsed seconds (``seconds`` at the last) and unconverged solves per epoch."""
    rows = []
    for epoch, (value, elapsed, bad) in enumerate(zip((final + 1.0, final), (seconds / 2, seconds), unconverged), 1):
        for name, v in ((metric, value), ("elapsed_seconds", elapsed), ("unconverged_solves", bad)):
            rows.append(dict(task=task, model=model, forward=forward, backward=backward, seed=seed, epoch=epoch,
                             metric=name, value=float(v), kind="train", preset="paper", status="ok",
                             unit={"psnr_bsd68": "dB", "test_mse": "MSE"}.get(name, "s" if "seconds" in name else ""),
                             options='{"epochs": %s}' % ("null" if setting_epochs is None else setting_epochs),
                             cell_id=f"{task}-{model}-{forward}-{backward}-s{seed}-{setting_epochs}"))
    return rows


def _frame(cells):
    return pd.DataFrame([row for cell in cells for row in cell])


def _paired_p(d):
    d = np.asarray(d, float)
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    return 2 * stats.t.sf(abs(t), len(d) - 1)


def test_paired_differences_time_ratio_and_unconverged_match_their_definitions():
    ref = {0: 0.50, 1: 0.40, 2: 0.45}
    gmres = {0: 0.30, 1: 0.35, 2: 0.50}  # lower MSE is better: better on seeds 0 and 1, worse on 2
    cells = [_cell("picard", "backward_fpi", s, v, 100.0, unconverged=(3, 1)) for s, v in ref.items()]
    cells += [_cell("anderson", "gmres", s, v, 40.0 + 10 * s) for s, v in gmres.items()]
    # the paper's gradient with another forward on fewer seeds: not the reference
    cells += [_cell("anderson", "backward_fpi", 0, 0.9, 80.0)]
    cells += [_cell("anderson", "jfb", 7, 0.1, 10.0)]  # no seed shared with the reference: left out
    cells += [_cell("-", "-", 0, 0.2, 5.0, model="feedforward")]  # not an implicit model: never paired
    table = table_paired_methods(_frame(cells))
    assert set(table["method"]) == {"gmres [anderson]", "backward_fpi [anderson]"}
    assert set(table["reference"]) == {"backward_fpi [picard]"}
    row = table.set_index("method").loc["gmres [anderson]"]
    d = [gmres[s] - ref[s] for s in (0, 1, 2)]
    assert row["seeds"] == 3 and row["seed_list"] == "0 / 1 / 2"
    assert row["diff_mean"] == pytest.approx(np.mean(d))
    assert (row["diff_min"], row["diff_max"]) == pytest.approx((min(d), max(d)))
    assert (row["better_seeds"], row["worse_seeds"]) == (2, 1)
    assert row["p_paired"] == pytest.approx(_paired_p(d), rel=1e-9)
    assert row["time_ratio"] == pytest.approx(np.median([40 / 100, 50 / 100, 60 / 100]))
    assert row["unconverged_reference"] == pytest.approx(4.0) and row["unconverged_method"] == 0.0
    single = table.set_index("method").loc["backward_fpi [anderson]"]
    assert single["seeds"] == 1 and math.isnan(single["p_paired"]) and single["diff_mean"] == pytest.approx(0.4)


def test_reference_prefers_picard_on_a_tie_and_falls_back_without_backward_fpi():
    tie = [_cell(fwd, "backward_fpi", s, 0.5 + 0.1 * (fwd == "anderson"), 10.0) for fwd in ("anderson", "picard")
           for s in (0, 1)]
    table = table_paired_methods(_frame(tie))
    assert list(table["reference"]) == ["backward_fpi [picard]"]
    assert table["diff_mean"].iloc[0] == pytest.approx(0.1)
    # no backward FPI: the method with the most seeds is the reference
    others = [_cell("anderson", "gmres", s, 0.5, 10.0) for s in (0, 1, 2)] + [_cell("anderson", "jfb", 0, 0.7, 5.0)]
    table = table_paired_methods(_frame(others))
    assert list(table["reference"]) == ["gmres [anderson]"] and list(table["method"]) == ["jfb [anderson]"]


def test_budgets_are_paired_apart_and_the_section_reports_direction():
    cells = [_cell("picard", "backward_fpi", 0, 30.0, 100.0, task="denoise", metric="psnr_bsd68"),
             _cell("anderson", "gmres", 0, 30.5, 50.0, task="denoise", metric="psnr_bsd68"),
             # a 40-epoch GMRES cell has no 40-epoch reference: never paired with the 20-epoch one
             _cell("anderson", "gmres", 0, 99.0, 50.0, task="denoise", metric="psnr_bsd68", setting_epochs=40)]
    table = table_paired_methods(_frame(cells))
    assert len(table) == 1 and table["diff_mean"].iloc[0] == pytest.approx(0.5)
    assert table["better_seeds"].iloc[0] == 1  # higher PSNR is better
    text = "\n".join(section_paired(table))
    assert "### denoise — psnr_bsd68" in text and "higher is better" in text
    assert "| gmres [anderson] | backward_fpi [picard] | 0 | +0.50 | 1 / 0 | — | — | no verdict | 0.50 | 0 / 0 |" in text
    tiny = table.assign(diff_mean=2e-6)  # below the table's 2 decimals: the magnitude is kept
    assert "| +2e-06 |" in "\n".join(section_paired(tiny))
    assert "No problem in this store" in "\n".join(section_paired(table.iloc[:0]))
