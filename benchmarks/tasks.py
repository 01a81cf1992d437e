"""asv benchmarks of one training step of the paper's tasks (``quick`` presets, real data).

* ``VectorTaskStep`` / ``VectorTaskTrack``: box-constrained toy problem and Bibtex (IEEE
  Access text §IV-C, appendix C), FPI_NN and FPI_GD, every gradient method.
* ``ImageTaskStep`` / ``ImageTaskTrack``: denoising and optical flow (§IV-A, §IV-B), FPI_NN,
  a few gradient methods, on a single small batch (``IMAGE_BATCH`` samples of the first
  training batch).  Their dense Jacobian is over the suite's ``JACOBIAN_BUDGET``, so
  ``jacobian_inverse`` is a skip there.

``*Step`` time ``task.train_step`` (loss, backward, optimiser step) on the task's first
training batch; ``ImageTaskStep`` also records its peak memory (for the small vector tasks
the resident memory is mostly torch itself: their memory measure is ``track_saved_bytes``).
``*Track`` record the FPI layer's forward and backward iterations, VJP calls and the bytes
the model's forward saves for backward, measured once per case in ``setup_cache``.  Batches
come from the data directory (``FPIBENCH_DATA``); a task whose files are missing is skipped
with a message naming them.
"""
from ._common import BACKWARD, TaskCase, lookup, measure_tasks, pin_threads, task_batches

_NAMES = ["task", "model", "backward"]
_VECTOR = (["box_constraint", "bibtex"], ["fpi_nn", "fpi_gd"], list(BACKWARD))
_IMAGE = (["denoise", "optical_flow"], ["fpi_nn"], ["anderson", "backward_fpi", "jacobian_inverse", "jfb", "unroll"])


class _TaskStep:
    param_names = _NAMES
    setup_cache = staticmethod(task_batches)  # every task's batch, loaded once per run
    timeout = 300

    def setup(self, batches, task, model, backward):
        pin_threads()
        self.case = TaskCase(batches[task], task, model, backward)

    def time_train_step(self, batches, task, model, backward):
        self.case.train_step()


class _TaskTrack:
    param_names = _NAMES
    timeout = 300

    def setup(self, grid, *params):
        self.result = lookup(grid, *params)

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


class VectorTaskStep(_TaskStep):
    params = _VECTOR


class ImageTaskStep(_TaskStep):
    params = _IMAGE

    def peakmem_train_step(self, batches, task, model, backward):
        self.case.train_step()


class VectorTaskTrack(_TaskTrack):
    params = _VECTOR

    def setup_cache(self):  # one per class: asv keys setup_cache by where it is defined
        return measure_tasks(self.params)


class ImageTaskTrack(_TaskTrack):
    params = _IMAGE

    def setup_cache(self):
        return measure_tasks(self.params)
