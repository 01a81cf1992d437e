"""fpibench.report.seed_points and the "final metric seed by seed" figure.

Hand-made cells with known final values: every cell appears once with its last epoch's
value, budgets and FPI models get their own panels (baselines repeated in each), a
feedforward baseline trained with a smaller initialisation is labelled apart, and the
paper's number is attached only where it was measured on our test set (Bibtex)."""
import pytest

pd = pytest.importorskip("pandas")

from fpibench.report import figure_final_metric_by_seed, seed_points  # noqa: E402
from fpibench.report.paper_numbers import BIBTEX_F1  # noqa: E402


def _cell(task, model, forward, backward, seed, final, metric, options='{"epochs": null}', preset="paper", problem=""):
    rows = []
    for epoch, value in ((1, final - 5.0), (2, final)):
        rows.append(dict(task=task, problem=problem, model=model, forward=forward, backward=backward, seed=seed,
                         epoch=epoch, metric=metric, value=float(value), kind="train", preset=preset, status="ok",
                         options=options, cell_id=f"{task}-{problem}-{model}-{forward}-{backward}-s{seed}-{options}"))
    return rows


def _store():
    cells = []
    for seed, (ff, nn, gd) in enumerate([(42.0, 43.0, 40.0), (42.5, 44.0, 41.0), (41.5, 42.0, 39.0)]):
        cells += [_cell("bibtex", "feedforward", "", "", seed, ff, "test_f1"),
                  _cell("bibtex", "fpi_nn", "picard", "backward_fpi", seed, nn, "test_f1"),
                  _cell("bibtex", "fpi_gd", "picard", "jfb", seed, gd, "test_f1")]
    scaled = '{"epochs": null, "task_options": {"feedforward_init_scale": 0.1, "sigma": 25}}'
    plain = '{"epochs": null, "task_options": {"sigma": 25}}'
    longer = '{"epochs": 40, "task_options": {"sigma": 25}}'
    for seed in (0, 1):
        cells += [_cell("denoise", "feedforward", "", "", seed, 27.0 + seed, "psnr_bsd68", plain, problem="denoise sigma=25"),
                  _cell("denoise", "feedforward", "", "", seed, 26.0 + seed, "psnr_bsd68", scaled,
                        problem="denoise feedforward_init_scale=0.1 sigma=25"),
                  _cell("denoise", "fpi_nn", "anderson", "gmres", seed, 26.5 + seed, "psnr_bsd68", plain,
                        problem="denoise sigma=25")]
    cells.append(_cell("denoise", "fpi_nn", "anderson", "gmres", 0, 30.0, "psnr_bsd68", longer, problem="denoise sigma=25"))
    return pd.DataFrame([row for cell in cells for row in cell])


def test_every_cell_once_with_its_final_value_in_panels_by_model_and_budget():
    points = seed_points(_store())
    assert len(points) == 9 + 3 + 6 + 1  # bibtex baselines repeated in both FPI models' panels, + 7 denoise cells
    bib_nn = points[points["panel"] == "bibtex fpi_nn; preset paper"]
    assert sorted(bib_nn["label"].unique()) == ["backward_fpi", "feedforward"]
    assert bib_nn.loc[bib_nn["label"] == "backward_fpi", "value"].tolist() == [43.0, 44.0, 42.0]
    bib_gd = points[points["panel"] == "bibtex fpi_gd; preset paper"]
    assert bib_gd.loc[bib_gd["label"] == "jfb", "value"].tolist() == [40.0, 41.0, 39.0]
    assert bib_gd.loc[bib_gd["label"] == "feedforward", "value"].tolist() == [42.0, 42.5, 41.5]
    # the paper's Table 2 F1 for the row's model, nothing for the feedforward net
    paper = {row.model: row.value for row in BIBTEX_F1 if row.model}
    assert set(bib_nn.loc[bib_nn["model"] == "fpi_nn", "paper"]) == {paper["fpi_nn"]}
    assert set(bib_gd.loc[bib_gd["model"] == "fpi_gd", "paper"]) == {paper["fpi_gd"]}
    assert bib_nn.loc[bib_nn["model"] == "feedforward", "paper"].isna().all()

    den = points[points["panel"] == "denoise sigma=25; preset paper"]
    assert sorted(den["label"].unique()) == ["feedforward", "feedforward init×0.1", "gmres"]
    assert den.loc[den["label"] == "feedforward init×0.1", "value"].tolist() == [26.0, 27.0]
    assert den["paper"].isna().all()  # Table 1 is on Flying Chairs crops, not on our BSD68
    longer = points[points["panel"] == "denoise sigma=25; preset paper, epochs=40"]
    assert longer["value"].tolist() == [30.0]  # another budget: its own panel, never mixed in
    assert points["higher_is_better"].all()


def test_figure_is_written_and_skipped_without_training_rows(tmp_path):
    paths = figure_final_metric_by_seed(_store(), tmp_path, formats=("png", "svg"))
    assert [p.name for p in paths] == ["final_metric_by_seed.png", "final_metric_by_seed.svg"]
    assert all(p.stat().st_size > 1000 for p in paths)
    svg = paths[1].read_text()
    assert "bibtex fpi_gd; preset paper" in svg and "feedforward init×0.1" in svg and "paper: fpi_nn" in svg
    gradient_only = _store().assign(kind="gradient")
    assert figure_final_metric_by_seed(gradient_only, tmp_path / "none") == []
