"""Task registry: the paper's four experiments, probes with exact gradients, hyperparameter
optimisation and an equilibrium classifier.

    fpibench.tasks.available()          # names
    task = fpibench.tasks.get("bibtex", preset="quick")
    model = task.build_model("fpi_nn", FPIConfig(forward="anderson", backward="backward_fpi"))
    history = task.fit(model)
"""
from ._base import FPIConfig, Task, available, fpi_layers, get, register_task
from . import bibtex, box_constraint, deq_classify, denoise, hyperopt, optical_flow, probes  # noqa: E402,F401  (registration)
from .probes import Probe, ProbeInstance  # noqa: E402

__all__ = ["FPIConfig", "Task", "Probe", "ProbeInstance", "available", "get", "register_task", "fpi_layers"]
