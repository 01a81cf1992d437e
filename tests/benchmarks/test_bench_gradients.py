"""pytest-benchmark: every registered gradient method on the contractive_tanh probe.

Times only the backward of L = ⟨v, x̂⟩ through x̂ = g(x̂), g(x) = tanh(Wx + Uz + b),
‖W‖₂ = 0.9, float32, 16 problems of dimension 64, forward by Anderson: every round gets a
fresh forward graph from ``setup`` (``benchmark.pedantic``).  ``extra_info`` carries the
forward/backward iterations, residuals, VJP calls, bytes saved for backward and the
gradient's relative error against the probe's exact reference (Jeon, Lee & Choi 2021,
eq. 10).  With ``--benchmark-disable`` each test runs once and checks the gradient.
"""
import math

import pytest

import fpibench
from benchmarks._common import EXACT, ProbeCase

BACKWARD = sorted(fpibench.available_methods()["backward"])
FORWARD, DIM, K = "anderson", 64, 0.9
EXACT_TOL = 1e-4  # float32 with forward and adjoint tolerance 1e-6


@pytest.mark.benchmark(group="backward")
@pytest.mark.parametrize("backward", BACKWARD)
def test_gradient_method(benchmark, backward):
    try:
        case = ProbeCase(FORWARD, backward, DIM, K)
    except NotImplementedError as why:  # the pair does not apply (as asv skips it)
        pytest.skip(str(why))
    last = {}

    def fresh_graph():
        last["solution"] = case.solve()
        return (last["solution"],), {}

    grads = benchmark.pedantic(case.gradients, setup=fresh_graph, rounds=20, warmup_rounds=1)
    error = case.gradient_error(grads)
    measured = case.measure()  # one more forward + backward, with the bytes saved for backward
    stats = last["solution"].stats
    benchmark.extra_info.update(measured)
    benchmark.extra_info.update(forward=FORWARD, dim=DIM, k=K, gradient_error=error,
                                exact=backward in EXACT)

    assert stats.backward is not None and stats.backward.method == backward
    assert measured["forward_status"] == {"converged": int(stats.forward.iterations.numel())}
    assert math.isfinite(error)
    # the timed backward and an independent forward + backward agree (deterministic problem)
    assert abs(measured["gradient_error"] - error) <= 1e-3 * max(error, 1e-6) + 1e-6
    if backward in EXACT:
        assert error < EXACT_TOL, f"{backward}: relative gradient error {error:.2e}"
    else:  # truncated methods approximate the implicit gradient: better than no gradient at all
        assert error < 1.0, f"{backward}: relative gradient error {error:.2e}"
