"""Markdown for the report: number formatting, tables, and one function per report section.

Every ``section_*`` function takes computed tables and returns a list of markdown lines, so
a new section (e.g. pytest-benchmark timings, a peer comparison) is one more such function
(see :func:`fpibench.report.register_section`).
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import pandas as pd

from . import paper_numbers as paper
from ._frame import budget_label

DASH = "—"
_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def _missing(x) -> bool:
    try:
        return x is None or not math.isfinite(float(x))
    except (TypeError, ValueError):
        return True


def fmt(x, unit: str = "") -> str:
    """A number as text by unit: dB and % with 2 decimals (the paper's style), bytes in
    KiB/MiB, seconds in µs/ms/s, counts as integers, anything else with 4 significant digits."""
    if _missing(x):
        return DASH
    x = float(x)
    if unit == "bytes":
        i = 0
        while abs(x) >= 1024 and i < len(_BYTE_UNITS) - 1:
            x, i = x / 1024, i + 1
        return f"{x:.0f} B" if i == 0 else f"{x:.3g} {_BYTE_UNITS[i]}"
    if unit == "s":
        for scale, name in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
            if abs(x) >= scale or name == "µs":
                return f"{x / scale:.3g} {name}"
    if unit in ("dB", "%"):
        return f"{x:.2f}"
    if unit in ("iterations", "count"):
        return f"{int(x)}" if x.is_integer() else f"{x:.1f}"
    if unit == "sci":
        return f"{x:.2e}"
    return f"{x:.4g}"


def fmt_mean_std(mean, std, unit: str = "") -> str:
    if _missing(mean):
        return DASH
    return fmt(mean, unit) if _missing(std) else f"{fmt(mean, unit)} ± {fmt(std, unit)}"


def _span(lo, hi) -> str:
    if _missing(lo):
        return DASH
    lo, hi = int(lo), int(hi)
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def markdown_table(frame: pd.DataFrame) -> list[str]:
    """A pipe table of the frame's cells as text (``|`` escaped)."""
    def cell(v):
        return str(v).replace("|", "\\|").replace("\n", " ")

    header = [cell(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return lines


def _bold(text: str, best) -> str:
    """``**text**`` on the row the statistics name best (``best`` column of a table)."""
    return f"**{text}**" if best is True or (not _missing(best) and bool(best)) else text


STATS_NOTE = ("Bold: better than every other row of its budget beyond the seed uncertainty (95 % t interval "
              "of the difference, paired by seed where both rows share at least two seeds, Welch's otherwise); "
              "no bold where the best ties or a row has one seed.")


def _method(backward: str, forward: str) -> tuple[str, str]:
    return (DASH, DASH) if backward in ("-", "") else (backward, forward)


def budget_line(table: pd.DataFrame) -> str:
    """Our budget: presets, final epochs and seeds behind a table's numbers."""
    ours = table[table["mean"].notna()] if "mean" in table else table
    if ours.empty:
        return ""
    presets = ", ".join(sorted(set(ours["preset"].replace("", "(unset)"))))
    return (f"Our numbers: preset {presets}; final epoch {_span(ours['epoch_min'].min(), ours['epoch_max'].max())}; "
            f"mean ± sample std over {_span(ours['n'].min(), ours['n'].max())} seed(s) per row.")


# --- paper tables --------------------------------------------------------------------
def section_denoise(table: pd.DataFrame) -> list[str]:
    lines = ["### Table 1 — denoising PSNR (dB, higher is better)", ""]
    sigmas = sorted(set(paper.DENOISE_SIGMAS) | {int(s) for s in table["sigma"].dropna() if float(s).is_integer()})
    if table.empty:
        lines += ["_No denoise training rows in this store; the paper's numbers:_", ""]
        frame = pd.DataFrame([{"Model": m, **{f"σ={s} paper": fmt(paper.DENOISE_PSNR.get((m, s)), "dB") for s in sigmas}}
                              for m in ("feedforward", "fpi_nn")])
        return lines + markdown_table(frame) + ["", f"Paper: {paper.DENOISE_SOURCE}.", ""]
    metrics = sorted(set(table["metric"]))
    records = []
    keys = ["model", "forward", "backward", "preset", "setting", "metric"]
    for key, sub in table.groupby(keys, sort=False):
        model, forward, backward, preset, setting, metric = key
        grad, fwd = _method(backward, forward)
        rec = {"Model": model, "Gradient": grad, "Forward": fwd, "Preset": preset or DASH, "Setting": setting or DASH}
        if len(metrics) > 1:
            rec["Metric"] = metric
        rec["Epochs"] = _span(sub["epoch_min"].min(), sub["epoch_max"].max())
        rec["Seeds"] = _span(sub["n"].min(), sub["n"].max())
        for s in sigmas:
            at = sub[sub["sigma"] == s]
            rec[f"σ={s} ours"] = (_bold(fmt_mean_std(at["mean"].iloc[0], at["std"].iloc[0], "dB"), at["best"].iloc[0])
                                  if len(at) else DASH)
            rec[f"σ={s} paper"] = fmt(paper.DENOISE_PSNR.get((model, s)), "dB")
        odd = sub[sub["sigma"].isna()]
        if len(odd):
            rec["σ=? ours"] = fmt_mean_std(odd["mean"].iloc[0], odd["std"].iloc[0], "dB")
        records.append(rec)
    lines += markdown_table(pd.DataFrame(records).fillna(DASH)) + [""]
    lines += [budget_line(table), STATS_NOTE]
    lines.append(f"Paper: {paper.DENOISE_SOURCE}; its FPI_NN was trained with backward FPI and its value is shown "
                 "next to every fpi_nn row.")
    if any(m != "psnr_chairs" for m in metrics):
        lines.append(f"Caution: the paper tests on {paper.DENOISE_TEST_SET}; our metric "
                     f"{', '.join(f'`{m}`' for m in metrics)} is measured on another test set, so compare the "
                     "feedforward-vs-FPI_NN gap rather than absolute PSNR.")
    return lines + [""]


def _signed(x, unit: str = "dB") -> str:
    return DASH if _missing(x) else ("+" if float(x) >= 0 else "") + fmt(x, unit)


def _p_value(p: float) -> str:
    """Two significant digits, trailing zero kept: 0.40, 0.0099."""
    return "%#.2g" % p


def section_seed_gap(table: pd.DataFrame) -> list[str]:
    """Table 1's claim seed by seed (:func:`fpibench.report.table_seed_gap`): per budget a row per σ
    with each group's mean ± sd, each gap ± its standard error with Welch's p, and the paper's gap."""
    if table.empty:
        return []
    lines = ["### Table 1 seed by seed — implicit denoiser minus feedforward (dB)", "",
             "Final-epoch PSNR per seed; a gap is the difference of the group means ± its standard error "
             "√(s₁²/n₁ + s₂²/n₂), with Welch's two-sided p and the verdict of its 95 % Welch t interval (a tie "
             "where it covers 0; no verdict with one seed a side).  Implicit models use the paper's Picard + backward "
             "FPI cell of a seed where stored, else its other cells' first method by name (column `methods` of "
             "`table_seed_gap`; on the paper-scale denoiser the same seed trained with GMRES ends within 0.02 dB).", ""]
    for (preset, setting), part in table.groupby(["preset", "setting"], sort=True):
        groups = list(dict.fromkeys(r for r in part["row"] if not r.startswith("gap ")))
        gaps = list(dict.fromkeys(r for r in part["row"] if r.startswith("gap ")))
        records = []
        for sigma, at in part.groupby("sigma", sort=True):
            rows = at.set_index("row")
            rec = {"σ": fmt(sigma, "count")}
            for g in groups:
                rec[g] = (f"{fmt_mean_std(rows.loc[g, 'mean'], rows.loc[g, 'sd'], 'dB')} (n={int(rows.loc[g, 'n'])})"
                          if g in rows.index else DASH)
            for g in gaps:
                if g not in rows.index:
                    rec[g] = DASH
                    continue
                r = rows.loc[g]
                se = "" if _missing(r["sd"]) else f" ± {fmt(r['sd'], 'dB')}"
                p = "" if _missing(r["p_welch"]) else f" (p={_p_value(r['p_welch'])})"
                rec[g] = f"{_signed(r['mean'])}{se}{p}: {_gap_verdict(r['verdict'])}"
            s = int(sigma) if float(sigma).is_integer() else None
            both = [paper.DENOISE_PSNR.get((m, s)) for m in ("fpi_nn", "feedforward")]
            rec["paper gap"] = _signed(both[0] - both[1]) if None not in both else DASH
            records.append(rec)
        lines += [f"#### {budget_label(preset, setting)}", ""] + markdown_table(pd.DataFrame(records)) + [""]
        for g in gaps:
            rows = part[part["row"] == g].sort_values("sigma")
            means = rows["mean"].to_numpy(dtype=float)
            path = " → ".join(_signed(m) for m in means)
            increases = len(means) > 1 and bool((means[1:] > means[:-1]).all())
            verdicts = rows["verdict"].value_counts()
            spread = ", ".join(f"{_gap_verdict(v)} at {verdicts[v]}" for v in verdicts.index)
            lines.append(f"- {g} over σ = {', '.join(fmt(s, 'count') for s in rows['sigma'])}: {path} dB; "
                         f"{spread} of {len(means)} σ (95 % Welch interval); means increase with σ: "
                         f"{'yes' if increases else 'no'}.")
        lines.append("")
    return lines


def _gap_verdict(verdict: str) -> str:
    return {"better": "implicit better", "worse": "implicit worse"}.get(verdict, verdict)


def section_bibtex(table: pd.DataFrame) -> list[str]:
    lines = ["### Table 2 — Bibtex example F1 (%, higher is better)", ""]
    ours = table[table["source"] == "fpibench"]
    records = []
    for row in table.itertuples(index=False):
        grad, fwd = _method(row.backward, row.forward) if row.source == "fpibench" else (DASH, DASH)
        mine = row.source == "fpibench"
        records.append({
            "Source": "fpibench (ours)" if mine else "quoted from the paper's Table 2",
            "Model": row.model, "Gradient": grad, "Forward": fwd,
            "Preset": (row.preset or DASH) if mine else DASH,
            "Setting": (row.setting or DASH) if mine else DASH,
            "Epochs": _span(row.epoch_min, row.epoch_max) if mine else DASH,
            "Seeds": _span(row.n, row.n) if mine else DASH,
            "F1 ours": _bold(fmt_mean_std(row.mean, row.std, "%"), row.best) if mine else DASH,
            "F1 paper": fmt(row.paper, "%"),
            "Reference": row.reference or DASH,
        })
    if ours.empty:
        lines += ["_No bibtex training rows in this store; the paper's Table 2 follows._", ""]
    lines += markdown_table(pd.DataFrame(records)) + [""]
    if not ours.empty:
        lines += [budget_line(ours), STATS_NOTE]
        metrics = sorted(set(ours["metric"]))
        lines.append(f"Our metric: {', '.join(f'`{m}`' for m in metrics)} (test split, threshold chosen on validation).")
    lines.append(f"Paper: {paper.BIBTEX_SOURCE}. Rows marked \"quoted\" are the paper's own numbers and the "
                 "baselines it quotes from other papers (not run here).")
    return lines + [""]


def section_ranked(table: pd.DataFrame, title: str, order: Sequence[str], source: str, task: str) -> list[str]:
    """Box constraint / optical flow: our mean ± std and model ranks next to the paper's ordering."""
    lines = [f"### {title}", ""]
    if table.empty:
        return lines + [f"_No {task} training rows in this store._",
                        f"Paper ordering (best first): {' < '.join(order)} — {source}.", ""]
    metric, unit = table["metric"].iloc[0], table["unit"].iloc[0]
    records = []
    for row in table.itertuples(index=False):
        grad, fwd = _method(row.backward, row.forward)
        records.append({"Model": row.model, "Gradient": grad, "Forward": fwd, "Preset": row.preset or DASH,
                        "Setting": row.setting or DASH,
                        "Epochs": _span(row.epoch_min, row.epoch_max), "Seeds": _span(row.n, row.n),
                        f"{metric} ours": _bold(fmt_mean_std(row.mean, row.std, unit), row.best),
                        "model rank ours": fmt(row.rank, "count"), "model rank paper": fmt(row.paper_rank, "count")})
    lines += markdown_table(pd.DataFrame(records)) + ["", budget_line(table), STATS_NOTE]
    lines.append(f"Paper: no numbers in the text; ordering (best first) {' > '.join(order)} — {source}.")
    for (preset, setting), part in table.groupby(["preset", "setting"], sort=True):
        ranks = part.dropna(subset=["rank"]).groupby("model")["rank"].min()
        lines.append(f"Our model ordering ({budget_label(preset, setting)}, each model at its best method; "
                     f"\">\" better beyond the seed uncertainty, \"=\" a tie, \"?\" one seed): "
                     f"{part['ordering'].iloc[0]} — {agreement(ranks, order)} the paper's ordering of these models.")
    return lines + [""]


def agreement(ranks: pd.Series, order: Sequence[str]) -> str:
    """"matches", "partly matches" (no pair reversed, some tied or undecided) or "contradicts"
    (a pair the paper orders is reversed beyond the seed uncertainty): our statistical ranks
    (model -> rank, tied models share one) against the paper's ordering, best first."""
    shared = [m for m in order if m in ranks.index]
    pairs = [(ranks[a], ranks[b]) for i, a in enumerate(shared) for b in shared[i + 1:]]
    if any(ra > rb for ra, rb in pairs):
        return "contradicts"
    return "matches" if all(ra < rb for ra, rb in pairs) else "partly matches"


# --- gradient study, winners, non-ok cells ---------------------------------------------
_GRADIENT_HEADERS = {
    "grad_rel_error": ("grad rel. error", "sci"), "grad_cosine": ("grad cosine", "cos"),
    "grad_rel_error_unrolled": ("vs unrolled", "sci"),
    "backward_iterations_mean": ("bwd iterations", "iterations"), "backward_seconds": ("bwd time", "s"),
    "saved_bytes": ("saved", "bytes"), "peak_rss_bytes": ("peak RSS", "bytes"), "peak_cuda_bytes": ("peak CUDA", "bytes"),
}


def section_gradient(summary: pd.DataFrame) -> list[str]:
    lines = ["## Gradient study (medians over seeds and repeats)", ""]
    if summary.empty:
        return lines + ["_No rows of kind `gradient` in this store._", ""]
    for task, sub in summary.groupby("task", sort=False):
        records = []
        for row in sub.itertuples(index=False):
            rec = {"Problem": row.panel, "Model": row.model, "Gradient": _method(row.backward, row.forward)[0],
                   "Forward": _method(row.backward, row.forward)[1], "Epoch": fmt(row.epoch, "count"),
                   "Seeds": fmt(row.seeds, "count")}
            for col, (head, unit) in _GRADIENT_HEADERS.items():
                value = getattr(row, col)
                rec[head] = (DASH if _missing(value) else f"{float(value):.6f}") if unit == "cos" else fmt(value, unit)
            rec["not ok"] = row.not_ok or DASH
            rec["unconverged ref."] = fmt(row.unconverged_reference, "count") if row.unconverged_reference else DASH
            records.append(rec)
        frame = pd.DataFrame(records)
        empty = [head for col, (head, _) in _GRADIENT_HEADERS.items() if sub[col].isna().all()]
        lines += [f"### {task}", ""] + markdown_table(frame.drop(columns=empty)) + [""]
    lines.append("Epoch 0: at initialisation; the last epoch: after training. grad rel. error = ‖ĝ − g‖ / ‖g‖ "
                 "against a float64 tightly converged reference. vs unrolled (only where a forward solve "
                 "stopped at its cap): the same error against the float64 gradient of the computation as run "
                 "(the layer's forward, tolerance and cap, differentiated by unrolling). unconverged ref.: rows whose "
                 "float64 reference solve did not converge; their errors are left out of the medians, the "
                 "winners and the figures (— where every row's reference failed).")
    return lines + [""]


def section_winners(winners: pd.DataFrame) -> list[str]:
    lines = ["## Which method wins", ""]
    if winners.empty:
        return lines + ["_Nothing to compare: no training, gradient or memory rows with values._", ""]
    for task, sub in winners.groupby("task", sort=False):
        frame = pd.DataFrame({"Criterion": sub["criterion"], "Verdict": sub["winner"],
                              "Best mean": [fmt(v, "sci" if m == "grad_rel_error" else u)
                                            for v, m, u in zip(sub["value"], sub["metric"], sub["unit"])],
                              "Methods": sub["candidates"], "Seeds (fewest)": sub["n"]})
        lines += [f"### {task}", ""] + markdown_table(frame) + [""]
    lines.append("A method wins only when it is better than every other method beyond the uncertainty across "
                 "seeds (95 % t interval of the difference, paired by seed where both share at least two seeds, "
                 "Welch's otherwise; per seed: the final-epoch value, or the median over repeats); \"tie\" lists "
                 "the methods the best is not separated from; one seed gives no verdict.  Best mean: the "
                 "best-scoring method's mean over seeds.  Gradient errors against a reference solve that did not "
                 "converge are left out.")
    return lines + [""]


def _delta(x, unit: str) -> str:
    """A signed difference; one below the 2-decimal resolution of dB/% keeps its magnitude (+2e-06)."""
    if unit in ("dB", "%") and not _missing(x) and 0 < abs(float(x)) < 0.005:
        return f"{float(x):+.0e}"
    return _signed(x, unit)


def section_paired(table: pd.DataFrame) -> list[str]:
    """Gradient methods on the same seeds (:func:`fpibench.report.table_paired_methods`)."""
    lines = ["## Gradient methods on the same seeds", ""]
    if table.empty:
        return lines + ["_No problem in this store has two gradient methods trained on a common seed._", ""]
    lines += ["Each method's cells paired with the reference method's cell of the same seed (same "
              "initialisation and data order): Δ = method − reference in the final headline metric, mean "
              "[min, max] over the shared seeds, the seeds on which the method is better / worse, the paired "
              "t-test p, the 95 % paired t interval of Δ and its verdict (a tie where it covers 0, no verdict "
              "at one seed), the median ratio of training time (`elapsed_seconds`; cells ran under "
              "different machine load, so read ratios far from 1 only) and the unconverged solves per cell summed "
              "over epochs (method / reference).", ""]
    for task, sub in table.groupby("task", sort=True):
        metric, unit, higher = sub["metric"].iloc[0], sub["unit"].iloc[0], bool(sub["higher_is_better"].iloc[0])
        records = []
        for row in sub.itertuples(index=False):
            spread = "" if row.seeds < 2 else f" [{_delta(row.diff_min, unit)}, {_delta(row.diff_max, unit)}]"
            records.append({
                "Problem": row.panel, "Budget": budget_label(row.preset, row.setting), "Model": row.model,
                "Method": row.method, "Reference": row.reference, "Seeds": row.seed_list,
                f"Δ {metric}": _delta(row.diff_mean, unit) + spread,
                "Better / worse": f"{row.better_seeds} / {row.worse_seeds}",
                "p": DASH if _missing(row.p_paired) else _p_value(row.p_paired),
                "95 % CI": DASH if _missing(row.ci_low) else f"[{_delta(row.ci_low, unit)}, {_delta(row.ci_high, unit)}]",
                "Verdict": row.verdict,
                "Time ×": DASH if _missing(row.time_ratio) else f"{row.time_ratio:.2f}",
                "Unconverged": f"{fmt(row.unconverged_method, 'count')} / {fmt(row.unconverged_reference, 'count')}",
            })
        direction = "higher" if higher else "lower"
        lines += [f"### {task} — {metric} ({unit or 'no unit'}, {direction} is better)", ""]
        lines += markdown_table(pd.DataFrame(records)) + [""]
    return lines


def section_non_ok(table: pd.DataFrame) -> list[str]:
    lines = ["## Cells that are not ok", ""]
    if table.empty:
        return lines + ["Every row has status `ok`.", ""]
    frame = pd.DataFrame({
        "Cell": table["cell_id"], "Task": table["task"], "Model": table["model"],
        "Gradient": [_method(b, f)[0] for b, f in zip(table["backward"], table["forward"])],
        "Forward": [_method(b, f)[1] for b, f in zip(table["backward"], table["forward"])],
        "Seed": [fmt(s, "count") for s in table["seed"]], "Kind": table["kind"].replace("", DASH),
        "Status": table["status"], "Reason": table["reason"].replace("", DASH), "Rows": table["rows"],
    })
    return lines + markdown_table(frame) + [""]


def _counts(mapping: dict) -> str:
    return ", ".join(f"{k} ({v})" for k, v in mapping.items()) or DASH


def _code_lines(prov: dict) -> list[str]:
    """Which code made each task's tables; a warning when some cells come from other code."""
    if "code_by_task" not in prov:
        return []
    lines = [f"- code behind each task's tables (cells), this report written by {prov['report_code']}:"]
    lines += [f"  - {task}: {_counts(codes)}" for task, codes in prov["code_by_task"].items()]
    if prov["other_code_cells"]:
        lines.append(f"- **{prov['other_code_cells']} cell(s) were made by other code than this report's** "
                     "(kept with --reuse-stale, or a store made before this code); their numbers are that code's")
    return lines


def section_provenance(prov: dict, results_dir: str) -> list[str]:
    lines = ["## Provenance", "",
             f"- store: `{results_dir}` — {prov['cells']} cells, {prov['rows']} rows",
             f"- cells by kind: {_counts(prov['cells_by_kind'])}",
             f"- cells by status: {_counts(prov['cells_by_status'])}; rows by status: {_counts(prov['rows_by_status'])}",
             f"- tasks (cells): {_counts(prov['tasks'])}",
             f"- presets (cells): {_counts(prov['presets'])}",
             f"- git commits (cells): {_counts(prov['git_commits'])}",
             *_code_lines(prov),
             f"- devices (cells): {_counts(prov['devices'])}",
             f"- dtypes (cells): {_counts(prov['dtypes'])}",
             f"- torch: {_counts(prov['torch_versions'])}; python: {_counts(prov['python_versions'])}; "
             f"fpibench: {_counts(prov['fpibench_versions'])}",
             f"- CPU: {_counts(prov['cpu_names'])}; GPU: {_counts(prov['gpu_names'])}",
             f"- run between {prov['first_start'] or DASH} and {prov['last_end'] or DASH}"]
    if prov.get("resumed_cells"):
        lines.append(f"- {prov['resumed_cells']} cell(s) resumed from an epoch checkpoint after an interruption "
                     "(their `resumed_after_epoch` row names the epoch and the code that wrote it)")
    if "(none)" in prov["cells_by_kind"]:
        lines.append(f"- {prov['cells_by_kind']['(none)']} cell(s) have rows without a `kind`: they are counted "
                     "here but appear in no table or figure")
    return lines + [""]


def section_pareto(points: pd.DataFrame, what: str) -> list[str]:
    """The Pareto-front members per panel, as text next to the figure."""
    if points.empty:
        return []
    lines = [f"Pareto front ({what}):", ""]
    for panel, sub in points.groupby("panel", sort=False):
        front = sub[sub["on_front"]].sort_values("x")
        lines.append(f"- {panel}: " + ", ".join(front["label"]) + f" (of {len(sub)} methods)")
    return lines + [""]


def section_exports(paths, out_dir) -> list[str]:
    """Links to the CSV and LaTeX file of every table."""
    from pathlib import Path

    if not paths:
        return []
    by_name: dict[str, list[str]] = {}
    for path in paths:
        rel = Path(path).relative_to(out_dir).as_posix()
        by_name.setdefault(Path(path).stem, []).append(f"[{Path(path).suffix[1:]}]({rel})")
    return ["## Tables as CSV and LaTeX", "",
            "Every table above as CSV (all columns, full precision) and as a LaTeX booktabs table "
            "(`\\usepackage{booktabs}`; mean ± sd, the statistically best row in bold): "
            + "; ".join(f"{name} ({', '.join(links)})" for name, links in by_name.items()) + ".", ""]


def section_figures(entries: Iterable[tuple], out_dir) -> list[str]:
    """``entries``: (title, paths, extra lines) per figure; embeds the first PNG/SVG and links the
    rest; a figure this store has no rows for gets no section."""
    from pathlib import Path

    entries = [e for e in entries if e[1]]
    lines = ["## Figures", ""] if entries else []
    for title, paths, extra in entries:
        if not paths:  # nothing to draw from this store: no section
            continue
        lines += [f"### {title}", ""]
        rel = [Path(p).relative_to(out_dir).as_posix() for p in paths]
        shown = next((r for r in rel if r.endswith(".png")), rel[0])
        lines += [f"![{title}]({shown})", "", "Files: " + ", ".join(f"[{Path(r).suffix[1:]}]({r})" for r in rel), ""]
        lines += list(extra)
    return lines
