"""The report's statistics rule, its use in tables, budget-pure figure panels and the CSV/LaTeX export."""
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("scipy")
from scipy import stats  # noqa: E402

from fpibench.report import export_tables, table_winners, to_latex  # noqa: E402
from fpibench.report._tables import final_metric_table, split_panels  # noqa: E402
from fpibench.report._verdict import compare, ordering, rank  # noqa: E402

PAPER_STORE = Path(__file__).resolve().parents[1] / "results" / "paper"


def test_one_seed_gives_no_verdict():
    assert compare([0.9], [0.1], higher_is_better=True).verdict == "no verdict"
    outcome = rank({"a": pd.Series({0: 0.287}), "b": pd.Series({0: 0.287 + 8.9e-8})}, higher_is_better=False)
    assert outcome.verdict == "no verdict" and outcome.text == "no verdict (n = 1)" and outcome.best == "a"


def test_tie_when_the_paired_interval_covers_zero_and_the_interval_is_students():
    a = pd.Series({0: 1.0, 1: 2.0, 2: 3.0})
    b = pd.Series({0: 1.5, 1: 1.5, 2: 2.5})  # differences -0.5, +0.5, +0.5
    c = compare(a, b, higher_is_better=True)
    d = np.array([-0.5, 0.5, 0.5])
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    assert c.paired and c.n == 3
    assert (c.low, c.high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert c.verdict == "tie" and c.low < 0 < c.high


def test_pairing_by_seed_separates_what_seed_spread_hides():
    """Seeds move both methods by ±1; the method is ahead by 0.1 on every seed: paired, a winner;
    unpaired (Welch), a tie."""
    base = pd.Series({0: 10.0, 1: 11.0, 2: 12.0, 3: 13.0})
    ahead = base + pd.Series({0: 0.1, 1: 0.11, 2: 0.09, 3: 0.1})
    assert compare(ahead, base, higher_is_better=True).verdict == "better"
    assert compare(ahead, base, higher_is_better=True, paired=False).verdict == "tie"
    assert compare(ahead, base, higher_is_better=False).verdict == "worse"  # lower is better: ahead is worse
    outcome = rank({"ahead": ahead, "base": base}, higher_is_better=True)
    assert outcome.verdict == "winner" and outcome.text == "ahead"


def test_rank_lists_the_candidates_the_best_is_not_separated_from():
    seeds = {0: 0.0, 1: 1.0, 2: 2.0}
    a = pd.Series(seeds) + 5.0
    b = pd.Series(seeds) + pd.Series({0: 5.1, 1: 4.8, 2: 4.95})  # noisy, not separated from a
    c = pd.Series(seeds) + 1.0  # clearly worse
    outcome = rank({"a": a, "b": b, "c": c}, higher_is_better=True)
    assert outcome.verdict == "tie" and outcome.tied == ("a", "b")
    assert ordering({"a": a, "b": b, "c": c}, higher_is_better=True) == "a = b > c"
    assert ordering({"a": a.iloc[:1], "c": c}, higher_is_better=True) == "a ? c"


def _train_rows(values: dict, epochs_option: str = "") -> pd.DataFrame:
    rows = []
    for (backward, seed), value in values.items():
        rows.append(dict(task="box_constraint", model="fpi_nn", forward="anderson", backward=backward, seed=seed,
                         epoch=2, metric="test_mse", value=value, status="ok", kind="train", preset="paper",
                         headline=True, higher_is_better=False, problem="box_constraint",
                         cell_id=f"{backward}-{seed}{epochs_option}", options=epochs_option))
    return pd.DataFrame(rows)


def test_tables_bold_and_name_winners_only_beyond_the_seed_uncertainty():
    close = _train_rows({("gmres", 0): 0.30, ("gmres", 1): 0.20, ("jfb", 0): 0.31, ("jfb", 1): 0.19})
    clear = _train_rows({("gmres", 0): 0.10, ("gmres", 1): 0.20, ("jfb", 0): 0.30, ("jfb", 1): 0.41})
    alone = _train_rows({("gmres", 0): 0.10, ("jfb", 0): 0.30})
    for frame, best, verdict in ((close, [], "tie"), (clear, ["gmres"], "winner"), (alone, [], "no verdict")):
        table = final_metric_table(frame, "box_constraint")
        assert list(table.loc[table["best"], "backward"]) == best
        win = table_winners(frame)
        row = win[win["criterion"].str.startswith("best final test_mse")].iloc[0]
        assert row["verdict"] == verdict


def test_no_panel_mixes_budgets_or_fpi_models():
    options = {"": "", "40": '{"epochs": 40}'}
    rows = []
    for model, backward in (("fpi_nn", "gmres"), ("fpi_gd", "unroll"), ("feedforward", "-")):
        for preset in ("quick", "paper"):
            for budget, opt in options.items():
                rows.append(dict(task="box_constraint", model=model, forward="-" if backward == "-" else "picard",
                                 backward=backward, seed=0, epoch=1, metric="test_mse", value=0.1, status="ok",
                                 kind="train", preset=preset, problem="box_constraint", options=opt,
                                 cell_id=f"{model}-{preset}-{budget}"))
    from fpibench.report import prepare

    panels = split_panels(prepare(pd.DataFrame(rows)))
    for _, part in panels.groupby("panel"):
        assert part[["preset", "setting"]].drop_duplicates().shape[0] == 1
        assert part.loc[part["backward"] != "-", "model"].nunique() == 1
        assert "feedforward" in set(part["model"])  # the baseline is in every panel of its budget
    assert panels["panel"].nunique() == 2 * 2 * 2  # presets × budgets × FPI models


@pytest.mark.skipif(not (PAPER_STORE / "cells").is_dir(), reason="results/paper not committed in this checkout")
def test_the_paper_stores_learning_curve_panels_each_hold_one_budget():
    from fpibench.report import load_store
    from fpibench.report._figures import _headline_rows
    from fpibench.report._frame import split_init_scale

    panels = split_panels(_headline_rows(load_store(PAPER_STORE)))
    assert panels["panel"].nunique() > 10
    for panel, part in panels.groupby("panel"):
        # a baseline's init scale names another baseline, not another budget
        budgets = {(p, split_init_scale(s)[0]) for p, s in zip(part["preset"], part["setting"])}
        assert len(budgets) == 1, panel
        assert part.groupby("cell_id")["epoch"].max().nunique() == 1, panel  # one epoch count per panel


def test_every_table_is_exported_as_csv_and_booktabs_latex_with_bold_only_on_the_winner(tmp_path):
    clear = final_metric_table(_train_rows({("gmres", 0): 0.10, ("gmres", 1): 0.20, ("jfb", 0): 0.30,
                                            ("jfb", 1): 0.41}), "box_constraint")
    tied = final_metric_table(_train_rows({("gmres", 0): 0.30, ("gmres", 1): 0.20, ("jfb", 0): 0.31,
                                           ("jfb", 1): 0.19}), "box_constraint")
    paths = export_tables({"clear": clear, "tied": tied, "empty": clear.iloc[:0]}, tmp_path, {"clear": "Box MSE"})
    assert sorted(p.name for p in paths) == ["clear.csv", "clear.tex", "tied.csv", "tied.tex"]
    back = pd.read_csv(tmp_path / "clear.csv")
    assert list(back.columns) == list(clear.columns)
    assert back["mean"].tolist() == pytest.approx(clear["mean"].tolist(), rel=1e-12)
    tex = (tmp_path / "clear.tex").read_text()
    for token in (r"\toprule", r"\midrule", r"\bottomrule", r"\caption{Box MSE", r"$\pm$", "mean $\\pm$ sd"):
        assert token in tex, token
    assert tex.count(r"\textbf{") == 1 and r"\textbf{0.15 $\pm$" in tex
    assert r"\textbf{" not in (tmp_path / "tied.tex").read_text()
    assert "gmres" in to_latex(clear) and r"backward\_fpi" not in to_latex(clear)
