"""asv wrapper of the torchdeq peer comparison (:mod:`fpibench.peer`): same problems,
shared stopping rule and runners, one library per parameter.

* ``PeerForward`` (problem × solver × library): ``time_forward`` — one forward solve to
  tol 1e-6 under the shared ``abs`` rule, no graph; ``track_iterations`` (calls of g);
  ``track_residual`` (max ‖g(x) − x‖ of the returned point, scored identically).
* ``PeerBackward`` (problem × method × library): ``track_backward_seconds`` — the backward
  alone (L = ⟨v, x̂⟩) from a fixed point shared by both libraries; ``track_gradient_error``
  against the probe's exact reference.

The interleaved side-by-side run with the goal ratios is ``python -m fpibench.peer``.
Both use one torch thread (see ``--threads`` there).  Skipped without torchdeq.
"""
import torch

from fpibench import peer

PROBLEMS = ["contractive", "near_critical"]
LIBRARIES = ["fpibench", "torchdeq"]


def _setup(problem: str):
    try:
        import torchdeq  # noqa: F401
    except ImportError as exc:
        raise NotImplementedError("torchdeq is not installed") from exc
    torch.set_num_threads(1)
    return peer.make_problem(problem)


class PeerForward:
    params = (PROBLEMS, list(peer.SOLVERS), LIBRARIES)
    param_names = ["problem", "solver", "library"]
    number = 1
    repeat = (1, 5, 30.0)
    timeout = 300

    def setup(self, problem, solver, library):
        self.problem = _setup(problem)
        self.runner = peer.ours_forward if library == "fpibench" else peer.theirs_forward

    def time_forward(self, problem, solver, library):
        self.runner(self.problem, solver)

    def track_iterations(self, problem, solver, library):
        return self.runner(self.problem, solver).iterations

    track_iterations.unit = "g-calls"

    def track_residual(self, problem, solver, library):
        return peer.residual(self.problem.g, self.runner(self.problem, solver).x)

    track_residual.unit = "residual"


class PeerBackward:
    params = (PROBLEMS, list(peer.BACKWARD_PAIRS), LIBRARIES)
    param_names = ["problem", "method", "library"]
    timeout = 300

    def setup(self, problem, method, library):
        self.problem = _setup(problem)
        self.x_hat = peer.ours_forward(self.problem, "picard").x
        self.runner = peer.ours_backward if library == "fpibench" else peer.theirs_backward

    def track_backward_seconds(self, problem, method, library):
        return self.runner(self.problem, method, self.x_hat).seconds

    track_backward_seconds.unit = "seconds"

    def track_gradient_error(self, problem, method, library):
        run = self.runner(self.problem, method, self.x_hat)
        return peer.grad_rel_error(run.grads, self.problem.reference(), list(self.problem.instance.leaves))

    track_gradient_error.unit = "relative error"
