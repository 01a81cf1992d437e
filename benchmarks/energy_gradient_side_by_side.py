"""FPI_GD training step: closed-form ∇ₓE vs an autograd call per iteration, side by side.

    python benchmarks/energy_gradient_side_by_side.py [--steps 12] [--data-dir DIR]

Builds two identical models per configuration and alternates their training steps on the
same batches (one process, one thread), switching the bound energy's closed-form
``gradient`` off for one of them; prints the ratio of median step times.  Not an asv
benchmark (nothing here is named ``time_*``); asv's ``VectorTaskStep`` tracks the step time
per commit.
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings


def side_by_side(task_name, forward, backward, steps, data_dir=None):
    import torch

    from fpibench.tasks import FPIConfig, get
    from fpibench.tasks import vector_models

    bound = vector_models._BoundLinearReluMeanSquare
    closed_form = bound.gradient
    task = get(task_name, preset="paper", data_dir=data_dir)
    runs = {}
    for mode in ("autograd", "closed_form"):
        model = task.build_model("fpi_gd", FPIConfig(forward=forward, backward=backward), seed=0)
        runs[mode] = (model, task.optimizer(model), [])
    try:
        for i, (_, batch) in enumerate(zip(range(steps), task.train_batches(0, 0))):
            for mode in (("autograd", "closed_form") if i % 2 == 0 else ("closed_form", "autograd")):
                bound.gradient = closed_form if mode == "closed_form" else None  # None: autograd path
                model, optimizer, times = runs[mode]
                start = time.perf_counter()
                task.train_step(model, optimizer, batch)
                times.append(time.perf_counter() - start)
    finally:
        bound.gradient = closed_form
    auto, closed = (statistics.median(runs[m][2][2:]) for m in ("autograd", "closed_form"))
    return auto, closed


def main(argv=None):
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # the paper's FPI_GD solves hit their cap; that is measured, not news
    for task_name, forward, backward in (("box_constraint", "picard", "backward_fpi"),
                                         ("box_constraint", "picard", "gmres"),
                                         ("bibtex", "picard", "backward_fpi")):
        auto, closed = side_by_side(task_name, forward, backward, args.steps, args.data_dir)
        print(f"{task_name} fpi_gd {forward}+{backward}: autograd {auto * 1e3:.1f} ms, closed form "
              f"{closed * 1e3:.1f} ms per step, ratio {auto / closed:.2f} (medians of {args.steps - 2} interleaved steps)")


if __name__ == "__main__":
    main()
