"""asv benchmarks on the ``contractive_tanh`` probe: forward solver × gradient method × size/contraction.

g(x) = tanh(Wx + Uz + b), ‖W‖₂ = k, float32, a batch of 16 problems of dimension ``dim``;
L = ⟨v, x̂⟩, exact gradients from the probe's reference (Jeon, Lee & Choi 2021, eq. 10).

* ``ProbeForward`` (forward × dim × k × device): ``time_forward`` — the forward solve alone
  (no graph); ``peakmem_forward``; ``track_forward_iterations``.
* ``ProbeGradient`` (forward × gradient method × dim, k = 0.9): ``time_forward`` — the forward
  with the graph recorded, what a training step pays (unrolling records every iteration);
  ``peakmem_forward_backward``.
* ``ProbeBackward`` (forward × gradient method × dim × device, k = 0.9): ``time_backward`` —
  only the backward; ``setup`` builds a fresh forward graph before every timed call
  (``number = 1``).
* ``ProbeTrack`` (gradient method × dim × k, forward by Anderson, CPU): gradient relative
  error against the exact reference, forward/backward iterations, VJP calls, bytes saved for
  backward (:func:`fpibench.saved_tensor_bytes`).  Deterministic numbers: measured once per
  case in ``setup_cache``, the ``track_*`` read them.
"""
from ._common import BACKWARD, DEVICES, FORWARD, ProbeCase, lookup, measure_probes, pin_threads, synchronize

DIMS = [64, 256]
KS = [0.5, 0.9]
K_GRADIENT = [0.9]
TRACK_FORWARD = "anderson"  # the tracked numbers barely depend on the forward solver (all reach tol)


class ProbeForward:
    params = (list(FORWARD), DIMS, KS, list(DEVICES))
    param_names = ["forward", "dim", "k", "device"]
    timeout = 120

    def setup(self, forward, dim, k, device):
        pin_threads()
        # the gradient method plays no part without a graph: any one will do
        self.case = ProbeCase(forward, "backward_fpi", dim, k, device=device)

    def time_forward(self, forward, dim, k, device):
        self.case.solve(graph=False)
        synchronize(device)

    def peakmem_forward(self, forward, dim, k, device):
        self.case.solve(graph=False)

    def track_forward_iterations(self, forward, dim, k, device):
        stats = self.case.solve(graph=False).stats.forward
        return float(stats.iterations.double().mean())

    track_forward_iterations.unit = "iterations"


class ProbeGradient:
    params = (list(FORWARD), list(BACKWARD), DIMS, K_GRADIENT)
    param_names = ["forward", "backward", "dim", "k"]
    timeout = 120

    def setup(self, forward, backward, dim, k):
        pin_threads()
        self.case = ProbeCase(forward, backward, dim, k)

    def time_forward(self, forward, backward, dim, k):
        self.case.solve()

    def peakmem_forward_backward(self, forward, backward, dim, k):
        self.case.gradients(self.case.solve())


class ProbeBackward:
    params = (list(FORWARD), list(BACKWARD), DIMS, K_GRADIENT, list(DEVICES))
    param_names = ["forward", "backward", "dim", "k", "device"]
    timeout = 120
    number = 1  # every timed backward needs the fresh graph that setup builds
    repeat = (3, 20, 10.0)

    def setup(self, forward, backward, dim, k, device):
        pin_threads()
        self.case = ProbeCase(forward, backward, dim, k, device=device)
        self.solution = self.case.solve()

    def time_backward(self, forward, backward, dim, k, device):
        self.case.gradients(self.solution)
        synchronize(device)


class ProbeTrack:
    params = (list(BACKWARD), DIMS, KS)
    param_names = ["backward", "dim", "k"]
    timeout = 600

    def setup_cache(self):
        return measure_probes(([TRACK_FORWARD], *self.params))

    def setup(self, grid, *params):
        self.result = lookup(grid, TRACK_FORWARD, *params)

    def track_gradient_error(self, grid, *params):
        return self.result["gradient_error"]

    track_gradient_error.unit = "relative error"

    def track_forward_iterations(self, grid, *params):
        return self.result["forward_iterations"]

    track_forward_iterations.unit = "iterations"

    def track_backward_iterations(self, grid, *params):
        return self.result["backward_iterations"]

    track_backward_iterations.unit = "iterations"

    def track_vjp_calls(self, grid, *params):
        return self.result["vjp_calls"]

    track_vjp_calls.unit = "VJP calls"

    def track_saved_bytes(self, grid, *params):
        return self.result["saved_bytes"]

    track_saved_bytes.unit = "bytes"
