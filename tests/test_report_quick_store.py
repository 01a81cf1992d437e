"""The report from the committed quick sweep (real runs, real data): every table and figure."""
import shutil
from pathlib import Path

import pytest

from fpibench import results
from fpibench.report import build_report

STORE = Path(__file__).resolve().parents[1] / "results" / "quick"
FIGURES = ["grad_error_vs_backward_iterations", "grad_error_vs_backward_time", "memory_vs_forward_iterations",
           "step_time_train", "metric_vs_epoch", "metric_vs_time", "pareto_gradient", "pareto_train"]


@pytest.mark.skipif(not (STORE / "cells").is_dir(), reason="results/quick not committed in this checkout")
def test_report_regenerates_every_table_and_figure_from_the_quick_store(tmp_path):
    shutil.copytree(STORE / "cells", tmp_path / "cells")
    df = results.load(tmp_path)
    assert set(df["kind"]) == {"train", "gradient", "gradient_curve", "memory_curve"}
    report = build_report(tmp_path).read_text()
    for heading in ("Table 1", "Table 2", "Box constraint", "Gradient study", "Which method wins"):
        assert heading in report, heading
    for name in FIGURES:
        for fmt in ("png", "svg"):
            path = tmp_path / "figures" / f"{name}.{fmt}"
            assert path.is_file() and path.stat().st_size > 1000, path
        assert f"figures/{name}.png" in report
    # the stored numbers are what the report prints: Bibtex F1 of fpi_nn + backward_fpi at the last epoch
    f1 = df[(df["task"] == "bibtex") & (df["model"] == "fpi_nn") & (df["backward"] == "backward_fpi")
            & (df["metric"] == "test_f1") & (df["kind"] == "train")]
    assert f"{f1.sort_values('epoch')['value'].iloc[-1]:.2f}" in report
    # the exact methods' gradients on the probe are exact, truncated ones are not (real measurements)
    grad = df[(df["task"] == "contractive_tanh") & (df["metric"] == "grad_rel_error") & (df["kind"] == "gradient")]
    by_method = grad.groupby("backward")["value"].max()
    assert by_method[["backward_fpi", "jacobian_inverse", "gmres", "unroll"]].max() < 1e-8
    assert by_method["jfb"] > 1e-2
