"""The numbers of the results page, computed from the committed stores.

    python -m fpibench.report.summary results            # rewrites the generated part of results/README.md

Everything between the ``<!-- generated -->`` markers of ``results/README.md`` is written
here from the stores (``paper``, ``probes``), with the report's tables and its statistics
rule (:mod:`._verdict`), so the page cannot disagree with the stores.  Each part is a
function returning a DataFrame; :func:`render` turns them into markdown.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from . import paper_numbers as paper
from ._frame import NO_METHOD, final_train_rows, load_store
from ._markdown import agreement, fmt, fmt_mean_std, markdown_table
from ._paired import table_paired_methods
from ._seed_gap import table_seed_gap
from ._tables import seed_series, table_bibtex, table_box_constraint, table_gradient_summary, table_optical_flow
from ._verdict import BETTER, WORSE, compare

BEGIN, END = "<!-- generated: begin -->", "<!-- generated: end -->"
PROBE = "contractive_tanh k=0.9 d=64"
SLOW_PROBE = "quadratic_energy k=0.9 d=64"
_WORD = {"matches": "yes", "contradicts": "no", "partly matches": "partly"}


def _claim_verdict(comparisons) -> str:
    """"yes" where every comparison goes the paper's way beyond the seed uncertainty, "no"
    where not even a mean goes its way, else "partly".  ``comparisons``: (verdict, the mean
    difference goes the paper's way) pairs."""
    comparisons = list(comparisons)
    if comparisons and all(v == BETTER for v, _ in comparisons):
        return "yes"
    return "partly" if any(v == BETTER or ahead for v, ahead in comparisons) else "no"


_THAN = {BETTER: "better than", WORSE: "worse than", "tie": "tie with", "no verdict": "no verdict against"}


def _ordering_row(table: pd.DataFrame, claim: str, order, unit: str) -> dict:
    """Box / flow: our ordering (the budget with the most seeds) against the paper's."""
    budget = table.groupby(["preset", "setting"])["n"].min().idxmax()
    part = table[(table["preset"] == budget[0]) & (table["setting"] == budget[1])]
    ranks = part.groupby("model")["rank"].min()
    best = part.sort_values("mean").drop_duplicates("model")
    means = ", ".join(f"{r.model} {fmt_mean_std(r.mean, r.std, unit or 'sci')}" for r in best.itertuples())
    word = agreement(ranks, order)
    verdict = "undecided" if ranks.nunique() == 1 else _WORD[word]
    return {"paper's claim": claim, "ours": f"{part['ordering'].iloc[0]} ({means}; n = {int(part['n'].min())}, "
            f"each model at its best method)", "reproduced": verdict}


def _bibtex_row(df: pd.DataFrame) -> dict:
    table = table_bibtex(df)
    ours = table[(table["source"] == "fpibench") & (table["preset"] == "paper") & (table["setting"] == "")]
    rows = final_train_rows(df, "bibtex", ours["metric"].iloc[0])
    series = seed_series(rows[rows["preset"] == "paper"], ["model", "forward", "backward"])
    base = series[("feedforward", "-", "-")]
    parts, verdicts = [], []
    for model in ("fpi_nn", "fpi_gd"):
        key = (model, *paper.PAPER_METHOD)
        c = compare(series[key], base, higher_is_better=True, paired=False)
        verdicts.append((c.verdict, c.diff > 0))
        row = ours[(ours["model"] == model) & (ours["forward"] == key[1]) & (ours["backward"] == key[2])].iloc[0]
        parts.append(f"{model} {fmt_mean_std(row['mean'], row['std'], '%')} ({_THAN[c.verdict]} feedforward)")
    ff = ours[ours["model"] == "feedforward"].iloc[0]
    paper_f1 = {r.model: r.value for r in paper.BIBTEX_F1 if r.model}
    return {"paper's claim": f"Table 2: FPI_NN {paper_f1['fpi_nn']}, FPI_GD {paper_f1['fpi_gd']} F1 with the backward "
                             "FPI, above a feedforward net (39.6)",
            "ours": "; ".join(parts) + f"; feedforward {fmt_mean_std(ff['mean'], ff['std'], '%')} "
                    f"(final epoch 30, n = {int(ff['n'])}, Welch 95 % interval)",
            "reproduced": _claim_verdict(verdicts)}


def _denoise_row(df: pd.DataFrame) -> dict:
    gaps = table_seed_gap(df)
    gaps = gaps[(gaps["preset"] == "paper") & gaps["row"].str.startswith("gap ")]
    parts, verdicts = [], []
    for row_name, sub in gaps.groupby("row", sort=True):
        sub = sub.sort_values("sigma")
        text = " / ".join(f"{m:+.2f}" for m in sub["mean"])
        counts = sub["verdict"].value_counts()
        parts.append(f"{row_name.removeprefix('gap ')}: {text} dB at σ = "
                     f"{'/'.join(fmt(s, 'count') for s in sub['sigma'])} "
                     f"({', '.join(f'{v} at {n}' for v, n in counts.items())}; n = {int(sub['n'].min())})")
        verdicts += list(zip(sub["verdict"], sub["mean"] > 0))
    return {"paper's claim": "Table 1: FPI_NN above the feedforward denoiser at every σ, gap growing with σ "
                             "(+0.25 / +0.56 / +0.65 dB)",
            "ours": "; ".join(parts) + " (180×180, 20 epochs, final epoch; Welch 95 % interval)",
            "reproduced": _claim_verdict(verdicts)}


def table_claims(paper_store: pd.DataFrame) -> pd.DataFrame:
    """The paper's claims beside ours, one row per claim, with "yes" / "partly" / "no" /
    "undecided" from the statistics rule."""
    rows = [_ordering_row(table_box_constraint(paper_store), "Fig. 7, box constraint: FPI_NN < FPI_GD < feedforward "
                          "in test MSE", paper.BOX_CONSTRAINT_ORDER, ""),
            _bibtex_row(paper_store), _denoise_row(paper_store)]
    flow = table_optical_flow(paper_store)
    if not flow.empty:
        rows.append(_ordering_row(flow, "Fig. 1, optical flow: the FPI layer lowers FlowNetS's aEPE",
                                  paper.OPTICAL_FLOW_ORDER, "px"))
    return pd.DataFrame(rows)


def table_probe_methods(probes: pd.DataFrame) -> pd.DataFrame:
    """Per gradient method on the contractive probe (k = 0.9): error, backward iterations,
    time and memory; plus backward iterations on the slowly contracting FPI_GD probe."""
    summary = table_gradient_summary(probes)
    at = summary[summary["panel"] == PROBE].set_index("backward")
    slow = summary[summary["panel"] == SLOW_PROBE].set_index("backward")["backward_iterations_mean"]
    out = pd.DataFrame({
        "method": at.index,
        "gradient rel. error": [fmt(v, "sci") for v in at["grad_rel_error"]],
        "backward iterations": [fmt(v, "iterations") for v in at["backward_iterations_mean"]],
        "backward time": [fmt(v, "s") for v in at["backward_seconds"]],
        "saved for backward": [fmt(v, "bytes") for v in at["saved_bytes"]],
        "iterations, FPI_GD probe": [fmt(slow.get(m), "iterations") for m in at.index],
    })
    return out.sort_values("gradient rel. error", key=lambda s: at["grad_rel_error"].to_numpy()).reset_index(drop=True)


def table_methods_vs_paper(paper_store: pd.DataFrame) -> pd.DataFrame:
    """Each FPI_NN gradient method against the backward FPI (the paper's, on the Picard forward
    where it was run) on the same seeds, paper preset: Δ of the final headline metric and its verdict, one column per problem."""
    paired = table_paired_methods(paper_store)
    paired = paired[(paired["preset"] == "paper") & (paired["model"] == "fpi_nn")]
    cells = {}
    for row in paired.itertuples():
        column = f"{row.panel} ({row.metric}; vs {row.reference})"
        cells.setdefault(row.method, {})[column] = f"{row.diff_mean:+.3g} ({row.verdict}, n = {row.seeds})"
    return pd.DataFrame.from_dict(cells, orient="index").fillna("—").rename_axis("method").reset_index()


def render(results_root) -> str:
    root = Path(results_root)
    paper_store, probes = load_store(root / "paper"), load_store(root / "probes")
    lines = ["### The paper's claims beside ours", "",
             *markdown_table(table_claims(paper_store)), "",
             "\"yes\": every comparison goes the paper's way beyond the uncertainty across seeds (95 % t interval of "
             "the difference); \"partly\": some do, or the means do but within the uncertainty; \"no\": none does "
             "and one goes against it; \"undecided\": every model ties.", "",
             "### Gradient methods on a contractive probe (k = 0.9, d = 64, float64, exact reference)", "",
             *markdown_table(table_probe_methods(probes)), "",
             "Medians over repeats on a shared 2-core CPU (`results/probes`). Last column: backward iterations on the "
             "FPI_GD quadratic-energy probe (k = 0.9), where the backward fixed point contracts slowly.", "",
             "### FPI_NN trained with each gradient method, against the paper's backward FPI on the same seeds",
             "", *markdown_table(table_methods_vs_paper(paper_store)), "",
             "Δ: mean over shared seeds of method − reference in the final-epoch metric (test MSE: lower is better; "
             "F1, PSNR: higher); verdict from the paired 95 % t interval (paper preset, `results/paper`).", ""]
    return "\n".join(lines)


def write(results_root, page=None) -> Path:
    """Replace the text between the markers of ``page`` (default ``<results_root>/README.md``)."""
    page = Path(page) if page else Path(results_root) / "README.md"
    text = page.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise ValueError(f"{page}: no '{BEGIN}' … '{END}' markers to write between")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    page.write_text(f"{head}{BEGIN}\n{render(results_root)}\n{END}{tail}", encoding="utf-8")
    return page


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fpibench.report.summary", description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="results", help="folder holding the paper and probes stores")
    parser.add_argument("--page", default=None, help="page to write into (default: RESULTS/README.md)")
    args = parser.parse_args(argv)
    print(f"wrote {write(args.results, args.page)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
