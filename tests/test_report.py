"""fpibench.report: tables, figures and report.md built from a synthetic results store.

The store is written with ``fpibench.results.write_cell`` from schema-conforming rows with
seeded random values (no training); every table value checked here is recomputed with
plain pandas from the raw rows, independently of the report code.
"""
import re

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")
pytest.importorskip("seaborn")

from fpibench import results  # noqa: E402
from fpibench.errors import OptionError  # noqa: E402
from fpibench import report  # noqa: E402
from fpibench.report import paper_numbers  # noqa: E402

PROV = {"git_commit": "abc1234", "device": "cpu", "device_name": "cpu", "dtype": "float32", "torch_version": "2.x",
        "python_version": "3.11", "fpibench_version": "0.1.0", "cpu_name": "testcpu", "gpu_name": "",
        "start_time": "2025-01-01T00:00:00+00:00", "end_time": "2025-01-01T00:10:00+00:00"}
HEADLINE = {"denoise": ("psnr_bsd68", "dB", True), "bibtex": ("test_f1", "%", True),
            "box_constraint": ("test_mse", "MSE", False), "optical_flow": ("aepe", "px", False)}


def _row(task, model, forward, backward, seed, epoch, metric, value, kind, **kw):
    head, _, higher = HEADLINE.get(task, (None, "", False))
    return dict(task=task, model=model, forward=forward, backward=backward, seed=seed, epoch=epoch, metric=metric,
                value=float(value), status=kw.pop("status", "ok"), reason=kw.pop("reason", ""), kind=kind,
                preset="quick", headline=metric == head, higher_is_better=higher, **kw)


def _train_cells(rng, task, methods, epochs, seeds=(0, 1, 2), sigmas=(None,), base=30.0, scale=1.0):
    """(cell_id, rows) of training cells: headline metric, a second metric and the timing metrics."""
    metric, unit, _ = HEADLINE[task]
    for sigma in sigmas:
        problem = f"{task} sigma={sigma}" if sigma else task
        for model, backward in methods:
            forward = "-" if backward == "-" else "anderson"
            for seed in seeds:
                rows, elapsed = [], 0.0
                for epoch in range(1, epochs + 1):
                    step = rng.uniform(0.01, 0.05) * (3 if backward == "unroll" else 1)
                    elapsed += 10 * step
                    extra = dict(problem=problem, sigma=float(sigma) if sigma else np.nan, unit=unit)
                    rows.append(_row(task, model, forward, backward, seed, epoch, metric,
                                     base + scale * (epoch + rng.normal()), "train", **extra))
                    rows.append(_row(task, model, forward, backward, seed, epoch, "train_loss", rng.uniform(), "train",
                                     problem=problem, sigma=extra["sigma"]))
                    for m, v, u in (("step_seconds", step, "s"), ("epoch_seconds", 10 * step, "s"),
                                    ("elapsed_seconds", elapsed, "s"), ("forward_iterations_mean", 12, "iterations")):
                        rows.append(_row(task, model, forward, backward, seed, epoch, m, v, "train",
                                         problem=problem, sigma=extra["sigma"], unit=u))
                yield f"{task}-{problem}-{model}-{backward}-s{seed}".replace(" ", "_").replace("=", ""), rows


GRAD_METHODS = {"backward_fpi": 1.0, "neumann": 1.0, "jacobian_inverse": 0.0, "unroll": 0.8}  # error rate factor


def _gradient_cells(rng):
    for k in (0.5, 0.9):
        problem = f"contractive_tanh k={k} d=64"
        for backward in GRAD_METHODS:
            for seed in (0, 1):
                common = dict(problem=problem, k=k)
                if backward == "jacobian_inverse" and k == 0.9:  # a skipped cell with a reason
                    yield f"grad-{k}-{backward}-s{seed}", [_row(
                        "contractive_tanh", "probe", "anderson", backward, seed, 0, "grad_rel_error", np.nan,
                        "gradient", status="skipped", reason="jacobian_inverse needs 12.3 GiB > budget 2 GiB", **common)]
                    continue
                err = {"jacobian_inverse": 1e-15, "unroll": 1e-7}.get(backward, 10 ** -rng.uniform(4, 9))
                rows = [_row("contractive_tanh", "probe", "anderson", backward, seed, 0, m, v, "gradient", unit=u, **common)
                        for m, v, u in (("grad_rel_error", err, ""), ("grad_cosine", 1 - err, ""),
                                        ("backward_iterations_mean", rng.integers(5, 40), "iterations"),
                                        ("backward_seconds", rng.uniform(1e-3, 1e-2), "s"),
                                        ("saved_bytes", 4096 * (30 if backward == "unroll" else 1), "bytes"),
                                        ("peak_rss_bytes", rng.uniform(1e6, 2e6), "bytes"))]
                rows += [_row("contractive_tanh", "probe", "anderson", backward, seed, 0, "step_seconds",
                              rng.uniform(0.01, 0.02), "gradient", unit="s", **common) for _ in range(3)]
                yield f"grad-{k}-{backward}-s{seed}", rows
                curve = []
                for budget in (1, 2, 4, 8, 16):
                    curve += [_row("contractive_tanh", "probe", "anderson", backward, seed, 0, "grad_rel_error",
                                   (k * GRAD_METHODS[backward]) ** budget, "gradient_curve", budget=float(budget),
                                   **common),
                              _row("contractive_tanh", "probe", "anderson", backward, seed, 0, "backward_seconds",
                                   1e-4 * budget * (1 + seed), "gradient_curve", budget=float(budget), unit="s", **common)]
                yield f"curve-{k}-{backward}-s{seed}", curve
                mem = []
                for budget in (5, 10, 20):
                    mem += [_row("contractive_tanh", "probe", "anderson", backward, seed, 0, "saved_bytes",
                                 1000 * (budget if backward == "unroll" else 1), "memory_curve", budget=float(budget),
                                 unit="bytes", **common),
                            _row("contractive_tanh", "probe", "anderson", backward, seed, 0, "peak_rss_bytes",
                                 1e6 + 1e4 * budget, "memory_curve", budget=float(budget), unit="bytes", **common)]
                yield f"mem-{k}-{backward}-s{seed}", mem


def write_store(path, kinds=("train", "gradient"), tasks=None):
    rng = np.random.default_rng(0)
    cells = []
    if "train" in kinds:
        cells += _train_cells(rng, "denoise", [("feedforward", "-"), ("fpi_nn", "backward_fpi"), ("fpi_nn", "jfb")],
                              epochs=2, sigmas=(15, 25), base=28.0)
        cells += _train_cells(rng, "bibtex", [("feedforward", "-"), ("fpi_nn", "backward_fpi"), ("fpi_nn", "unroll"),
                                              ("fpi_gd", "backward_fpi")], epochs=2, seeds=(0, 1), base=35.0)
        cells += _train_cells(rng, "box_constraint", [("feedforward", "-"), ("fpi_nn", "backward_fpi"),
                                                      ("fpi_gd", "backward_fpi")], epochs=3, base=0.2, scale=-0.02)
        cells += _train_cells(rng, "optical_flow", [("flownets", "-"), ("fpi_nn", "backward_fpi")], epochs=2,
                              seeds=(0,), base=5.0, scale=-0.3)
    if "gradient" in kinds:
        cells += _gradient_cells(rng)
    for cell_id, rows in cells:
        if tasks is not None and rows[0]["task"] not in tasks:
            continue
        if cell_id.startswith("box_constraint") and "fpi_gd" in cell_id and cell_id.endswith("s2"):
            for r in rows:  # this seed diverged at its last epoch: NaN headline, status "diverged"
                if r["epoch"] == 3 and r["metric"] == "test_mse":
                    r.update(value=np.nan, status="diverged", reason="residual grew 1e3 x")
        results.write_cell(path, cell_id, rows, PROV)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    store = write_store(tmp_path_factory.mktemp("store"))
    path = report.build_report(store)
    return store, path, path.read_text()


@pytest.fixture(scope="module")
def raw(built):
    return results.load(built[0])


def _final(raw, task, metric):
    rows = raw[(raw.task == task) & (raw.kind == "train") & (raw.metric == metric)]
    return rows[rows.epoch == rows.groupby("cell_id").epoch.transform("max")]


def test_every_figure_is_written_as_png_and_svg(built):
    store, path, text = built
    assert path == store / "report.md"
    for name in report.FIGURE_NAMES:
        for ext in ("png", "svg"):
            f = store / "figures" / f"{name}.{ext}"
            assert f.is_file() and f.stat().st_size > 1000, f
        assert f"](figures/{name}.png)" in text
    assert "Skipped" not in text
    png = (store / "figures" / "metric_vs_epoch.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (store / "figures" / "metric_vs_epoch.svg").read_text().lstrip().startswith("<?xml")


def test_denoise_table_equals_independent_pandas(built, raw):
    table = report.table_denoise(raw)  # the loader's frame as is (prepared inside)
    assert table.equals(report.table_denoise(report.prepare(raw)))
    final = _final(raw, "denoise", "psnr_bsd68")
    expect = final.groupby(["model", "backward", "sigma"]).value.agg(["mean", "std", "count"])
    got = table.set_index(["model", "backward", "sigma"])[["mean", "std", "n"]]
    assert len(got) == len(expect) == 6
    for key, row in expect.iterrows():
        assert got.loc[key, "mean"] == pytest.approx(row["mean"], rel=1e-12)
        assert got.loc[key, "std"] == pytest.approx(row["std"], rel=1e-12)
        assert got.loc[key, "n"] == row["count"] == 3
    assert set(table.epoch_max) == {2}
    paper = table.set_index(["model", "backward", "sigma"])["paper"]
    assert paper[("fpi_nn", "jfb", 25.0)] == 29.74 and paper[("feedforward", "-", 15.0)] == 32.18


def test_report_has_every_table_with_our_numbers_and_the_papers(built, raw):
    text = built[2]
    for heading in ("## Provenance", "### Table 1", "### Table 2", "### Box constraint", "### Optical flow — aEPE",
                    "## Gradient study", "## Which method wins", "## Cells that are not ok", "## Figures"):
        assert heading in text, heading
    # our numbers, recomputed independently and formatted like the paper (2 decimals)
    d = _final(raw, "denoise", "psnr_bsd68")
    d = d[(d.model == "fpi_nn") & (d.backward == "jfb") & (d.sigma == 25)].value
    assert f"{d.mean():.2f} ± {d.std():.2f}" in text
    b = _final(raw, "bibtex", "test_f1")
    b = b[(b.model == "fpi_gd")].value
    assert f"{b.mean():.2f} ± {b.std():.2f}" in text
    # the paper's numbers, all of Table 1 and Table 2 (quoted baselines marked as such)
    for value in paper_numbers.DENOISE_PSNR.values():
        assert f"{value:.2f}" in text
    table2 = text.split("### Table 2")[1].split("### Box")[0]
    for row in paper_numbers.BIBTEX_F1:
        assert re.search(rf"quoted from the paper's Table 2 \| {re.escape(row.name)} .*\| {row.value:.2f} \|", table2)
    assert "preset quick; final epoch 2" in text  # the budget next to our numbers
    assert "Fig. 7" in text and "fpi_nn > fpi_gd > feedforward" in text
    assert "σ=20 ours" in text  # the paper's σ appears even where we have no run


def test_box_constraint_ranks_and_diverged_seed(built, raw):
    table = report.table_box_constraint(report.prepare(raw))
    final = _final(raw, "box_constraint", "test_mse")
    means = final.groupby("model").value.mean()
    counts = final.groupby("model").value.count()
    got = table.set_index("model")
    assert got.loc["fpi_gd", "n"] == counts["fpi_gd"] == 2  # the diverged seed's NaN is not averaged
    assert got.loc["fpi_gd", "mean"] == pytest.approx(means["fpi_gd"])
    # every model's seeds come from one distribution: no model is separated from another, so all
    # share rank 1 and the ordering (best mean first) joins them with "="
    for model in means.index:
        assert got.loc[model, "rank"] == 1
        assert got.loc[model, "paper_rank"] == paper_numbers.BOX_CONSTRAINT_ORDER.index(model) + 1
    order = " = ".join(means.sort_values().index)
    assert set(table["ordering"]) == {order}
    assert f"{order} — partly matches the paper's ordering" in built[2]
    non_ok = built[2].split("## Cells that are not ok")[1].split("## Figures")[0]
    assert "diverged" in non_ok and "residual grew 1e3 x" in non_ok
    assert "skipped" in non_ok and "jacobian_inverse needs 12.3 GiB > budget 2 GiB" in non_ok


def test_gradient_summary_and_winners_are_computed(built, raw):
    df = report.prepare(raw)
    summary = report.table_gradient_summary(df)
    grad = raw[(raw.kind == "gradient")]
    med = grad.groupby(["problem", "backward", "metric"]).value.median()
    for row in summary.itertuples():
        for metric in ("grad_rel_error", "backward_seconds", "saved_bytes"):
            expected = med.get((row.panel, row.backward, metric), np.nan)
            assert getattr(row, metric) == pytest.approx(expected, nan_ok=True)
    winners = report.table_winners(df).set_index(["task", "criterion"])
    # per problem, never pooled over problems; the value is the best method's mean over seeds
    at = grad[(grad.metric == "grad_rel_error") & (grad.problem == "contractive_tanh k=0.5 d=64")]
    means = at.groupby("backward").value.mean()
    win = winners.loc[("contractive_tanh", "most accurate gradient (contractive_tanh k=0.5 d=64)")]
    assert win.value == pytest.approx(means.min()) and win.n == 2
    saved = winners.loc[("contractive_tanh", "least memory, saved_bytes (contractive_tanh k=0.5 d=64)")]
    # three methods save exactly the same bytes on both seeds: a tie among them, unroll saves more
    assert saved.verdict == "tie" and saved.winner.startswith("tie: ") and "unroll" not in saved.winner
    box = _final(raw, "box_constraint", "test_mse").groupby("model").value.mean()
    best_box = winners.loc[("box_constraint", "best final test_mse (box_constraint)")]
    assert best_box.value == pytest.approx(box.min()) and best_box.verdict == "tie"
    bib = _final(raw, "bibtex", "test_f1").groupby(["model", "backward"]).value.mean()
    assert winners.loc[("bibtex", "best final test_f1 (bibtex)")].value == pytest.approx(bib.max())


def test_pareto_front_marks_exactly_the_non_dominated_points():
    x = [1.0, 2.0, 3.0, 2.5, 1.0, np.nan]
    y = [5.0, 3.0, 1.0, 4.0, 6.0, 0.0]
    assert report.pareto_front(x, y).tolist() == [True, True, True, False, False, False]
    assert report.pareto_front(x, y, higher_is_better=True).tolist() == [False, False, False, False, True, False]


def test_missing_kinds_give_notes_not_crashes(tmp_path):
    store = write_store(tmp_path / "train_only", kinds=("train",), tasks=("box_constraint",))
    text = report.build_report(store, out_dir=tmp_path / "out", formats=("png",)).read_text()
    assert "No rows of kind `gradient` in this store" in text
    # figures without rows get no section: the two gradient-curve figures, memory, gradient step time and Pareto
    assert "Skipped" not in text and "### Memory vs forward iterations" not in text
    assert "### Accuracy–cost Pareto plot: gradient study" not in text and "### Time per training step" in text
    assert (tmp_path / "out" / "figures" / "metric_vs_epoch.png").is_file()
    assert not (tmp_path / "out" / "figures" / "metric_vs_epoch.svg").exists()
    assert not (store / "figures").exists() and not (store / "report.md").exists()  # all went to out_dir
    assert "_No denoise training rows in this store" in text and "_No optical_flow training rows" in text


def test_store_with_only_the_required_columns(tmp_path):
    rows = [dict(task="box_constraint", model="fpi_nn", forward="anderson", backward="backward_fpi", seed=s, epoch=e,
                 metric="test_mse", value=1.0 / (e + s), status="ok") for s in (0, 1) for e in (1, 2)]
    results.write_cell(tmp_path, "only", rows)
    text = report.build_report(tmp_path, formats=("svg",)).read_text()
    # no `kind` column: the rows are counted but are no training rows, so every table and figure notes it
    assert "1 cell(s) have rows without a `kind`" in text
    assert "_No box_constraint training rows in this store._" in text
    assert "## Figures" not in text and "Skipped" not in text
    assert "| fpi_nn | 32.43 | 31.00 | 29.74 |" in text and "| 43.40 |" in text  # paper tables still shown


def test_figures_are_deterministic(built, raw, tmp_path):
    df = report.prepare(raw)
    first = report.figure_pareto_gradient(df, tmp_path / "a", ("svg",))
    second = report.figure_pareto_gradient(df, tmp_path / "b", ("svg",))
    assert [p.name for p in first] == ["pareto_gradient.svg"]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert first[0].read_bytes() == (built[0] / "figures" / "pareto_gradient.svg").read_bytes()


def test_empty_or_missing_store_and_bad_format_raise_clear_errors(tmp_path):
    with pytest.raises(results.ResultsError, match="no results store"):
        report.build_report(tmp_path / "nowhere")
    (tmp_path / "cells").mkdir()
    with pytest.raises(results.ResultsError, match="no finished cells"):
        report.build_report(tmp_path)
    with pytest.raises(OptionError, match="unknown figure format.*jpgg"):
        report.build_report(tmp_path, formats=("png", "jpgg"))


def test_extra_sections_are_appended(tmp_path):
    results.write_cell(tmp_path, "c", [_row("box_constraint", "fpi_nn", "anderson", "backward_fpi", 0, 1,
                                            "test_mse", 0.5, "train")], PROV)

    def benchmarks(df, results_dir):
        return ["## Benchmarks", "", f"{len(df)} rows from {results_dir.name}"]

    text = report.build_report(tmp_path, formats=("png",), extra_sections=[benchmarks]).read_text()
    assert text.rstrip().endswith(f"1 rows from {tmp_path.name}")


def test_cells_with_different_training_budgets_are_not_averaged_together():
    """Two denoise cells of one model and σ, one trained 10 epochs, one 20 on more data: two rows."""
    from fpibench.report._tables import table_denoise

    rows = []
    for cell, (value, options) in enumerate([
            (25.0, '{"epochs": 10, "task_options": {"sigma": 15}}'),
            (28.0, '{"epochs": 20, "task_options": {"sigma": 15, "train_limit": 0}}')]):
        for epoch in (1, 2):
            rows.append(_row("denoise", "fpi_nn", "anderson", "backward_fpi", 0, epoch, "psnr_bsd68", value - 2 + epoch,
                             "train", problem="denoise sigma=15", options=options, cell_id=f"c{cell}", unit="dB", **PROV))
    table = table_denoise(pd.DataFrame(rows))
    got = dict(zip(table["setting"], table["mean"]))
    assert got == {"epochs=10": 25.0, "train_limit=0, epochs=20": 28.0}
    assert set(table["n"]) == {1}
    winners = report.table_winners(pd.DataFrame(rows)).set_index("criterion")["value"].to_dict()
    assert winners == {"best final psnr_bsd68 (denoise sigma=15; preset quick, epochs=10)": 25.0,
                       "best final psnr_bsd68 (denoise sigma=15; preset quick, train_limit=0, epochs=20)": 28.0}


def test_learning_curves_use_a_log_axis_only_for_positive_values_spanning_decades():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fpibench.report._figures import log_scale_if_wide

    fig, axes = plt.subplots(1, 3)
    assert log_scale_if_wide(axes[0], [0.0025, 0.05, 0.52]) and axes[0].get_yscale() == "log"
    assert not log_scale_if_wide(axes[1], [22.8, 29.2]) and axes[1].get_yscale() == "linear"  # PSNR
    assert not log_scale_if_wide(axes[2], [0.0, 44.5]) and axes[2].get_yscale() == "linear"  # F1 of a NaN model
    plt.close(fig)


def test_figure_encoding_colours_by_gradient_method_marks_forward_and_dashes_model():
    """A gradient method has one colour wherever it appears (also across figures with other
    methods present), forward solvers differ by marker, FPI_GD by line style; baselines are grey."""
    from fpibench.report._figures import _method_encoding
    from fpibench.report._frame import with_labels

    combos = [("fpi_nn", "anderson", "gmres"), ("fpi_gd", "picard", "gmres"), ("fpi_nn", "picard", "jfb"),
              ("fpi_nn", "anderson", "backward_fpi"), ("feedforward", "-", "-"), ("flownets", "-", "-")]
    rows = with_labels(pd.DataFrame(combos, columns=["model", "forward", "backward"]))
    palette, markers, dashes = _method_encoding(rows)
    label = dict(zip(combos, rows["label"]))
    assert len(set(label.values())) == len(combos)
    nn_gmres, gd_gmres, nn_jfb = label[combos[0]], label[combos[1]], label[combos[2]]
    assert palette[nn_gmres] == palette[gd_gmres] != palette[nn_jfb]
    assert len({palette[label[c]] for c in combos[:4]}) == 3
    assert markers[nn_gmres] != markers[nn_jfb] and markers[gd_gmres] == markers[nn_jfb]  # anderson vs picard
    assert dashes[nn_gmres] == "" and dashes[gd_gmres] != ""  # FPI_NN solid, FPI_GD dashed
    greys = {palette[label[c]] for c in combos[4:]}
    assert len(greys) == 2 and all(isinstance(g, str) for g in greys)  # matplotlib grey levels
    assert {markers[label[c]] for c in combos[4:]} == {"X"}
    # the colour of a method does not depend on which other methods share the figure
    alone = with_labels(pd.DataFrame([combos[2]], columns=["model", "forward", "backward"]))
    assert _method_encoding(alone)[0][alone["label"].iloc[0]] == palette[nn_jfb]
