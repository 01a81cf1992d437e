"""Which gradient does each method return when the FPI_GD forward stops at its cap?

    python benchmarks/fpi_gd_gradient_vs_unrolled.py [--tasks box_constraint,bibtex] [--seed 0]
        [--out results/paper/fpi_gd_gradient_vs_unrolled.csv] [--data-dir DIR]

At the paper's preset and the model's initialisation, the FPI_GD layer's Picard forward
(x ← x − γ∇ₓE(x, z)) runs to its cap on every sample, so the layer computes K steps of gradient
descent, not a fixed point.  For every gradient method this compares its gradient ĝ on the
task's study batch with two float64 references (the gradient study's own, see
``fpibench.harness._study``):

- implicit: (I − ∂g/∂x)⁻ᵀ at a tightly solved fixed point (``TaskProblem.reference``);
- unrolled: the derivative of the K steps actually run (``TaskProblem.unrolled_reference``).

Relative error ‖ĝ − r‖/‖r‖, cosine, and ‖ĝ‖/‖r‖ (Adam is invariant to a gradient's scale but
not to its direction).  One row per task × method.
"""
from __future__ import annotations

import argparse
import csv
import warnings

METHODS = ("unroll", "backward_fpi", "neumann", "phantom", "jfb", "anderson", "broyden", "gmres",
           "jacobian_inverse")


def rows_for(task_name, seed, data_dir=None):
    import torch

    from fpibench.harness import _study
    from fpibench.tasks import FPIConfig, get

    task = get(task_name, preset="paper", data_dir=data_dir)
    model = task.build_model("fpi_gd", FPIConfig(forward="picard", backward="backward_fpi"), seed=seed)
    problem = _study.TaskProblem(task, model, task.probe_batch(seed))
    implicit, implicit_note = problem.reference()
    unrolled, unrolled_note = problem.unrolled_reference()
    unrolled_norm = float(_study._flat(unrolled, problem.params).norm())
    for method in METHODS:
        run = problem.run(method, {})
        grads = torch.autograd.grad(run.loss, problem.params, allow_unused=True)
        its = _study._iteration_metrics(run.stats)
        vs_implicit, vs_unrolled = (_study.compare(grads, ref, problem.params) for ref in (implicit, unrolled))
        yield {"task": task_name, "seed": seed, "method": method, "status": _study.solve_status(run.stats),
               "forward_iterations_mean": its["forward_iterations_mean"],
               "backward_iterations_mean": its["backward_iterations_mean"],
               "grad_rel_error_implicit": vs_implicit["grad_rel_error"], "grad_cosine_implicit": vs_implicit["grad_cosine"],
               "grad_rel_error_unrolled": vs_unrolled["grad_rel_error"],
               "grad_cosine_unrolled": vs_unrolled["grad_cosine"],
               "norm_ratio_unrolled": float(_study._flat(grads, problem.params).norm()) / unrolled_norm,
               "implicit_reference_note": implicit_note, "unrolled_reference_note": unrolled_note}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="box_constraint,bibtex")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/paper/fpi_gd_gradient_vs_unrolled.csv")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    import torch

    from fpibench.results import provenance

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # every forward is expected to stop at its cap
    rows = [dict(row, **provenance()) for name in args.tasks.split(",")
            for row in rows_for(name, args.seed, args.data_dir)]
    with open(args.out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for r in rows:
        print(f"{r['task']:15s} {r['method']:17s} fwd {r['forward_iterations_mean']:5.0f} "
              f"vs implicit {r['grad_rel_error_implicit']:9.3g} (cos {r['grad_cosine_implicit']:+.3f})  "
              f"vs unrolled {r['grad_rel_error_unrolled']:9.3g} (cos {r['grad_cosine_unrolled']:+.3f}, "
              f"norm ×{r['norm_ratio_unrolled']:.3g})")


if __name__ == "__main__":
    main()
