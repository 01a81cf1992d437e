"""The gradient study: one gradient method against a reference at a fixed parameter state.

A :class:`StudyProblem` runs the loss (forward solve included) with a chosen gradient
method and budget; :func:`measure` records, for the gradient g of the loss w.r.t. the
parameters and the reference r,

    cosine = ⟨g, r⟩ / (‖g‖ ‖r‖),    relative error = ‖g − r‖ / ‖r‖,

forward/backward iterations (mean, max over samples), g evaluations, VJPs and JVPs,
forward and backward wall time (median of repeats, CUDA-synchronised), bytes saved for
backward and the peak memory of one forward + backward.  Where a forward solve stops short of
its tolerance (at its cap), the layer is not at a fixed point and the implicit gradient is
not the derivative of what the model computed; the error against the unrolled float64
gradient of that same computation is then recorded as well (``grad_rel_error_unrolled``,
``grad_cosine_unrolled``).  :func:`gradient_curve` and
:func:`memory_curve` sweep the backward budget and the number of forward iterations.
"""
from __future__ import annotations

import contextlib
import copy
import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from .._stats import SolveStats
from ..memory import saved_tensor_bytes
from ._memory import peak_memory, synchronize

#: which option of a gradient method is its iteration budget ("forward:max_iter" for unroll)
BUDGET_OPTION = {
    "backward_fpi": "max_iter", "rbp": "max_iter", "anderson": "max_iter", "broyden": "max_iter",
    "gmres": "max_iter", "cg": "max_iter", "minres": "max_iter", "implicit": "max_iter", "neumann": "terms",
    "phantom": "steps", "unroll": "forward:max_iter",
}
BACKWARD_BUDGETS = (1, 2, 3, 5, 10, 20, 50, 100, 200)
FORWARD_BUDGETS = (5, 10, 20, 50, 100, 200)
CURVE_TOL = 1e-12  # iterative backward methods run to their budget (or to 8 eps of the dtype) on the curve

_SEVERITY = {"ok": 0, "not_converged": 1, "diverged": 2}
#: forward solvers the float64 reference tries, in order, until one solves cleanly
REFERENCE_FORWARDS = ("anderson", "picard")


def solve_status(stats: Sequence[SolveStats]) -> str:
    """Worst status over the solves: ok, not_converged or diverged (NaN counts as diverged)."""
    seen = set()
    for s in stats:
        for part in (s.forward, s.backward):
            if part is not None:
                seen.update(part.status)
    worst = "ok"
    for status in seen:  # a handful of distinct statuses, not one per sample
        mapped = _STATUS_CLASS.get(status, "diverged")
        if _SEVERITY[mapped] > _SEVERITY[worst]:
            worst = mapped
    return worst


_STATUS_CLASS = {"converged": "ok", "fixed_steps": "ok", "not_converged": "not_converged"}


@dataclass
class Run:
    loss: torch.Tensor
    stats: List[SolveStats]


class StudyProblem:
    """Base: ``run(backward, backward_options, forward_overrides)`` → :class:`Run`; ``params``; ``reference()``."""

    params: List[torch.Tensor]
    device: torch.device

    def run(self, backward: str, backward_options: dict, forward_overrides: Optional[dict] = None) -> Run:
        raise NotImplementedError

    def reference(self) -> Tuple[List[torch.Tensor], str]:
        """Reference gradients (same order as ``params``) and a note ('' when converged)."""
        raise NotImplementedError


def _flat(grads: Sequence[Optional[torch.Tensor]], like: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([(g if g is not None else torch.zeros_like(p)).detach().reshape(-1).double().cpu()
                      for g, p in zip(grads, like)])


def compare(grads, reference, params) -> Dict[str, float]:
    g, r = _flat(grads, params), _flat(reference, params)
    rn, gn = float(r.norm()), float(g.norm())
    cos = float(g @ r) / (gn * rn) if gn > 0 and rn > 0 else math.nan
    rel = float((g - r).norm()) / rn if rn > 0 else math.nan
    return {"grad_cosine": cos, "grad_rel_error": rel}


def _iteration_metrics(stats: Sequence[SolveStats]) -> Dict[str, float]:
    out: Dict[str, float] = {}
    for part in ("forward", "backward"):
        its = [getattr(s, part).iterations.double() for s in stats if getattr(s, part) is not None]
        if its:
            allits = torch.cat([i.reshape(-1).cpu() for i in its])
            out[f"{part}_iterations_mean"] = float(allits.mean())
            out[f"{part}_iterations_max"] = float(allits.max())
        else:
            out[f"{part}_iterations_mean"] = out[f"{part}_iterations_max"] = math.nan
    out["g_evals"] = float(sum(int(s.forward.nfev) for s in stats))
    back = [s.backward for s in stats if s.backward is not None]
    out["vjp_calls"] = float(sum(b.vjp_calls for b in back)) if back else math.nan
    out["jvp_calls"] = float(sum(b.jvp_calls for b in back)) if back else math.nan
    return out


def forward_converged(stats: Sequence[SolveStats]) -> bool:
    """Whether every forward solve reached its tolerance (or ran the fixed steps it was asked to)."""
    return all(_STATUS_CLASS.get(status) == "ok" for s in stats if s.forward is not None for status in s.forward.status)


def measure(problem: StudyProblem, backward: str, backward_options: dict, repeats: int = 3,
            reference: Optional[Tuple[List[torch.Tensor], str]] = None, memory: bool = True,
            forward_overrides: Optional[dict] = None,
            unrolled_reference: Optional[Callable[[], Tuple[Optional[List[torch.Tensor]], str]]] = None,
            ) -> Tuple[Dict[str, float], str, str]:
    """Metrics of one gradient method at the problem's parameter state, its status and a reason.

    ``unrolled_reference`` (called only when a forward solve did not converge) gives the float64
    gradient of the computation as run; its comparison is added with the suffix ``_unrolled``.
    """
    device = problem.device
    fwd, bwd = [], []
    saved = math.nan
    grads = None
    for r in range(max(1, repeats)):
        synchronize(device)
        t0 = time.perf_counter()
        with saved_tensor_bytes() if r == 0 else contextlib.nullcontext() as counter:
            run = problem.run(backward, backward_options, forward_overrides)
        synchronize(device)
        t1 = time.perf_counter()
        grads = torch.autograd.grad(run.loss, problem.params, allow_unused=True)
        synchronize(device)
        t2 = time.perf_counter()
        fwd.append(t1 - t0)
        bwd.append(t2 - t1)
        if r == 0:
            saved = float(counter.bytes)
    metrics = {"forward_seconds": statistics.median(fwd), "backward_seconds": statistics.median(bwd),
               "saved_bytes": saved, **_iteration_metrics(run.stats)}
    stats = run.stats
    status = solve_status(stats)
    if not all(g is None or bool(torch.isfinite(g).all()) for g in grads):
        status = "diverged"
    if memory:
        with peak_memory(device) as peak:
            run = problem.run(backward, backward_options, forward_overrides)
            torch.autograd.grad(run.loss, problem.params, allow_unused=True)
            del run
        metrics[peak.kind] = peak.bytes
    if reference is False:  # memory curve: no accuracy needed
        return metrics, status, ""
    ref, note = reference if reference is not None else problem.reference()
    if ref is None:
        metrics.update(grad_cosine=math.nan, grad_rel_error=math.nan)
    else:
        metrics.update(compare(grads, ref, problem.params))
    if unrolled_reference is not None and not forward_converged(stats):
        unrolled, why = unrolled_reference()
        if unrolled is not None:
            metrics.update({f"{k}_unrolled": v for k, v in compare(grads, unrolled, problem.params).items()})
        note = "; ".join(filter(None, [note, why]))
    return metrics, status, note


def gradient_curve(problem: StudyProblem, backward: str, backward_options: dict,
                   budgets: Sequence[int] = BACKWARD_BUDGETS, reference=None) -> List[Tuple[int, Dict[str, float], str]]:
    """(budget, metrics, status) for each backward budget; [] for methods without a budget."""
    option = BUDGET_OPTION.get(backward)
    if option is None:
        return []
    reference = reference if reference is not None else problem.reference()
    if reference[0] is None:
        return []
    out = []
    for budget in budgets:
        b_opts, f_over = dict(backward_options), {}
        tol = max(CURVE_TOL, 8 * torch.finfo(problem.params[0].dtype).eps)
        if option == "forward:max_iter":
            f_over = {"max_iter": budget, "tol": tol}
        else:
            b_opts[option] = budget
            if option == "max_iter":
                b_opts["tol"] = tol
        metrics, _, _ = measure(problem, backward, b_opts, repeats=1, reference=reference, memory=False,
                                forward_overrides=f_over)
        keep = {k: metrics[k] for k in ("grad_rel_error", "grad_cosine", "backward_seconds", "backward_iterations_mean",
                                        "vjp_calls")}
        # stopping short of convergence is the point of a curve: only a non-finite gradient fails
        out.append((budget, keep, "ok" if math.isfinite(keep["grad_rel_error"]) else "diverged"))
    return out


def memory_curve(problem: StudyProblem, backward: str, backward_options: dict,
                 budgets: Sequence[int] = FORWARD_BUDGETS) -> List[Tuple[int, Dict[str, float], str]]:
    """(forward iterations, {saved_bytes, peak_*}, status) with the forward run for exactly that many steps."""
    out = []
    for budget in budgets:
        metrics, _, _ = measure(problem, backward, backward_options, repeats=1, reference=False,
                                     memory=True, forward_overrides={"max_iter": budget, "tol": None})
        keep = {k: v for k, v in metrics.items() if k in ("saved_bytes", "peak_rss_bytes", "peak_cuda_bytes")}
        out.append((budget, keep, "ok"))  # fixed forward steps: memory is the measurement
    return out


# -- problems ---------------------------------------------------------------------------
class ProbeProblem(StudyProblem):
    """⟨v, x̂⟩ on a probe instance; the reference is the probe's exact answer."""

    def __init__(self, instance, forward: str, forward_options: dict, tol: float, max_iter: int, seed: int):
        self.instance = instance
        self.names = list(instance.leaves)
        self.params = [instance.leaves[n] for n in self.names]
        self.device = instance.x0.device
        self.forward, self.forward_options, self.tol, self.max_iter = forward, forward_options, tol, max_iter
        gen = torch.Generator().manual_seed(10_007 + seed)
        self.v = torch.randn(instance.x0.shape, generator=gen, dtype=torch.float64).to(instance.x0)

    def run(self, backward, backward_options, forward_overrides=None):
        from .._fixed_point import fixed_point

        over = forward_overrides or {}
        sol = fixed_point(self.instance.g, self.instance.x0, forward=self.forward, backward=backward,
                          tol=over.get("tol", self.tol), max_iter=over.get("max_iter", self.max_iter),
                          forward_options=self.forward_options, backward_options=backward_options)
        return Run(loss=(sol.value * self.v).sum(), stats=[sol.stats])

    def reference(self):
        ref = self.instance.reference(self.v)
        return [ref[n] for n in self.names], ""


def _floating_to(obj, dtype=None, device=None):
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point():
            return obj.to(device=device, dtype=dtype or obj.dtype)
        return obj.to(device=device)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_floating_to(o, dtype, device) for o in obj)
    if isinstance(obj, dict):
        return {k: _floating_to(v, dtype, device) for k, v in obj.items()}
    return obj


class TaskProblem(StudyProblem):
    """The task's training loss on a fixed batch; the reference is a float64 solve of the same model
    with the forward converged to ``ref_tol`` and the adjoint solved exactly (dense Jacobian
    inverse when it fits in ``ref_memory`` bytes, else GMRES to ``ref_tol``)."""

    def __init__(self, task, model, batch, ref_tol: float = 1e-11, ref_max_iter: int = 1000, ref_memory: int = 2**30):
        from ..tasks import fpi_layers

        self.task, self.model, self.batch = task, model, batch
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.device = self.params[0].device
        self.layers = fpi_layers(model)
        self.ref_tol, self.ref_max_iter, self.ref_memory = ref_tol, ref_max_iter, ref_memory

    @contextlib.contextmanager
    def _configured(self, layers, **attrs):
        saved = [{k: getattr(layer, k) for k in attrs} for layer in layers]
        try:
            for layer in layers:
                for k, v in attrs.items():
                    setattr(layer, k, v)
            yield
        finally:
            for layer, old in zip(layers, saved):
                for k, v in old.items():
                    setattr(layer, k, v)

    def run(self, backward, backward_options, forward_overrides=None):
        attrs = {"backward_method": backward, "backward_options": dict(backward_options)}
        attrs.update(forward_overrides or {})
        with self._configured(self.layers, **attrs):
            loss = self.task.loss(self.model, self.batch)
        return Run(loss=loss, stats=[layer.last_stats for layer in self.layers])

    def reference(self):
        """Float64 gradient with the forward of :data:`REFERENCE_FORWARDS` that solves best.

        Anderson first; when its solve is not clean (it diverges on some trained models whose
        Picard iteration converges, e.g. Bibtex FPI_NN trained with a Picard forward), Picard
        is tried and the better of the two is kept; the note says which was used and why.
        """
        tried = []  # (severity, forward, grads or None, status or failure)
        with self._float64() as (model, batch, layers, params):
            for forward in REFERENCE_FORWARDS:
                grads, status = self._reference_gradient(model, batch, layers, params, forward)
                severity = _SEVERITY.get(status, len(_SEVERITY)) if grads is not None else len(_SEVERITY) + 1
                tried.append((severity, forward, grads, status))
                if severity == 0:
                    break
        severity, forward, grads, status = min(tried, key=lambda t: t[0])
        if grads is None:
            return None, f"reference gradient failed ({status[:200]})"
        note = "" if status == "ok" else f"reference solve {status} (float64, tol {self.ref_tol})"
        if forward != REFERENCE_FORWARDS[0]:
            _, first, first_grads, first_status = tried[0]
            why = first_status if first_grads is not None else "failed"
            note = "; ".join(filter(None, [f"reference forward {forward} ({first} {why})", note]))
        return self._stored(grads), note

    def unrolled_reference(self) -> Tuple[Optional[List[torch.Tensor]], str]:
        """Float64 gradient of the computation the layers run as configured — their forward
        solver, tolerance and cap — differentiated by unrolling its iterations.

        Where the forward stops at its cap, x̂ is not a fixed point and this, not the implicit
        gradient (I − ∂g/∂x)⁻ᵀ…, is the derivative of what the model outputs.
        """
        try:
            with self._float64() as (model, batch, layers, params):
                with self._configured(layers, backward_method="unroll", backward_options={}):
                    loss = self.task.loss(model, batch)
                    grads = torch.autograd.grad(loss, params, allow_unused=True)
        except (RuntimeError, ValueError) as exc:
            return None, f"unrolled reference failed ({type(exc).__name__}: {exc})"[:300]
        if not all(g is None or bool(torch.isfinite(g).all()) for g in grads):
            return None, "unrolled reference non-finite"
        return self._stored(grads), ""

    @contextlib.contextmanager
    def _float64(self):
        """(model, batch, FPI layers, parameters) as float64 copies, with float64 the default dtype."""
        from ..tasks import fpi_layers

        model = copy.deepcopy(self.model).double()
        params = [p for p in model.parameters() if p.requires_grad]
        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            yield model, _floating_to(self.batch, torch.float64), fpi_layers(model), params
        finally:
            torch.set_default_dtype(default)

    def _stored(self, grads):
        """Reference gradients in the dtype of the problem's parameters (zeros for unused ones)."""
        return [(g if g is not None else torch.zeros_like(p)).to(p.dtype) for g, p in zip(grads, self.params)]

    def _reference_gradient(self, model, batch, layers, params, forward):
        """(gradients, solve status) with ``forward`` and an exact adjoint, or (None, failure)."""
        from ..errors import JacobianTooLargeError

        failure = ""
        for backward in ("jacobian_inverse", "gmres"):
            opts = {"memory_budget": self.ref_memory} if backward == "jacobian_inverse" else {"tol": self.ref_tol, "max_iter": 1000}
            attrs = dict(forward_method=forward, tol=self.ref_tol, max_iter=self.ref_max_iter,
                         forward_options={"criterion": "relative"}, backward_method=backward, backward_options=opts)
            try:
                with self._configured(layers, **attrs):
                    loss = self.task.loss(model, batch)
                    grads = torch.autograd.grad(loss, params, allow_unused=True)
            except (JacobianTooLargeError, torch.linalg.LinAlgError, RuntimeError, ValueError) as exc:
                # too large, I − J singular, lu_solve refusing the factorisation (its "pivots"
                # error), or a loss rejecting a NaN solve (BCE's "between 0 and 1"): the next
                # method is tried; the message is kept and reported if every one fails
                failure = f"{forward} forward, {backward}: {type(exc).__name__}: {exc}"
                continue
            if not all(g is None or bool(torch.isfinite(g).all()) for g in grads):
                failure = f"{forward} forward, {backward}: non-finite gradient"
                continue
            return grads, solve_status([layer.last_stats for layer in layers])
        return None, failure
