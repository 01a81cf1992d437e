"""Shared set-up of the benchmark suites (asv and pytest-benchmark); defines no benchmark.

Probe cases use the ``contractive_tanh`` probe of :mod:`fpibench.tasks.probes`:
g(x) = tanh(Wx + Uz + b) with ‖W‖₂ = k, solved by :func:`fpibench.fixed_point` and
differentiated for L = ⟨v, x̂⟩ (v a fixed random cotangent); ``reference(v)`` gives the
exact gradients (Jeon, Lee & Choi 2021, eq. 10: c = (I − ∂g/∂x)⁻ᵀ v, ∇θL = (∂g/∂θ)ᵀ c).

Task cases use the paper tasks' ``quick`` presets on the real data of the fpibench data
directory (``FPIBENCH_DATA``); they never download.  Cases that cannot run raise
``NotImplementedError`` from ``setup`` — asv's convention for a skipped benchmark:
a CUDA parameter without a GPU, a dense Jacobian over :data:`JACOBIAN_BUDGET`
(:class:`fpibench.JacobianTooLargeError`), data missing from the data directory.
"""
from __future__ import annotations

import itertools
import os
import warnings
from typing import Callable, Dict, Optional, Sequence

import torch

# torch imports torch._dynamo (and sympy, ~1 s) on the first backward through an
# autograd.Function and on the first optimiser: imported here, asv's forkserver pays it once
# instead of every forked benchmark process.
import torch._dynamo  # noqa: F401,E402

import fpibench
from fpibench.tasks import FPIConfig, fpi_layers

_METHODS = fpibench.available_methods()
FORWARD: tuple = tuple(sorted(_METHODS["forward"]))
BACKWARD: tuple = tuple(sorted(_METHODS["backward"]))
#: gradient methods that compute the implicit gradient exactly (up to their tolerance)
EXACT: tuple = tuple(name for name in BACKWARD if fpibench.BACKWARD.get(name).exact)
DEVICES = ("cpu", "cuda")

TOL = 1e-6
MAX_ITER = 500
BATCH = 16
#: bytes the dense ``jacobian_inverse`` may use here (3·B·N²·itemsize); bigger cases are skipped
JACOBIAN_BUDGET = 128 * 2**20

#: torch threads in a benchmark process: env FPIBENCH_BENCH_THREADS, default 1 (0: torch's default).
#: One thread keeps timings stable on a shared CPU, where OpenMP barriers between two busy
#: cores can make the same solve 10-100x slower.
THREADS = int(os.environ.get("FPIBENCH_BENCH_THREADS", "1"))

#: the data sets each task reads (fpibench.data.DATASETS names); box_constraint is generated
TASK_DATASETS: Dict[str, tuple] = {
    "box_constraint": (),
    "bibtex": ("bibtex",),
    "denoise": ("train400", "bsd68", "set12"),
    "optical_flow": ("train400", "flyingchairs_examples"),
}
#: samples in the single batch of the image tasks
IMAGE_BATCH = 2


def pin_threads() -> None:
    """Set torch's intra-op threads to :data:`THREADS` (asv runs each benchmark in its own process)."""
    if THREADS > 0:
        torch.set_num_threads(THREADS)


def require_device(device: str) -> None:
    """Skip (NotImplementedError) a CUDA case on a machine without a GPU."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise NotImplementedError(f"device {device!r} requested but no CUDA device is available")


def synchronize(device: str) -> None:
    """Wait for queued GPU work so a timer covers it (no-op on the CPU)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def skip_if_not_applicable(forward: str, backward: str, symmetric: bool) -> None:
    """Skip (NotImplementedError, as asv expects) a pair that does not apply: a method that
    needs a symmetric Jacobian (cg, minres) on a map without one, or one that reads the
    forward solver's inverse estimate (shine) after a forward that keeps none."""
    method = fpibench.BACKWARD.get(backward)
    if method.requires == "symmetric" and not symmetric:
        raise NotImplementedError(f"{backward} needs a symmetric Jacobian; this map's is not")
    try:
        fpibench.BACKWARD.create(backward, {}).check_forward(fpibench.FORWARD.create(forward, {}))
    except fpibench.OptionError as exc:
        raise NotImplementedError(str(exc)) from None


def backward_options(backward: str) -> dict:
    """Options of ``backward`` used by the suite: the dense method gets :data:`JACOBIAN_BUDGET`."""
    return {"memory_budget": JACOBIAN_BUDGET} if fpibench.BACKWARD.resolve(backward) == "jacobian_inverse" else {}


def skip_if_too_large(backward: str, x: torch.Tensor, options: Optional[dict] = None) -> None:
    """Skip when ``backward`` refuses the batch ``x`` up front (:class:`fpibench.JacobianTooLargeError`)."""
    method = fpibench.BACKWARD.create(backward, backward_options(backward) if options is None else options)
    try:
        method.check_size(x.reshape(x.shape[0], -1))
    except fpibench.JacobianTooLargeError as exc:
        raise NotImplementedError(str(exc)) from exc


def relative_error(estimate: Sequence[torch.Tensor], reference: Sequence[torch.Tensor]) -> float:
    """max over tensors of ‖ĝ − g‖ / ‖g‖ (a zero reference counts its absolute error)."""
    errors = []
    for est, ref in zip(estimate, reference, strict=True):
        ref = ref.to(est)
        scale = float(torch.linalg.vector_norm(ref)) or 1.0
        errors.append(float(torch.linalg.vector_norm(est - ref)) / scale)
    return max(errors)


class ProbeCase:
    """One ``contractive_tanh`` probe (float32, ``batch`` × ``dim``, ‖W‖₂ = ``k``) and how it is solved.

    ``solve()`` runs the forward fixed point with a graph; ``gradients(sol)`` the backward of
    L = ⟨v, x̂⟩; ``gradient_error(grads)`` compares with the probe's exact reference.
    """

    def __init__(self, forward: str, backward: str, dim: int, k: float, batch: int = BATCH,
                 device: str = "cpu", seed: int = 0, dtype: str = "float32"):
        require_device(device)
        skip_if_not_applicable(forward, backward, symmetric=False)  # contractive_tanh: J = diag(tanh′) W
        self.forward, self.backward, self.device = forward, backward, device
        self.options = backward_options(backward)
        # refuse an oversized dense Jacobian before building the probe (its set-up is O(dim³))
        skip_if_too_large(backward, torch.empty(batch, dim, dtype=getattr(torch, dtype), device="meta"), self.options)
        probe = fpibench.tasks.get("contractive_tanh", dim=dim, batch=batch, k=k, dtype=dtype, device=device)
        self.instance = probe.instance(seed)
        gen = torch.Generator().manual_seed(seed + 1)
        self.v = torch.randn(self.instance.x0.shape, generator=gen, dtype=torch.float64).to(self.instance.x0)
        self.leaves = list(self.instance.leaves.values())
        self._reference = None

    def solve(self, graph: bool = True) -> "fpibench.Solution":
        """x̂ = g(x̂) by the forward solver, attached for the gradient method when ``graph``
        (else under ``torch.no_grad``); warnings are silenced, the stats record failures."""
        with warnings.catch_warnings(), torch.set_grad_enabled(graph):
            warnings.simplefilter("ignore", fpibench.FixedPointWarning)
            return fpibench.fixed_point(self.instance.g, self.instance.x0, forward=self.forward,
                                        backward=self.backward, tol=TOL, max_iter=MAX_ITER,
                                        backward_options=self.options)

    def gradients(self, solution) -> tuple:
        """∇L w.r.t. the probe's leaves (W, U, b, z) for L = ⟨v, x̂⟩: the timed backward."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fpibench.FixedPointWarning)
            return torch.autograd.grad(solution.value, self.leaves, self.v)

    @property
    def reference(self) -> list:
        """The exact gradients (W, U, b, z), computed once (float64 Newton and dense solve)."""
        if self._reference is None:
            ref = self.instance.reference(self.v)
            self._reference = [ref[name] for name in self.instance.leaves]
        return self._reference

    @reference.setter
    def reference(self, value: list) -> None:
        self._reference = list(value)

    def gradient_error(self, grads) -> float:
        """max over leaves of the relative error against the exact gradient."""
        return relative_error(grads, self.reference)

    def measure(self) -> dict:
        """One forward (bytes saved for backward counted) and one backward; all the tracked numbers."""
        with fpibench.saved_tensor_bytes() as saved:
            solution = self.solve()
        grads = self.gradients(solution)
        synchronize(self.device)
        fwd, bwd = solution.stats.forward.summary(), solution.stats.backward.summary()
        return {
            "forward_iterations": fwd["iterations_mean"],
            "forward_residual": fwd["residual_max"],
            "forward_status": fwd["status"],
            "backward_iterations": bwd["iterations_mean"],
            "backward_residual": bwd["residual_max"],
            "vjp_calls": bwd["vjp_calls"],
            "saved_bytes": saved.bytes,
            "gradient_error": self.gradient_error(grads),
        }


def measure_grid(params: Sequence[Sequence], measure: Callable[..., dict]) -> dict:
    """{parameter tuple: ``measure(*params)``} over the grid, for an asv ``setup_cache``.

    A case that raises NotImplementedError is stored as ``("skip", message)``, any other
    failure as ``("error", message)``; :func:`lookup` turns them back into a skip / failure
    of that case alone.
    """
    pin_threads()
    out: dict = {}
    for combo in itertools.product(*params):
        try:
            out[combo] = measure(*combo)
        except NotImplementedError as exc:
            out[combo] = ("skip", str(exc))
        except Exception as exc:  # noqa: BLE001 - reported for this case by lookup()
            out[combo] = ("error", f"{type(exc).__name__}: {exc}")
    return out


def lookup(grid: dict, *combo) -> dict:
    """The measurement of ``combo`` from :func:`measure_grid`; raises for skipped / failed cases."""
    value = grid[combo]
    if isinstance(value, tuple):
        kind, message = value
        if kind == "skip":
            raise NotImplementedError(message)
        raise RuntimeError(f"measuring {combo} failed: {message}")
    return value


def measure_probes(params: Sequence[Sequence]) -> dict:
    """:func:`measure_grid` of :meth:`ProbeCase.measure` over (forward, backward, dim, k);
    the exact reference, which depends only on (dim, k), is computed once per (dim, k)."""
    references: dict = {}

    def measure(forward, backward, dim, k):
        case = ProbeCase(forward, backward, dim, k)
        if (dim, k) not in references:
            references[(dim, k)] = case.reference
        case.reference = references[(dim, k)]
        return case.measure()

    return measure_grid(params, measure)


# -- paper tasks ---------------------------------------------------------------------
def missing_data(task: str) -> Optional[str]:
    """Why ``task`` cannot run from the data directory (a message), or None when its files are there."""
    root = fpibench.data.data_dir()
    for dataset in TASK_DATASETS[task]:
        missing = [e.path for e in fpibench.data.dataset_files(dataset) if not (root / e.path).is_file()]
        if missing:
            return (f"task {task!r}: {len(missing)} file(s) of data set {dataset!r} missing under the data "
                    f"directory {root} (first: {missing[0]}); set FPIBENCH_DATA to a directory that has "
                    f"them (benchmarks never download)")
    return None


def task_batches(tasks: Sequence[str] = tuple(TASK_DATASETS)) -> dict:
    """{task: one training batch of its quick preset, or why it is skipped} (an asv ``setup_cache``).

    The image tasks keep only the first :data:`IMAGE_BATCH` samples of their first batch
    (a single small batch).
    """
    pin_threads()
    out = {}
    for task in tasks:
        reason = missing_data(task)
        if reason is not None:
            out[task] = reason
            continue
        batch = fpibench.tasks.get(task, preset="quick").probe_batch(0)
        if task in ("denoise", "optical_flow"):
            batch = tuple(t[:IMAGE_BATCH].clone() for t in batch)
        out[task] = batch
    return out


class TaskCase:
    """One train step of ``task`` (quick preset) with ``model`` differentiated by ``backward``."""

    def __init__(self, batch, task: str, model: str, backward: str, forward: str = "anderson", seed: int = 0):
        if isinstance(batch, str):
            raise NotImplementedError(batch)
        skip_if_not_applicable(forward, backward, symmetric=model == "fpi_gd")  # FPI_GD: J = I − η∇²E
        self.task = fpibench.tasks.get(task, preset="quick")
        fpi = FPIConfig(forward=forward, backward=backward, backward_options=backward_options(backward))
        self.model = self.task.build_model(model, fpi, seed=seed)
        self.optimizer = self.task.optimizer(self.model)
        self.batch = batch
        if fpibench.BACKWARD.resolve(backward) == "jacobian_inverse":
            # the dense method refuses an oversized Jacobian before allocating it: a skip
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore", fpibench.FixedPointWarning)
                try:
                    self.task.loss(self.model, batch)
                except fpibench.JacobianTooLargeError as exc:
                    raise NotImplementedError(str(exc)) from exc

    def train_step(self) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fpibench.FixedPointWarning)
            return self.task.train_step(self.model, self.optimizer, self.batch)

    def measure(self) -> dict:
        """The loss's forward and backward: the FPI layer's iterations and VJPs, and the bytes the
        whole model's forward saves for backward."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fpibench.FixedPointWarning)
            with fpibench.saved_tensor_bytes() as saved:
                loss = self.task.loss(self.model, self.batch)
            loss.backward()
        stats = fpi_layers(self.model)[0].last_stats
        fwd, bwd = stats.forward.summary(), stats.backward.summary()
        return {
            "forward_iterations": fwd["iterations_mean"],
            "backward_iterations": bwd["iterations_mean"],
            "vjp_calls": bwd["vjp_calls"],
            "saved_bytes": saved.bytes,
        }


def measure_tasks(params: Sequence[Sequence]) -> dict:
    """:func:`measure_grid` of :meth:`TaskCase.measure` over (task, model, backward)."""
    batches = task_batches(sorted(set(params[0])))
    return measure_grid(params, lambda task, model, backward: TaskCase(batches[task], task, model, backward).measure())
