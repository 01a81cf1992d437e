"""Core behaviour: gradcheck, dtypes, devices, memory, statuses, errors, layers, registry."""
import warnings

import pytest
import torch

import fpibench
from fpibench import _iterate
from helpers import energy_problem, linear_problem, probe_vector, rel_err, tanh_problem

DT = torch.float64
EXACT = ["unroll", "jacobian_inverse", "backward_fpi", "neumann", "anderson", "broyden", "gmres"]


def tanh_fn(method, d=3, batch=2, k=0.6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(d, d, generator=gen, dtype=DT)
    w = k * w / torch.linalg.matrix_norm(w, 2)
    u = torch.randn(d, d, generator=gen, dtype=DT)
    opts = {"terms": 200} if method == "neumann" else ({"tol": 1e-13, "max_iter": 500} if method in ("backward_fpi", "anderson", "broyden", "gmres") else {})

    def fn(W, z):
        return fpibench.fixed_point(lambda x: torch.tanh(x @ W.T + z @ u.T), torch.zeros(batch, d, dtype=DT),
                                    forward="anderson", backward=method, tol=1e-13, max_iter=500, backward_options=opts).value

    z = torch.randn(batch, d, generator=gen, dtype=DT)
    return fn, (w.clone().requires_grad_(), z.requires_grad_())


@pytest.mark.parametrize("method", EXACT)
def test_gradcheck(method):
    fn, inputs = tanh_fn(method)
    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize("method", ["backward_fpi", "jacobian_inverse", "anderson", "gmres", "broyden", "unroll"])
def test_gradgradcheck(method):
    fn, inputs = tanh_fn(method)
    assert torch.autograd.gradgradcheck(fn, inputs, atol=1e-6)


def test_gradgradcheck_through_an_energy_layer():
    """FPI_GD: g contains a gradient, so second derivatives of the layer need third derivatives of E."""
    problem = energy_problem(d=3, hidden=4, batch=2)
    W1, W2, b, z = (problem.leaves[k].detach() for k in ("W1", "W2", "b", "z"))

    def fn(w1, zz):
        def energy(x, q):
            return 0.5 * (x**2).sum(-1) + torch.nn.functional.softplus(x @ w1.T + q @ W2.T + b).sum(-1) / 4

        g = lambda x: x - 0.3 * fpibench.energy_gradient(energy, x, zz)
        return fpibench.fixed_point(g, torch.zeros(2, 3, dtype=DT), backward="backward_fpi", tol=1e-13, max_iter=500,
                                    backward_options={"tol": 1e-13}).value

    inputs = (W1.clone().requires_grad_(), z.clone().requires_grad_())
    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs, atol=1e-6)


@pytest.mark.parametrize("forward", ["picard", "anderson", "broyden"])
@pytest.mark.parametrize("method", ["backward_fpi", "anderson", "gmres", "jacobian_inverse"])
def test_float32_gradients_are_close(forward, method):
    problem = tanh_problem(0.9, d=6, batch=4)
    v = probe_vector(problem.x0)
    ref = problem.reference(v)
    leaves32 = {k: t.detach().float().requires_grad_() for k, t in problem.leaves.items()}
    W, U, b, z = (leaves32[k] for k in ("W", "U", "b", "z"))
    sol = fpibench.fixed_point(lambda x: torch.tanh(x @ W.T + z @ U.T + b), torch.zeros(4, 6), forward=forward,
                               backward=method, tol=1e-6, max_iter=300, backward_options={"tol": 1e-7} if method != "jacobian_inverse" else None)
    assert sol.value.dtype == torch.float32
    grads = torch.autograd.grad(sol.value, [W, U, b, z], v.float())
    for (name, r), gr in zip(ref.items(), grads):
        assert gr.dtype == torch.float32
        assert rel_err(gr.double(), r) < 1e-3, name


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("method", EXACT + ["jfb", "phantom"])
def test_cuda_matches_cpu(method):
    problem = tanh_problem(0.9, d=6, batch=4)
    v = probe_vector(problem.x0)
    ref = problem.reference(v)
    leaves = {k: t.detach().cuda().requires_grad_() for k, t in problem.leaves.items()}
    W, U, b, z = (leaves[k] for k in ("W", "U", "b", "z"))
    sol = fpibench.fixed_point(lambda x: torch.tanh(x @ W.T + z @ U.T + b), torch.zeros(4, 6, dtype=DT, device="cuda"),
                               backward=method, tol=1e-12, max_iter=2000)
    grads = torch.autograd.grad(sol.value, [W, U, b, z], v.cuda())
    assert all(gr.device.type == "cuda" for gr in grads)
    if method not in ("jfb", "phantom"):
        for (name, r), gr in zip(ref.items(), grads):
            assert rel_err(gr.cpu(), r) < 1e-6, name


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("forward", ["picard", "anderson", "broyden"])
def test_cuda_solver_steps_do_not_synchronise(forward):
    """A solver step launches no host synchronisation (the loop's convergence test is the only one)."""
    x0 = torch.zeros(8, 32, device="cuda")
    w = torch.randn(32, 32, device="cuda") * 0.02
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.no_grad():
            solver = fpibench.FORWARD.create(forward, {})
            state = solver.init(lambda x: torch.tanh(x @ w), x0)
            for _ in range(5):
                state = solver.step(lambda x: torch.tanh(x @ w), state)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("check_every,expected", [(1, 40), (5, 8), (40, 1)])
def test_convergence_test_is_the_only_sync_and_runs_every_k_iterations(monkeypatch, check_every, expected):
    calls = []
    real = _iterate.host_any
    monkeypatch.setattr(_iterate, "host_any", lambda m: calls.append(1) or real(m))
    problem = linear_problem(k=0.99)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fpibench.FixedPointWarning)
        sol = fpibench.fixed_point(problem.g, problem.x0, forward="picard", tol=1e-300, max_iter=40,
                                   forward_options={"check_every": check_every, "rounding_floor": False})
    assert len(calls) == expected
    assert int(sol.stats.forward.iterations.max()) == 40


def _saved_bytes(method, iters):
    problem = linear_problem(d=64, batch=8, k=0.999)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fpibench.FixedPointWarning)
        with fpibench.saved_tensor_bytes() as saved:
            sol = fpibench.fixed_point(problem.g, problem.x0, forward="picard", backward=method, tol=1e-300, max_iter=iters,
                                       forward_options={"rounding_floor": False})
    assert int(sol.stats.forward.iterations.max()) == iters
    return saved.bytes


def test_backward_fpi_memory_does_not_grow_with_forward_iterations():
    ratio = _saved_bytes("backward_fpi", 200) / _saved_bytes("backward_fpi", 10)
    assert ratio <= 1.05, ratio


def test_unroll_memory_grows_linearly_with_forward_iterations():
    b10, b20, b200 = (_saved_bytes("unroll", n) for n in (10, 20, 200))
    per_iter = (b20 - b10) / 10
    assert per_iter > 0
    assert abs((b200 - b10) / 190 - per_iter) / per_iter < 0.05  # linear
    assert per_iter >= 8 * 64 * 8  # at least one (B, N) float64 iterate per step
    assert b200 / b10 > 5


def test_not_converged_is_reported_per_sample_and_strict_raises():
    problem = linear_problem(k=0.99)
    with pytest.warns(fpibench.FixedPointWarning, match="not_converged"):
        sol = fpibench.fixed_point(problem.g, problem.x0, forward="picard", tol=1e-10, max_iter=5)
    assert sol.stats.forward.status == ["not_converged"] * 3
    with pytest.raises(fpibench.FixedPointError, match="not_converged"):
        fpibench.fixed_point(problem.g, problem.x0, forward="picard", tol=1e-10, max_iter=5, strict=True)


def test_divergence_and_nan_are_reported_per_sample():
    A = torch.eye(3, dtype=DT) * 0.5
    scale = torch.tensor([1.0, 3.0, 1.0], dtype=DT)[:, None]  # sample 1 is expansive
    z = torch.ones(3, 3, dtype=DT)
    with pytest.warns(fpibench.FixedPointWarning):
        sol = fpibench.fixed_point(lambda x: scale * (x @ A.T) + z, torch.zeros(3, 3, dtype=DT), forward="picard", tol=1e-10, max_iter=300)
    assert sol.stats.forward.status[0] == "converged"
    assert sol.stats.forward.status[1] in ("diverged", "nonfinite")
    assert sol.stats.forward.status[1] == "diverged"

    def g_nan(x):
        out = 0.5 * x + 1
        return torch.cat([out[:1], out[1:2] * float("nan"), out[2:]])

    with pytest.warns(fpibench.FixedPointWarning, match="nonfinite"):
        sol = fpibench.fixed_point(g_nan, torch.zeros(3, 2, dtype=DT), forward="anderson", tol=1e-10, max_iter=100)
    assert sol.stats.forward.status == ["converged", "nonfinite", "converged"]
    assert torch.allclose(sol.value[0], torch.full((2,), 2.0, dtype=DT))


def test_per_sample_convergence_and_batch_off():
    problem = tanh_problem(0.9, batch=3)
    problem.leaves["z"].data[0] *= 0  # sample 0 is easier
    sol = fpibench.fixed_point(problem.g, problem.x0, forward="picard", tol=1e-10, max_iter=500)
    its = sol.stats.forward.iterations
    assert its.shape == (3,) and len(set(its.tolist())) > 1
    single = fpibench.fixed_point(problem.g, problem.x0, forward="picard", tol=1e-10, max_iter=500, batch=False)
    assert single.stats.forward.iterations.shape == (1,)
    # one criterion on the whole tensor: it stops with the slowest sample, give or take a step
    assert abs(int(single.stats.forward.iterations[0]) - int(its.max())) <= 2
    assert torch.allclose(single.value, sol.value, atol=1e-8)


def test_backward_not_converged_warns_and_records_and_strict_raises():
    problem = tanh_problem(0.99)
    v = probe_vector(problem.x0)
    sol = fpibench.fixed_point(problem.g, problem.x0, tol=1e-12, max_iter=3000, backward_options={"tol": 1e-12, "max_iter": 3})
    with pytest.warns(fpibench.FixedPointWarning, match="backward solve"):
        torch.autograd.grad(sol.value, problem.leaves["W"], v)
    assert sol.stats.backward.status == ["not_converged"] * 3
    assert int(sol.stats.backward.iterations.max()) == 3 and sol.stats.backward.vjp_calls == 3
    sol = fpibench.fixed_point(problem.g, problem.x0, tol=1e-12, max_iter=3000, strict=True, backward_options={"tol": 1e-12, "max_iter": 3})
    with pytest.raises(fpibench.FixedPointError, match="backward solve"):
        torch.autograd.grad(sol.value, problem.leaves["W"], v)


def test_backward_divergence_is_not_silent():
    """An expansive Jacobian at the fixed point: the backward FPI diverges, we say so."""
    W = (torch.eye(3, dtype=DT) * 1.5).requires_grad_()
    z = torch.ones(2, 3, dtype=DT)
    # an affine map whose fixed point Anderson finds, but whose Jacobian 1.5·I makes c ← Jᵀc + v diverge
    g = lambda x: x @ W.T - z
    sol = fpibench.fixed_point(g, torch.zeros(2, 3, dtype=DT), forward="anderson", tol=1e-12, max_iter=100)
    with pytest.warns(fpibench.FixedPointWarning, match="diverged"):
        grad = torch.autograd.grad(sol.value.sum(), W)[0]
    assert sol.stats.backward.status == ["diverged", "diverged"]
    assert grad.abs().max() > 0  # never a silent zero


def test_rounding_plateau_then_small_move_is_not_divergence():
    """float32: steps at rounding level (~1e-7·‖x‖) then one move of 1e-3·‖x‖ is a stall, not a blow-up."""
    target = torch.ones(2, 8)
    calls = {"n": 0}

    def g(x):
        calls["n"] += 1
        jitter = 1e-7 if calls["n"] < 20 else 1e-3  # rounding-level plateau, then a small swing
        sign = 1.0 if calls["n"] % 2 else -1.0
        return target * (1 + sign * jitter)

    with pytest.warns(fpibench.FixedPointWarning, match="not_converged"):
        sol = fpibench.fixed_point(g, torch.zeros(2, 8), forward="picard", tol=1e-12, max_iter=25)
    assert sol.stats.forward.status == ["not_converged"] * 2
    assert int(sol.stats.forward.iterations.max()) == 25  # it was not stopped early as a blow-up


def test_backward_inherits_and_overrides_divergence_factor():
    W = (torch.eye(3, dtype=DT) * 1.5).requires_grad_()
    z = torch.ones(2, 3, dtype=DT)
    g = lambda x: x @ W.T - z
    # the forward's factor is inherited: with a huge one the growing backward runs to max_iter
    sol = fpibench.fixed_point(g, torch.zeros(2, 3, dtype=DT), forward="anderson", tol=1e-12, max_iter=60,
                               forward_options={"divergence_factor": 1e300})
    with pytest.warns(fpibench.FixedPointWarning):
        torch.autograd.grad(sol.value.sum(), W)
    assert int(sol.stats.backward.iterations.max()) == 60
    # and a backward option overrides it
    sol = fpibench.fixed_point(g, torch.zeros(2, 3, dtype=DT), forward="anderson", tol=1e-12, max_iter=60,
                               forward_options={"divergence_factor": 1e300}, backward_options={"divergence_factor": 10.0})
    with pytest.warns(fpibench.FixedPointWarning, match="diverged"):
        torch.autograd.grad(sol.value.sum(), W)
    assert int(sol.stats.backward.iterations.max()) < 60 and sol.stats.backward.status == ["diverged"] * 2


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"forward": "newton"}, fpibench.UnknownMethodError, "valid names: anderson, broyden, picard"),
        ({"backward": "magic"}, fpibench.UnknownMethodError, "backward_fpi"),
        ({"tol": 0.0}, fpibench.OptionError, "tol must be"),
        ({"tol": -1.0}, fpibench.OptionError, "tol must be"),
        ({"max_iter": 0}, fpibench.OptionError, "max_iter must be"),
        ({"forward_options": {"m": 0}}, fpibench.OptionError, "anderson.*option m must be"),
        ({"forward_options": {"window": 3}}, fpibench.OptionError, "does not take option.*'window'.*takes: beta, lam, m"),
        ({"backward": "neumann", "backward_options": {"tol": 1e-3}}, fpibench.OptionError, "neumann.*does not take.*'tol'"),
        ({"backward": "phantom", "backward_options": {"steps": 0}}, fpibench.OptionError, "steps must be"),
        ({"backward": "anderson", "backward_options": {"m": 0}}, fpibench.OptionError, "gradient method 'anderson'.*option m must be"),
        ({"backward": "jfb", "backward_options": {"steps": 2}}, fpibench.OptionError, "jfb.*does not take"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    problem = linear_problem()
    with pytest.raises(error, match=match):
        fpibench.fixed_point(problem.g, problem.x0, **kwargs)


def test_bad_inputs_raise_clear_errors():
    problem = linear_problem()
    with pytest.raises(ValueError, match="returned shape"):
        fpibench.fixed_point(lambda x: x[:, :2], problem.x0)
    with pytest.raises(TypeError, match="dtype"):
        fpibench.fixed_point(lambda x: x.float(), problem.x0)
    with pytest.raises(TypeError, match="floating-point"):
        fpibench.fixed_point(problem.g, torch.zeros(3, 5, dtype=torch.long))
    bad = problem.x0.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        fpibench.fixed_point(problem.g, bad)
    with pytest.raises(TypeError, match="callable"):
        fpibench.fixed_point("g", problem.x0)


def test_jacobian_inverse_refuses_up_front_with_the_size_it_needs():
    calls = []
    with pytest.raises(fpibench.JacobianTooLargeError, match=r"would need 9\.0 GiB \(9663676416 bytes\)") as info:
        fpibench.fixed_point(lambda x: calls.append(1) or 0.5 * x, torch.zeros(12, 8192),
                             backward="jacobian_inverse", backward_options={"memory_budget": 2**30})
    assert info.value.required_bytes == 3 * 12 * 8192 * 8192 * 4
    assert calls == []  # refused before any work


def test_fixed_point_layer_trains_and_records_stats():
    torch.manual_seed(0)

    class G(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(8, 4)
            with torch.no_grad():
                self.lin.weight.mul_(0.3)

        def forward(self, x, z):
            return torch.tanh(self.lin(torch.cat([x, z], dim=1)))

        def init_state(self, z):
            return z.new_zeros(z.shape[0], 4)

    layer = fpibench.FixedPointLayer(G(), forward="anderson", backward="backward_fpi", tol=1e-6)
    z = torch.randn(64, 4)
    target = torch.tanh(z.flip(1)) * 0.5
    opt = torch.optim.Adam(layer.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = ((layer(z) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
    assert layer.last_stats.backward is not None and layer.last_stats.forward.converged


def test_energy_step_layer_matches_reference():
    problem = energy_problem()
    v = probe_vector(problem.x0)
    ref = problem.reference(v)
    W1, W2, b, z = (problem.leaves[k] for k in ("W1", "W2", "b", "z"))

    class Energy(torch.nn.Module):
        def forward(self, x, zz):
            return 0.5 * (x**2).sum(-1) + torch.nn.functional.softplus(x @ W1.T + zz @ W2.T + b).sum(-1) / 6

    layer = fpibench.FixedPointLayer(fpibench.EnergyStep(Energy(), 0.3), tol=1e-13, max_iter=500, backward_options={"tol": 1e-13})
    out = layer(z)
    grads = torch.autograd.grad(out, [W1, W2, b, z], v)
    for (name, r), gr in zip(ref.items(), grads):
        assert rel_err(gr, r) < 1e-6, name


def test_available_methods_lists_every_method_with_options():
    methods = fpibench.available_methods()
    assert set(methods["forward"]) == {"picard", "anderson", "broyden"}
    assert {"unroll", "jacobian_inverse", "backward_fpi", "neumann", "anderson", "broyden", "gmres", "jfb", "phantom"} <= set(methods["backward"])
    defaults = {kind: {name: {k: v["default"] for k, v in opts.items()} for name, opts in entries.items()}
                for kind, entries in methods.items()}
    assert defaults["backward"]["neumann"] == {"terms": 20}
    assert defaults["backward"]["phantom"] == {"steps": 5, "damping": 0.5}
    assert {"tol", "max_iter"} <= set(defaults["backward"]["backward_fpi"])
    assert {"m": 5, "beta": 1.0, "lam": 1e-4}.items() <= defaults["forward"]["anderson"].items()
    assert fpibench.BACKWARD.resolve("rbp") == "backward_fpi"


def test_third_party_solvers_register_through_entry_points(monkeypatch):
    from dataclasses import dataclass

    from fpibench import _registry

    @dataclass
    class HalfStep(fpibench.FixedPointSolver):
        name = "halfstep"

        def step(self, f, state):
            state.x = 0.5 * (state.x + f(state.x))
            return state

    class FakeEntryPoint:
        name = "halfstep"

        def load(self):
            return lambda: fpibench.register_forward("halfstep")(HalfStep)

    monkeypatch.setattr(_registry, "_plugins_loaded", False)
    monkeypatch.setattr(_registry.metadata, "entry_points", lambda group=None: [FakeEntryPoint()] if group == _registry.ENTRY_POINT_GROUP else [])
    try:
        assert "halfstep" in fpibench.available_methods()["forward"]
        problem = linear_problem()
        sol = fpibench.fixed_point(problem.g, problem.x0, forward="halfstep", tol=1e-10, max_iter=2000)
        assert sol.stats.forward.converged
    finally:
        _registry.FORWARD._classes.pop("halfstep", None)


@pytest.mark.parametrize("case", ["converge", "diverge_and_nan", "fixed_steps", "check_every", "absolute"])
def test_device_bookkeeping_matches_host_bookkeeping(case, monkeypatch):
    """The torch ledger (used on accelerators) and the numpy ledger (CPU) decide alike."""
    import fpibench._iterate as iterate_module

    scale = torch.tensor([0.5, 1.5, 0.9, 0.7], dtype=DT)[:, None]  # sample 1 is expansive

    def g(x):
        out = scale * x + 1
        return torch.cat([out[:3], out[3:] * (float("nan") if case == "diverge_and_nan" else 1.0)])

    kwargs = {"converge": dict(tol=1e-10, max_iter=300), "diverge_and_nan": dict(tol=1e-10, max_iter=300),
              "fixed_steps": dict(tol=None, max_iter=40), "check_every": dict(tol=1e-10, max_iter=300, check_every=7),
              "absolute": dict(tol=1e-8, max_iter=300, criterion="absolute")}[case]
    if case == "converge":
        scale = scale.clamp(max=0.9)

    def solve():
        control = iterate_module.IterationControl(**kwargs)
        return iterate_module.iterate(fpibench.FORWARD.create("picard"), g, torch.zeros(4, 3, dtype=DT), control)

    x_host, host = solve()
    monkeypatch.setattr(iterate_module, "_HOST_DTYPES", {})
    x_dev, dev = solve()
    assert host.status == dev.status
    assert torch.equal(host.iterations, dev.iterations)
    assert torch.allclose(host.residual, dev.residual, equal_nan=True)
    assert torch.allclose(host.residual_trace, dev.residual_trace, equal_nan=True)
    assert torch.allclose(x_host, x_dev, equal_nan=True)
    if case == "diverge_and_nan":
        assert host.status[1] == "diverged" and host.status[3] == "nonfinite" and host.status[0] == "converged"
    if case == "fixed_steps":
        # fixed steps claim nothing, except that sample 1's (expansive, x 1.5 per step) grew
        assert host.status == ["fixed_steps", "diverged", "fixed_steps", "fixed_steps"] and host.iterations.tolist() == [40] * 4


def test_broyden_residual_stopping_rule_stops_on_the_returned_points_residual():
    problem = tanh_problem(0.9)
    opts = {"criterion": "absolute"}
    with torch.no_grad():
        step = fpibench.fixed_point(problem.g, problem.x0, forward="broyden", tol=1e-8, max_iter=200, forward_options=opts)
        resid = fpibench.fixed_point(problem.g, problem.x0, forward="broyden", tol=1e-8, max_iter=200,
                                     forward_options={**opts, "stop_on": "residual"})
        true_residual = torch.linalg.vector_norm(problem.g(resid.value) - resid.value, dim=1)
    assert resid.stats.forward.status == ["converged"] * problem.x0.shape[0]
    assert (true_residual < 1e-8).all()
    # the loop's own point (fixed_point returns g of it): its recorded residual is its true one
    control = fpibench.IterationControl(tol=1e-8, max_iter=200, criterion="absolute")
    with torch.no_grad():
        x, stats = fpibench.iterate(fpibench.FORWARD.create("broyden", {"stop_on": "residual"}), problem.g, problem.x0, control)
        at_x = torch.linalg.vector_norm(problem.g(x) - x, dim=1)
    assert torch.allclose(stats.residual, at_x, rtol=1e-6, atol=1e-14)
    assert int(resid.stats.forward.iterations.max()) <= int(step.stats.forward.iterations.max())
    with pytest.raises(fpibench.OptionError, match="stop_on"):
        fpibench.fixed_point(problem.g, problem.x0, forward="broyden", forward_options={"stop_on": "both"})


def test_inference_solve_calls_g_only_in_the_solver():
    """Under no_grad nothing is attached: g runs exactly the solver's nfev times, no graph is built."""
    problem = tanh_problem(0.9)
    calls = {"n": 0, "graph": 0}

    def g(x):
        calls["n"] += 1
        calls["graph"] += torch.is_grad_enabled()
        return problem.g(x)

    with torch.no_grad():
        sol = fpibench.fixed_point(g, problem.x0, forward="picard", backward="backward_fpi", tol=1e-10, max_iter=500)
    assert calls["n"] == sol.stats.forward.nfev and calls["graph"] == 0
    assert not sol.value.requires_grad
    residual = torch.linalg.vector_norm(problem.g(sol.value) - sol.value, dim=1)
    assert (residual <= 1e-9 * torch.linalg.vector_norm(sol.value, dim=1) + 1e-12).all()


class _SwingingSolver(fpibench.FixedPointSolver):
    """Steps shrink to 1e-6, swing once to 10 (a quasi-Newton excursion), then land on the point."""

    name = "swing"

    def step(self, f, state):
        state.k = getattr(state, "k", 0) + 1
        offset = {8: 10.0}.get(state.k, 0.0 if state.k > 8 else 10.0 ** -state.k)
        state.x = torch.ones_like(state.x) + offset
        return state


@pytest.mark.parametrize("stops_on_growth,expected", [(True, "diverged"), (False, "converged")])
def test_quasi_newton_solvers_are_not_stopped_for_a_swing(stops_on_growth, expected):
    solver = _SwingingSolver()
    solver.stops_on_growth = stops_on_growth
    control = fpibench.IterationControl(tol=1e-9, max_iter=50, criterion="absolute")
    x, stats = fpibench.iterate(solver, lambda x: x, torch.zeros(2, 3, dtype=DT), control)
    assert stats.status == [expected] * 2
    assert fpibench.FORWARD.create("anderson").stops_on_growth is False
    assert fpibench.FORWARD.create("broyden").stops_on_growth is False
    assert fpibench.FORWARD.create("picard").stops_on_growth is True


def test_a_sample_that_goes_nonfinite_keeps_its_last_finite_iterate():
    calls = {"n": 0}

    def g(x):
        calls["n"] += 1
        out = 0.5 * x + 1
        if calls["n"] >= 6:  # sample 1 blows up at the 6th call
            out = torch.cat([out[:1], out[1:2] * float("inf"), out[2:]])
        return out

    with pytest.warns(fpibench.FixedPointWarning, match="nonfinite"), torch.no_grad():  # the solver's own point
        sol = fpibench.fixed_point(g, torch.zeros(3, 2, dtype=DT), forward="picard", tol=1e-10, max_iter=200)
    assert sol.stats.forward.status == ["converged", "nonfinite", "converged"]
    assert torch.isfinite(sol.value).all()
    assert torch.allclose(sol.value[1], torch.full((2,), 2 - 2 * 0.5**5, dtype=DT))  # its 5th (last finite) iterate


@pytest.mark.parametrize("criterion", ["relative", "absolute"])
def test_tolerance_below_float32_resolution_stops_at_rounding_level(criterion):
    """tol 1e-10 cannot be met in float32 (the iterate cycles between neighbouring floats):
    with the rounding floor the solve stops once ‖Δx‖ ≤ ε‖x‖, converged, and the result and
    the backward-FPI gradient agree with the float64 closed form to float32 accuracy; with
    ``rounding_floor=False`` it runs to max_iter unconverged."""
    problem = linear_problem(d=32, batch=6, k=0.9)
    A, B, z = (problem.leaves[k].detach().float().requires_grad_() for k in ("A", "B", "z"))
    v = probe_vector(problem.x0)
    exact = problem.closed_form(v)

    def solve(floor):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fpibench.FixedPointWarning)
            sol = fpibench.fixed_point(lambda x: x @ A.T + z @ B.T, torch.zeros(6, 32), forward="picard",
                                       backward="backward_fpi", tol=1e-10, max_iter=1000,
                                       forward_options={"criterion": criterion, "rounding_floor": floor})
            grads = torch.autograd.grad(sol.value, [A, B, z], v.float())
        return sol, grads

    sol, grads = solve(True)
    fwd, bwd = sol.stats.forward, sol.stats.backward
    assert set(fwd.status) == {"converged"} and set(bwd.status) == {"converged"}
    assert int(fwd.iterations.max()) < 400 and int(bwd.iterations.max()) < 400
    eps = torch.finfo(torch.float32).eps
    assert float(fwd.residual.max()) <= (eps if criterion == "relative" else eps * float(sol.value.detach().norm(dim=1).max()))
    for name, grad in zip(("A", "B", "z"), grads):
        assert rel_err(grad.double(), exact[name]) < 1e-5, name

    sol, _ = solve(False)
    assert int(sol.stats.forward.iterations.min()) == 1000
    assert "converged" not in sol.stats.forward.status
    with pytest.raises(fpibench.OptionError, match="rounding_floor"):
        fpibench.fixed_point(lambda x: x @ A.T, torch.zeros(6, 32), forward_options={"rounding_floor": "yes"})


@pytest.mark.parametrize("m", [5, 30])
def test_broyden_keeps_converging_after_its_memory_is_full(m):
    """Overwriting the oldest pair (Bai et al.'s limited memory) made the residual on this probe
    grow from 1e-7 at step 50 to 5e21 at step 100; restarting from B = −I converges, in the
    forward solve and as the adjoint, with the memory refilled many times over (m = 5)."""
    from fpibench.tasks import get

    inst = get("quadratic_energy", preset="quick", k=0.9, dim=64, batch=16).instance(0)
    with torch.no_grad():
        sol = fpibench.fixed_point(inst.g, inst.x0, forward="broyden", tol=1e-13, max_iter=400, forward_options={"m": m})
        residual = torch.linalg.vector_norm(inst.g(sol.value) - sol.value, dim=1)
    assert sol.stats.forward.status == ["converged"] * 16 and (residual < 1e-11).all()
    assert int(sol.stats.forward.iterations.min()) > m  # the memory was full at least once
    v = torch.randn(inst.x0.shape, dtype=inst.x0.dtype, generator=torch.Generator().manual_seed(1))
    sol = fpibench.fixed_point(inst.g, inst.x0, forward="anderson", backward="broyden", tol=1e-13, max_iter=400,
                               backward_options={"m": m, "tol": 1e-13, "max_iter": 400})
    names = list(inst.leaves)
    grads = torch.autograd.grad((sol.value * v).sum(), [inst.leaves[n] for n in names])
    reference = inst.reference(v)
    for name, got in zip(names, grads):
        ref = reference[name]
        assert torch.allclose(got, ref, rtol=1e-8, atol=1e-10), name
    with pytest.raises(fpibench.OptionError, match="on_full"):
        fpibench.FORWARD.create("broyden", {"on_full": "drop"})
