"""Table 1 of the paper (denoising PSNR) from a results store, with every seed, as a CSV.

    python benchmarks/table1_seeds.py [--store results/paper] [--preset paper] [--setting ""]
        [--out results/paper/table1_seeds.csv]

The paper's claim: FPI_NN beats the feedforward denoiser at every σ and the gap grows with σ
(Jeon, Lee & Choi, Table 1).  The statistics are the report's
(:func:`fpibench.report.table_seed_gap`, shown in ``report.md`` as "Table 1 seed by seed"):
per σ each group's final-epoch PSNR per seed, mean and sample sd, and FPI_NN's gap to the
feedforward net at PyTorch's default initialisation (``feedforward``) and at the FPI model's
10× smaller one (``feedforward init×0.1``), with the gap's standard error (in ``sd``) and
Welch's p.  This script picks one budget (preset + the setting it departs from the preset
with, "" = the preset as is) keeps Table 1's three groups and insists on at least two seeds in each, so the CSV it
writes always carries a standard error.
"""
from __future__ import annotations

import argparse


GROUPS = ("fpi_nn", "feedforward", "feedforward init×0.1")
ROWS = (*GROUPS, *(f"gap fpi_nn − {base}" for base in GROUPS[1:]))


class Table1Error(ValueError):
    """The store lacks what Table 1 needs."""


def table1(frame, preset="paper", setting=""):
    """The report's seed-gap table for one budget; Table1Error when it has no cells or a
    group of some σ has fewer than two seeds."""
    from fpibench.report import table_seed_gap

    table = table_seed_gap(frame)
    table = table[(table.preset == preset) & (table.setting == setting) & table.row.isin(ROWS)]
    table = table.drop(columns=["preset", "setting"])
    if table.empty:
        raise Table1Error(f"no denoise cells with both FPI_NN and a feedforward baseline at preset {preset!r}, "
                          f"setting {setting!r} in this store")
    have = {(r.sigma, r.row): r.n for r in table.itertuples()}
    thin = [(s, g, have.get((s, g), 0)) for s in sorted(set(table.sigma)) for g in GROUPS if have.get((s, g), 0) < 2]
    if thin:
        named = "; ".join(f"sigma={s:g}: {g!r} has {n} seed(s)" for s, g, n in thin)
        raise Table1Error(f"{named}; Table 1 needs at least 2 seeds per group")
    return table.reset_index(drop=True)


def main(argv=None):
    from fpibench.results import load

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="results/paper")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--setting", default="", help='the budget label of the report, e.g. "epochs=40"')
    parser.add_argument("--out", default=None, help="CSV to write (default: print only)")
    args = parser.parse_args(argv)
    table = table1(load(args.store), args.preset, args.setting)
    if args.out:
        table.to_csv(args.out, index=False, float_format="%.4f")
    print("(for gap rows, `sd` is the standard error of the difference of the means)")
    print(table.to_markdown(index=False, floatfmt=".3f", missingval=""))
    return table


if __name__ == "__main__":
    main()
