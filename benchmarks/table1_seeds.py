"""Table 1 of the paper (denoising PSNR) from a results store, with every seed and a test.

    python benchmarks/table1_seeds.py [--store results/paper] [--epochs 20]
        [--out results/paper/table1_seeds.csv]

The paper's claim: FPI_NN beats the feedforward denoiser at every σ and the gap grows with σ
(Jeon, Lee & Choi, Table 1).  For each σ of the ``denoise`` task at the ``paper`` preset this
takes the BSD68 PSNR at the last epoch of every cell trained for ``--epochs`` epochs and
compares three groups seed by seed:

- ``fpi_nn``: one cell per seed, the paper's Picard forward + backward FPI where that seed has
  one, otherwise the cell with another gradient method (all exact methods train alike here; the
  ``method`` column names the cell used);
- ``feedforward_small``: the feedforward net initialised 10× smaller like the FPI model
  (option ``feedforward_init_scale=0.1``);
- ``feedforward_default``: the feedforward net with PyTorch's default initialisation.

Gap = mean(FPI_NN) − mean(baseline), its standard error √(s₁²/n₁ + s₂²/n₂) and Welch's
two-sided t-test (unequal variances), so a reader sees whether a gap exceeds the seed spread.
"""
from __future__ import annotations

import argparse
import json

PAPER_METHOD = ("picard", "backward_fpi")
GROUPS = ("fpi_nn", "feedforward_small", "feedforward_default")


class Table1Error(ValueError):
    """The store lacks what Table 1 needs."""


def final_psnr(frame, epochs=20):
    """One row per denoise/paper cell trained for ``epochs`` epochs: its group, seed, σ, method
    and the BSD68 PSNR at the last epoch."""
    import pandas as pd

    rows = []
    train = frame[(frame.task == "denoise") & (frame.preset == "paper") & (frame.kind == "train")
                  & (frame.metric == "psnr_bsd68")]
    for cell_id, cell in train.groupby("cell_id"):
        if int(cell.epoch.max()) != epochs:
            continue
        task_options = dict(json.loads(cell.options.iloc[0]).get("task_options") or {})
        task_options.pop("sigma", None)
        scale = task_options.pop("feedforward_init_scale", 1.0)
        if task_options:
            continue  # another variant of the task (not one of Table 1's models)
        model = cell.model.iloc[0]
        if model == "fpi_nn":
            group = "fpi_nn"
        elif model == "feedforward" and scale in (1.0, 0.1):
            group = "feedforward_default" if scale == 1.0 else "feedforward_small"
        else:
            continue
        rows.append(dict(sigma=float(cell.sigma.iloc[0]), group=group, seed=int(cell.seed.iloc[0]),
                         method=f"{cell.forward.iloc[0]}+{cell.backward.iloc[0]}" if model == "fpi_nn" else "",
                         cell_id=cell_id,
                         psnr=float(cell.loc[cell.epoch.idxmax(), "value"])))
    return pd.DataFrame(rows, columns=["sigma", "group", "seed", "method", "cell_id", "psnr"])


def one_per_seed(cells):
    """FPI_NN: the paper's method for a seed where stored, else the first other method."""
    def rank(method):
        return (method != "+".join(PAPER_METHOD), method)

    cells = cells.assign(_rank=cells.method.map(rank)).sort_values(["sigma", "group", "seed", "_rank"])
    return cells.drop_duplicates(["sigma", "group", "seed"]).drop(columns="_rank")


def table1(frame, epochs=20):
    """Per σ: each group's seeds, mean, sd, and FPI_NN's gap to both baselines with its standard
    error and Welch's p-value.  Raises Table1Error if a σ lacks a group or a group has < 2 seeds."""
    import numpy as np
    import pandas as pd
    from scipy import stats

    cells = one_per_seed(final_psnr(frame, epochs))
    if cells.empty:
        raise Table1Error(f"no denoise cells at the paper preset with {epochs} epochs in this store")
    out = []
    for sigma, at_sigma in cells.groupby("sigma"):
        values = {}
        for group in GROUPS:
            chosen = at_sigma[at_sigma.group == group].sort_values("seed")
            if len(chosen) < 2:
                raise Table1Error(f"sigma={sigma:g}: group {group!r} has {len(chosen)} seed(s) at "
                                  f"{epochs} epochs; Table 1 needs at least 2 per group")
            values[group] = chosen.psnr.to_numpy()
            out.append(dict(sigma=sigma, row=group, n=len(chosen),
                            seeds=" / ".join(str(s) for s in chosen.seed),
                            values=" / ".join(f"{v:.2f}" for v in chosen.psnr),
                            methods=" / ".join(chosen.method) if group == "fpi_nn" else "",
                            mean=float(np.mean(chosen.psnr)), sd=float(np.std(chosen.psnr, ddof=1))))
        fpi = values["fpi_nn"]
        for baseline in GROUPS[1:]:
            base = values[baseline]
            se = float(np.sqrt(fpi.var(ddof=1) / len(fpi) + base.var(ddof=1) / len(base)))
            test = stats.ttest_ind(fpi, base, equal_var=False)
            out.append(dict(sigma=sigma, row=f"gap fpi_nn - {baseline}", n=len(fpi) + len(base),
                            mean=float(fpi.mean() - base.mean()), sd=se, p_welch=float(test.pvalue)))
    return pd.DataFrame(out, columns=["sigma", "row", "n", "seeds", "values", "methods", "mean",
                                      "sd", "p_welch"])


def main(argv=None):
    from fpibench.results import load

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="results/paper")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", default=None, help="CSV to write (default: print only)")
    args = parser.parse_args(argv)
    table = table1(load(args.store), args.epochs)
    if args.out:
        table.to_csv(args.out, index=False, float_format="%.4f")
    print("(for gap rows, `sd` is the standard error of the difference of the means)")
    print(table.to_markdown(index=False, floatfmt=".3f", missingval=""))
    return table


if __name__ == "__main__":
    main()
