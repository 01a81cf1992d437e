"""Side-by-side comparison with torchdeq 0.1.0: forward solvers and implicit backward.

    python -m fpibench.peer --out results/peer [--repeats N] [--device cpu|cuda]

Both libraries solve the same problems from the same start x₀ = 0 with the same tolerance,
iteration cap and stopping rule, interleaved in one process (ours/theirs alternate, the
order flips every repeat), and every returned point is scored afterwards by the same code,
:func:`residual`.  Rows (``peer_<device>.csv``) are long format; ``ratios_<device>.csv``
holds the speed goals.

**Stopping rule.**  Forward: ``abs`` — per sample ‖·‖₂ < tol, fpibench
``criterion="absolute"``, torchdeq ``stop_mode="abs"``.  The measured quantity differs:
torchdeq measures the fixed-point residual ‖f(z) − z‖ of the iterate it returns (for
``fixed_point_iter`` that residual is the step ‖x_{n+1} − x_n‖); fpibench measures the step
‖x_{n+1} − x_n‖ for every solver — equal to the residual of x_n for Picard, for Anderson the
distance to the mixed iterate, for Broyden ‖B r_n‖ (≈ ‖(I − J)⁻¹ r_n‖, larger than the
residual near criticality).  torchdeq also keeps iterating every sample until the worst one
passes (returning each sample's lowest-residual iterate) where fpibench freezes converged
samples.  Hence the residual column, ‖g(x) − x‖ of the returned x recomputed afterwards.
Backward: ``rel`` — ‖Δc‖/‖c‖ < tol (fpibench divides by ‖c_n‖, torchdeq by ‖c_{n+1}‖ + 1e-9);
an absolute 1e-6 is below float32 rounding for adjoints of norm ~10–100.

**Problems** (g(x) = tanh(Wx + Uz + b), the ``contractive_tanh`` probe, exact gradients from
its float64 ``reference``):  ``contractive`` — ‖W‖₂ = 0.9 (float32, 256 × 64);
``near_critical`` — W symmetric with eigenvalues evenly spaced in [−0.99, 0.99], so
ρ(W) = ‖W‖₂ = 0.99, and input_scale 1e-3 keeps tanh near-linear: Picard needs hundreds of
steps.  (The probe's Gaussian W scaled to ‖W‖₂ = 0.99 has ρ(W) ≈ 0.5 and converges in ~20.)
``near_critical_f64`` is the same in float64.

Columns: ``iterations`` counts calls of g made by the forward solver, or VJPs made by the
backward solver, counted by the same wrapper for both libraries; ``seconds`` is the wall time
of the forward solve (no graph) or of the backward alone (``torch.autograd.grad`` of
L = ⟨v, x̂⟩, both libraries starting from the same x̂); ``grad_rel_error`` is
‖∇L − ∇L_ref‖/‖∇L_ref‖ over all leaves (W, U, b, z) concatenated.
"""
from __future__ import annotations

import argparse
import gc
import math
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch

from ._fixed_point import fixed_point
from ._iterate import CountingMap
from .errors import FixedPointWarning, OptionError
from .memory import saved_tensor_bytes

SOLVERS = ("picard", "anderson", "broyden")
#: our backward method → torchdeq backward solver of the same kind
BACKWARD_PAIRS = {"backward_fpi": "fixed_point_iter", "anderson": "anderson", "broyden": "broyden"}
#: our extra backward methods (no torchdeq counterpart), measured for reference
BACKWARD_EXTRA = ("gmres",)
#: per-solver iteration caps, shared by both libraries (forward and backward)
MAX_ITER = {"picard": 2000, "anderson": 1000, "broyden": 300}
ANDERSON_M = 5
PROBLEMS = ("contractive", "near_critical", "near_critical_f64")
COLUMNS = ("library", "solver", "problem", "tol", "rule", "repeat", "seconds", "iterations", "residual",
           "grad_rel_error", "device", "device_name", "torch_version", "torchdeq_version", "git_commit")
RATIO_COLUMNS = ("goal", "measured", "threshold", "met", "detail")
THRESHOLDS = {"same_solver_time": 0.7, "same_solver_iterations": 1.0, "fastest_time": 0.5,
              "backward_fpi_vjp": 1.15, "saved_bytes_200_vs_10": 1.05}


# -- problems ----------------------------------------------------------------------------
@dataclass
class Problem:
    """One batch of fixed-point problems plus its exact gradient reference and cotangent v."""

    name: str
    instance: object  # fpibench.tasks.ProbeInstance
    v: torch.Tensor
    tol: float
    backward_tol: float
    _reference: Optional[dict] = field(default=None, repr=False)

    @property
    def g(self) -> Callable:
        return self.instance.g

    @property
    def x0(self) -> torch.Tensor:
        return self.instance.x0

    @property
    def leaves(self) -> list:
        return list(self.instance.leaves.values())

    def reference(self) -> dict:
        """Exact gradients of ⟨v, x̂⟩ (the probe's float64 Newton + dense solve), computed once."""
        if self._reference is None:
            self._reference = self.instance.reference(self.v)
        return self._reference


def make_problem(name: str, dim: int = 256, batch: int = 64, device: str = "cpu", seed: int = 0,
                 tol: float = 1e-6, backward_tol: float = 1e-6) -> Problem:
    """Build problem ``name`` (see the module docstring) on ``device``."""
    from .tasks import get as get_task

    if name == "contractive":
        probe = get_task("contractive_tanh", dim=dim, batch=batch, k=0.9, dtype="float32", device=device)
        instance = probe.instance(seed)
    elif name in ("near_critical", "near_critical_f64"):
        dtype = "float64" if name.endswith("f64") else "float32"
        k = 0.99
        probe = get_task("contractive_tanh", dim=dim, batch=batch, k=k, dtype=dtype, device=device, input_scale=1e-3)
        instance = probe.instance(seed)
        # Replace W (in place, so g and the probe's reference both see it) by a symmetric
        # matrix with spectrum evenly spaced in [−k, k]: ρ(W) = ‖W‖₂ = k.
        gen = torch.Generator().manual_seed(seed + 1)
        q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
        w = (q * torch.linspace(-k, k, dim, dtype=torch.float64)) @ q.T
        with torch.no_grad():
            instance.leaves["W"].copy_(w)
    else:
        raise OptionError(f"unknown peer problem {name!r}; valid: {', '.join(PROBLEMS)}")
    gen = torch.Generator().manual_seed(seed + 2)
    v = torch.randn(instance.x0.shape, generator=gen, dtype=torch.float64).to(instance.x0)
    return Problem(name, instance, v, tol, backward_tol)


def residual(g: Callable, x: torch.Tensor) -> float:
    """max over the batch of ‖g(x) − x‖₂ per sample: the one score both libraries get."""
    with torch.no_grad():
        x = x.detach()
        r = (g(x) - x).reshape(x.shape[0], -1)
        return float(torch.linalg.vector_norm(r.double(), dim=1).max())


def grad_rel_error(grads: Sequence[torch.Tensor], reference: dict, names: Sequence[str]) -> float:
    """‖∇ − ∇ref‖ / ‖∇ref‖ over all leaves concatenated (float64)."""
    est = torch.cat([g.detach().double().reshape(-1).cpu() for g in grads])
    ref = torch.cat([reference[n].detach().double().reshape(-1).cpu() for n in names])
    return float(torch.linalg.vector_norm(est - ref) / torch.linalg.vector_norm(ref))


# -- runners -----------------------------------------------------------------------------
@dataclass
class Run:
    """One timed run: the returned point (forward) or gradients (backward) and its numbers."""

    seconds: float
    iterations: int
    x: Optional[torch.Tensor] = None
    grads: Optional[tuple] = None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _our_forward_options(solver: str) -> dict:
    # torchdeq has no divergence stop: switch ours off too (Broyden's steps swing by more
    # than the default factor 1e4 on the near-critical problem and would be cut short)
    opts: dict = {"criterion": "absolute", "divergence_factor": 1e30}
    if solver == "anderson":
        opts["m"] = ANDERSON_M
    if solver == "broyden":
        opts["m"] = MAX_ITER["broyden"]  # full memory, like torchdeq's default LBFGS_thres=None
        opts["stop_on"] = "residual"  # torchdeq's rule: ‖g(x) − x‖ of the returned point
    return opts


def _their_solver(solver: str) -> tuple[Callable, dict]:
    from torchdeq.solver import anderson_solver, broyden_solver, fixed_point_iter

    return {
        "picard": (fixed_point_iter, {}),
        "anderson": (anderson_solver, {"m": ANDERSON_M}),
        "broyden": (broyden_solver, {}),
    }[solver]


def ours_forward(problem: Problem, solver: str) -> Run:
    """fpibench.fixed_point without a graph; iterations = g-calls of the forward solver."""
    device = problem.x0.device
    _sync(device)
    start = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FixedPointWarning)
        sol = fixed_point(problem.g, problem.x0, forward=solver, tol=problem.tol, max_iter=MAX_ITER[solver],
                          forward_options=_our_forward_options(solver))
    _sync(device)
    return Run(time.perf_counter() - start, int(sol.stats.forward.nfev), x=sol.value)


def theirs_forward(problem: Problem, solver: str) -> Run:
    """torchdeq's solver function under ``stop_mode="abs"``; iterations = its g-calls."""
    fn, opts = _their_solver(solver)
    counted = CountingMap(problem.g)
    device = problem.x0.device
    _sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        z, _, _ = fn(counted, problem.x0, max_iter=MAX_ITER[solver], tol=problem.tol, stop_mode="abs", **opts)
    _sync(device)
    return Run(time.perf_counter() - start, counted.calls, x=z)


def _timed_grad(out: torch.Tensor, problem: Problem) -> tuple[float, tuple]:
    loss = (out * problem.v).sum()
    device = problem.x0.device
    _sync(device)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FixedPointWarning)
        grads = torch.autograd.grad(loss, problem.leaves)
    _sync(device)
    return time.perf_counter() - start, grads


def ours_backward(problem: Problem, method: str, x_hat: torch.Tensor) -> Run:
    """Attach x̂ (one Picard step from x̂ passes the forward test) and time the backward alone."""
    kind = "picard" if method == "backward_fpi" else method
    max_iter = MAX_ITER.get(kind, MAX_ITER["picard"])
    options: dict = {"tol": problem.backward_tol, "criterion": "relative", "max_iter": max_iter}
    if method == "anderson":
        options["m"] = ANDERSON_M
    if method == "broyden":
        options["m"] = max_iter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FixedPointWarning)
        sol = fixed_point(problem.g, x_hat, forward="picard", backward=method, tol=problem.tol,
                          max_iter=MAX_ITER["picard"], forward_options={"criterion": "absolute"},
                          backward_options=options)
    seconds, grads = _timed_grad(sol.value, problem)
    return Run(seconds, int(sol.stats.backward.vjp_calls), x=sol.value.detach(), grads=grads)


def theirs_backward(problem: Problem, method: str, x_hat: torch.Tensor) -> Run:
    """torchdeq's implicit backward (``backward_factory(grad_type='ift')``, its default
    ``torch.autograd.Function`` form) with the paired solver; times the backward alone."""
    from torchdeq.grad import backward_factory
    from torchdeq.solver import get_solver

    name = BACKWARD_PAIRS[method]
    base = get_solver(name)
    calls = [0]

    def counted_solver(func, x0, **kwargs):
        counted = CountingMap(func)
        out = base(counted, x0, **kwargs)
        calls[0] += counted.calls
        return out

    kind = "picard" if method == "backward_fpi" else method
    kwargs = dict(max_iter=MAX_ITER[kind], tol=problem.backward_tol, stop_mode="rel")
    if name == "anderson":
        kwargs["m"] = ANDERSON_M
    produce = backward_factory(grad_type="ift", b_solver=counted_solver, b_solver_kwargs=kwargs)
    (out,) = produce(None, problem.g, x_hat.detach())
    seconds, grads = _timed_grad(out, problem)
    return Run(seconds, calls[0], x=out.detach(), grads=grads)


def vjp_seconds(problem: Problem, x_hat: torch.Tensor, calls: int = 30) -> float:
    """Mean time of one VJP c ↦ (∂g/∂x)ᵀc at x̂ over ``calls`` back-to-back VJPs
    (``torch.autograd.grad`` on a retained graph), each applied to the previous one's output
    (restarting from v every 20 calls, so no value decays to denormals) — a fresh cotangent
    every call, as in backward_fpi's loop.  Timed as one block of as many VJPs as
    backward_fpi made, right after it, so both see the same machine load."""
    point = x_hat.detach().clone().requires_grad_()
    with torch.enable_grad():
        fx = problem.g(point)
    c = problem.v
    (c,) = torch.autograd.grad(fx, point, c, retain_graph=True)  # warm
    device = point.device
    _sync(device)
    start = time.perf_counter()
    for k in range(calls):
        (c,) = torch.autograd.grad(fx, point, problem.v if k % 20 == 0 else c, retain_graph=True)
    _sync(device)
    return (time.perf_counter() - start) / calls


def saved_bytes_ratio(problem: Problem, low: int = 10, high: int = 200) -> tuple[float, int, int]:
    """Bytes autograd saves for backward_fpi after ``high`` vs ``low`` Picard iterations."""
    sizes = []
    for iters in (low, high):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FixedPointWarning)
            with saved_tensor_bytes() as saved:
                sol = fixed_point(problem.g, problem.x0, forward="picard", backward="backward_fpi",
                                  tol=1e-300, max_iter=iters, forward_options={"rounding_floor": False})
        done = int(sol.stats.forward.iterations.max())
        if done != iters:
            raise RuntimeError(f"saved-bytes probe ran {done} forward iterations, wanted {iters}")
        sizes.append(saved.bytes)
    return sizes[1] / sizes[0], sizes[0], sizes[1]


# -- the comparison ------------------------------------------------------------------------
def _provenance(device: torch.device) -> dict:
    from importlib import metadata

    from .results import provenance

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        name = f"{name} ({torch.get_num_threads()} torch thread(s), {torch.multiprocessing.cpu_count()} cores)"
    try:
        tdeq = metadata.version("torchdeq")
    except metadata.PackageNotFoundError:  # pragma: no cover - torchdeq is required to run
        tdeq = "missing"
    return {"device": device.type, "device_name": name, "torch_version": torch.__version__,
            "torchdeq_version": tdeq, "git_commit": provenance()["git_commit"]}


def compare(problems: Sequence[str] = PROBLEMS, repeats: int = 5, device: str = "cpu", dim: int = 256,
            batch: int = 64, tol: float = 1e-6, backward_tol: float = 1e-6, solvers: Sequence[str] = SOLVERS,
            backward: Sequence[str] = tuple(BACKWARD_PAIRS) + BACKWARD_EXTRA, memory: bool = True,
            log: Optional[Callable[[str], None]] = None) -> tuple:
    """Run the interleaved comparison; returns ``(rows, ratios)`` as pandas DataFrames."""
    import pandas as pd

    try:
        import torchdeq  # noqa: F401
    except ImportError as exc:  # pragma: no cover - torchdeq is an optional dependency
        raise ImportError("the peer comparison needs torchdeq: pip install 'torchdeq>=0.1'") from exc
    if not isinstance(repeats, int) or repeats < 1:
        raise OptionError(f"repeats must be an integer >= 1, got {repeats!r}")
    for s in solvers:
        if s not in SOLVERS:
            raise OptionError(f"unknown solver {s!r}; valid: {', '.join(SOLVERS)}")
    for m in backward:
        if m not in BACKWARD_PAIRS and m not in BACKWARD_EXTRA:
            raise OptionError(f"unknown backward method {m!r}; valid: {', '.join((*BACKWARD_PAIRS, *BACKWARD_EXTRA))}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"device {device!r} requested but no CUDA device is available")
    say = log or (lambda _msg: None)
    prov = _provenance(dev)
    cases = [make_problem(p, dim=dim, batch=batch, device=device, tol=tol, backward_tol=backward_tol) for p in problems]
    rows: List[dict] = []
    extra: Dict[str, dict] = {}

    def record(library, solver, problem, repeat, run, rule, error=math.nan):
        rows.append({"library": library, "solver": solver, "problem": problem.name,
                     "tol": problem.backward_tol if solver.startswith("backward:") else problem.tol,
                     "rule": rule, "repeat": repeat, "seconds": run.seconds, "iterations": run.iterations,
                     "residual": residual(problem.g, run.x), "grad_rel_error": error, **prov})

    # a fixed point for the backward runs: both libraries start their backward from it
    points = {case.name: ours_forward(case, "picard").x.detach() for case in cases}
    # warm-up (untimed) on small copies: first calls pay for lazy initialisation
    for p in problems:
        small = make_problem(p, dim=8, batch=2, device=device, tol=tol, backward_tol=backward_tol)
        for s in solvers:
            ours_forward(small, s), theirs_forward(small, s)
        point = ours_forward(small, "picard").x
        for m in backward:
            ours_backward(small, m, point)
            if m in BACKWARD_PAIRS:
                theirs_backward(small, m, point)
        vjp_seconds(small, point, calls=2)
    for repeat in range(repeats):
        for case in cases:
            names = list(case.instance.leaves)
            for s in solvers:
                pair = [("fpibench", ours_forward), ("torchdeq", theirs_forward)]
                for library, runner in (pair if repeat % 2 == 0 else pair[::-1]):
                    gc.collect()
                    record(library, s, case, repeat, runner(case, s), "abs")
            x_hat = points[case.name]
            for m in backward:
                pair = [("fpibench", ours_backward)] + ([("torchdeq", theirs_backward)] if m in BACKWARD_PAIRS else [])
                for library, runner in (pair if repeat % 2 == 0 else pair[::-1]):
                    gc.collect()
                    run = runner(case, m, x_hat)
                    record(library, f"backward:{m}", case, repeat, run, "rel",
                           grad_rel_error(run.grads, case.reference(), names))
                    if library == "fpibench" and m == "backward_fpi":
                        # goal 2's yardstick: as many VJPs as this backward made, right after it
                        t = vjp_seconds(case, x_hat, calls=run.iterations)
                        rows.append({"library": "fpibench", "solver": "vjp", "problem": case.name, "tol": math.nan,
                                     "rule": "", "repeat": repeat, "seconds": t, "iterations": run.iterations,
                                     "residual": residual(case.g, x_hat), "grad_rel_error": math.nan, **prov})
            say(f"repeat {repeat + 1}/{repeats}: {case.name} done")
    if memory:  # on the near-critical problem, where 200 Picard steps do not converge
        near = next((c for c in cases if c.name == "near_critical"), None)
        near = near or make_problem("near_critical", dim=dim, batch=batch, device=device, tol=tol)
        extra["saved_bytes"] = dict(zip(("ratio", "low", "high", "problem"), (*saved_bytes_ratio(near), near.name)))
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame, ratios(frame, extra)


def _median(frame, **match) -> Optional[dict]:
    sel = frame
    for key, value in match.items():
        sel = sel[sel[key] == value]
    if sel.empty:
        return None
    return {"seconds": float(sel["seconds"].median()), "iterations": float(sel["iterations"].median()),
            "residual": float(sel["residual"].median()), "grad_rel_error": float(sel["grad_rel_error"].median()),
            "tol": float(sel["tol"].iloc[0]), "n": len(sel)}


def ratios(frame, extra: Optional[dict] = None):
    """The speed goals as (goal, measured, threshold, met, detail) rows from the run table."""
    import pandas as pd

    out = []

    def add(goal, measured, threshold, met, detail):
        out.append({"goal": goal, "measured": measured, "threshold": threshold, "met": bool(met), "detail": detail})

    for problem in dict.fromkeys(frame["problem"]):
        fastest = {}
        for library in ("fpibench", "torchdeq"):
            best = None
            for solver in SOLVERS:
                m = _median(frame, library=library, solver=solver, problem=problem)
                if m is not None and m["residual"] <= m["tol"] and (best is None or m["seconds"] < best[1]["seconds"]):
                    best = (solver, m)
            fastest[library] = best
        for solver in ("anderson", "broyden"):
            ours = _median(frame, library="fpibench", solver=solver, problem=problem)
            theirs = _median(frame, library="torchdeq", solver=solver, problem=problem)
            if ours is None or theirs is None:
                continue
            ours_ok, theirs_ok = ours["residual"] <= ours["tol"], theirs["residual"] <= theirs["tol"]
            detail = (f"fpibench {ours['seconds'] * 1e3:.2f} ms, {ours['iterations']:.0f} g-calls, residual "
                      f"{ours['residual']:.2e}; torchdeq {theirs['seconds'] * 1e3:.2f} ms, {theirs['iterations']:.0f} "
                      f"g-calls, residual {theirs['residual']:.2e} (medians of {ours['n']})"
                      + ("" if theirs_ok else "; torchdeq did not reach tol"))
            ratio = ours["seconds"] / theirs["seconds"]
            add(f"same_solver_time:{solver}:{problem}", ratio, THRESHOLDS["same_solver_time"],
                ours_ok and ratio <= THRESHOLDS["same_solver_time"], detail)
            it_ratio = ours["iterations"] / theirs["iterations"]
            add(f"same_solver_iterations:{solver}:{problem}", it_ratio, THRESHOLDS["same_solver_iterations"],
                ours_ok and it_ratio <= THRESHOLDS["same_solver_iterations"], detail)
        if fastest["fpibench"] and fastest["torchdeq"]:
            (so, mo), (st, mt) = fastest["fpibench"], fastest["torchdeq"]
            ratio = mo["seconds"] / mt["seconds"]
            add(f"fastest_time:{problem}", ratio, THRESHOLDS["fastest_time"], ratio <= THRESHOLDS["fastest_time"],
                f"fpibench {so} {mo['seconds'] * 1e3:.2f} ms vs torchdeq {st} {mt['seconds'] * 1e3:.2f} ms "
                f"(fastest solver that reached tol)")
        bwd = _median(frame, library="fpibench", solver="backward:backward_fpi", problem=problem)
        vjp = _median(frame, library="fpibench", solver="vjp", problem=problem)
        if bwd is not None and vjp is not None:
            # paired per repeat: the VJP block ran right after that repeat's backward
            sel = frame[frame["problem"] == problem]
            b_rows = sel[(sel["library"] == "fpibench") & (sel["solver"] == "backward:backward_fpi")].set_index("repeat")
            v_rows = sel[(sel["library"] == "fpibench") & (sel["solver"] == "vjp")].set_index("repeat")
            per_repeat = (b_rows["seconds"] / (b_rows["iterations"] * v_rows["seconds"])).dropna()
            ratio = float(per_repeat.median())
            add(f"backward_fpi_vjp:{problem}", ratio, THRESHOLDS["backward_fpi_vjp"],
                ratio <= THRESHOLDS["backward_fpi_vjp"],
                f"backward {bwd['seconds'] * 1e3:.2f} ms / ({bwd['iterations']:.0f} VJPs x "
                f"{vjp['seconds'] * 1e6:.1f} us) (medians; ratio = median of {len(per_repeat)} paired repeats)")
    saved = (extra or {}).get("saved_bytes")
    if saved:
        add("saved_bytes_200_vs_10", saved["ratio"], THRESHOLDS["saved_bytes_200_vs_10"],
            saved["ratio"] <= THRESHOLDS["saved_bytes_200_vs_10"],
            f"backward_fpi on {saved['problem']}: {saved['high']} B after 200 Picard iterations, "
            f"{saved['low']} B after 10")
    return pd.DataFrame(out, columns=list(RATIO_COLUMNS))


def write(rows, ratio_frame, out_dir, device: str) -> list[Path]:
    """Write ``peer_<device>.csv`` (+ ``.parquet``) and ``ratios_<device>.csv``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"peer_{device}.csv", out / f"peer_{device}.parquet", out / f"ratios_{device}.csv"]
    rows.to_csv(paths[0], index=False)
    rows.to_parquet(paths[1], index=False)
    ratio_frame.to_csv(paths[2], index=False)
    return paths


def summary(rows):
    """Medians per (problem, solver, library): the compact view printed and used in reports."""
    return (rows.groupby(["problem", "solver", "library"], sort=False)
            .agg(seconds=("seconds", "median"), iterations=("iterations", "median"),
                 residual=("residual", "median"), grad_rel_error=("grad_rel_error", "median"),
                 repeats=("repeat", "nunique"))
            .reset_index())


def peer_markdown(results_dir) -> list[str]:
    """Markdown lines (ratios, then medians) for every ``ratios_<device>.csv`` in ``results_dir``."""
    import pandas as pd

    root = Path(results_dir)
    lines: list[str] = []
    for ratio_path in sorted(root.glob("ratios_*.csv")):
        device = ratio_path.stem.split("_", 1)[1]
        ratio_frame = pd.read_csv(ratio_path)
        peer_path = root / f"peer_{device}.csv"
        rows = pd.read_csv(peer_path) if peer_path.is_file() else None
        head = f"### torchdeq comparison on {device}"
        if rows is not None and not rows.empty:
            r0 = rows.iloc[0]
            head += (f" ({r0['device_name']}; torch {r0['torch_version']}, torchdeq {r0['torchdeq_version']}, "
                     f"commit {str(r0['git_commit'])[:10]})")
        lines += [head, "", "| goal | measured | threshold | met | detail |", "|---|---:|---:|:---:|---|"]
        for r in ratio_frame.itertuples():
            lines.append(f"| {r.goal} | {r.measured:.3f} | {r.threshold:g} | {'yes' if r.met else 'no'} | {r.detail} |")
        if rows is not None and not rows.empty:
            lines += ["", "| problem | solver | library | median s | iterations | residual | grad rel. error |",
                      "|---|---|---|---:|---:|---:|---:|"]
            for r in summary(rows).itertuples():
                err = "" if math.isnan(r.grad_rel_error) else f"{r.grad_rel_error:.2e}"
                lines.append(f"| {r.problem} | {r.solver} | {r.library} | {r.seconds:.5f} | {r.iterations:.0f} | "
                             f"{r.residual:.2e} | {err} |")
        lines.append("")
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fpibench.peer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results/peer", help="output folder (default results/peer)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats per case (default 5)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared machine OpenMP threads that "
                             "compete for cores slow small kernels down by orders of magnitude)")
    parser.add_argument("--problems", default=",".join(PROBLEMS), help=f"comma-separated, from {', '.join(PROBLEMS)}")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--solvers", default=",".join(SOLVERS), help="forward solvers, comma-separated")
    parser.add_argument("--backward", default=",".join((*BACKWARD_PAIRS, *BACKWARD_EXTRA)),
                        help="backward methods, comma-separated")
    parser.add_argument("--no-memory", action="store_true", help="skip the saved-bytes goal")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    problems = [p for p in args.problems.split(",") if p]
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        rows, ratio_frame = compare(problems, repeats=args.repeats, device=args.device, dim=args.dim,
                                    batch=args.batch, tol=args.tol, memory=not args.no_memory,
                                    solvers=[s for s in args.solvers.split(",") if s],
                                    backward=[m for m in args.backward.split(",") if m],
                                    log=lambda msg: print(msg, file=sys.stderr, flush=True))
    except OptionError as exc:
        parser.error(str(exc))
    finally:
        torch.set_num_threads(threads)
    device = torch.device(args.device).type
    paths = write(rows, ratio_frame, args.out, device)
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 120):
        print(summary(rows).to_string(index=False))
        print()
        print(ratio_frame.to_string(index=False))
    print("\nwrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
