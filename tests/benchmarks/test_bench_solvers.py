"""pytest-benchmark: every registered forward solver on the contractive_tanh probe.

Times the forward solve x̂ = g(x̂) alone (no graph) of g(x) = tanh(Wx + Uz + b), ‖W‖₂ = 0.9,
float32, 16 problems of dimension 64; ``extra_info`` carries the iterations and the final
residual.  With ``--benchmark-disable`` each test runs the solve once and checks it.
"""
import pytest
import torch

import fpibench
from benchmarks._common import TOL, ProbeCase

FORWARD = sorted(fpibench.available_methods()["forward"])
DIM, K = 64, 0.9


@pytest.mark.benchmark(group="forward-solve", min_rounds=5, max_time=0.5)
@pytest.mark.parametrize("forward", FORWARD)
def test_forward_solver(benchmark, forward):
    case = ProbeCase(forward, "backward_fpi", DIM, K)
    sol = benchmark(case.solve, graph=False)
    stats = sol.stats.forward
    benchmark.extra_info.update(
        dim=DIM, k=K, batch=int(stats.iterations.numel()),
        forward_iterations=float(stats.iterations.double().mean()),
        forward_iterations_max=int(stats.iterations.max()),
        forward_residual=float(stats.residual.max()),
        nfev=int(stats.nfev),
    )
    assert stats.status == ["converged"] * len(stats.status), stats.status
    assert float(stats.residual.max()) < TOL
    # the returned point is a fixed point of g, independently of the solver's own bookkeeping
    x = sol.value
    with torch.no_grad():
        step = torch.linalg.vector_norm(case.instance.g(x) - x, dim=1) / torch.linalg.vector_norm(x, dim=1)
    assert float(step.max()) < 10 * TOL
