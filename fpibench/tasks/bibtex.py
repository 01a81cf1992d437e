"""Bibtex multi-label classification (IEEE Access text §IV-C, appendix B-C; Table 2).

1836 binary features → 159 labels, the standard 4880 / 2515 split (Katakis et al. 2008).
FPI_NN: g = FC(1995→512)-ReLU-FC(512→159)-sigmoid on [x; input], relative tol 1e-8.
FPI_GD: energy E = mean_j ReLU(FC([x; input]))_j² (one FC(512) with ReLU and a mean-squared
term), gradient step 1.0, absolute tol 1e-4 (‖x_{n+1} − x_n‖), sigmoid after the layer.
Baseline (``feedforward``, alias of the MLP of the same size): FC(1836→512)-ReLU-FC(512→159)-sigmoid.
Metric: example-based F1 (%) on the test set with the decision threshold chosen on a
validation split carved from the training set.  Paper: FPI_GD 43.2, FPI_NN 43.4.

Choices where the paper is silent (it defers to the SPEN/DVN settings): binary
cross-entropy loss; validation = a fixed 10% of the training rows (``val_fraction``,
seeded by ``data_seed``), the rest trains; batch 32; 30 epochs; Adam 1e-3; max_iter 300.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data import load_bibtex
from . import metrics
from ._base import FPIConfig, Task, register_task, seeded_batches
from ._options import POSITIVE, Range
from .vector_models import Feedforward, fpi_gd, fpi_nn, mlp

N_FEATURES, N_LABELS = 1836, 159


def read_splits(data_dir=None):
    """(x, y, x_test, y_test) of the standard split as tensors."""
    x, y = (torch.from_numpy(a) for a in load_bibtex("train", data_dir))
    x_test, y_test = (torch.from_numpy(a) for a in load_bibtex("test", data_dir))
    return x, y, x_test, y_test


@register_task("bibtex")
class Bibtex(Task):
    models = ("fpi_nn", "fpi_gd", "feedforward")
    metric = "test_f1"
    higher_is_better = True

    @dataclass
    class Config:
        hidden: int = 512
        epochs: int = 30
        batch_size: int = 32
        lr: float = 1e-3
        tol_nn: float = 1e-8
        tol_gd: float = 1e-4
        max_iter: int = 300
        gd_step: float = 1.0
        val_fraction: float = 0.1
        data_seed: int = 0
        train_limit: int = 0  # 0: all training rows (the quick preset uses fewer)

    PRESETS = {"paper": {}, "quick": {"epochs": 2, "train_limit": 1000, "max_iter": 30}}
    OPTION_RANGES = {**Task.OPTION_RANGES, "tol_nn": POSITIVE, "tol_gd": POSITIVE, "gd_step": POSITIVE,
                     "val_fraction": Range(0, 1, high_open=True)}

    def data_sets(self):
        return ("bibtex",)

    def load_data(self):
        c = self.config
        x, y, x_test, y_test = read_splits(self.data_dir)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(c.data_seed))
        n_val = int(round(c.val_fraction * len(x)))
        val, train = perm[:n_val], perm[n_val:]
        if c.train_limit:
            train = train[: c.train_limit]
        return {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x_test, y_test)}

    def make_model(self, kind, fpi: FPIConfig):
        c = self.config
        if kind == "fpi_nn":
            return fpi_nn(N_LABELS, N_FEATURES, c.hidden, fpi.layer_kwargs(c.tol_nn, c.max_iter), out=torch.nn.Sigmoid())
        if kind == "fpi_gd":
            energy_net = torch.nn.Sequential(torch.nn.Linear(N_LABELS + N_FEATURES, c.hidden), torch.nn.ReLU())
            kwargs = fpi.layer_kwargs(c.tol_gd, c.max_iter, criterion="absolute")
            return fpi_gd(N_LABELS, N_FEATURES, energy_net, c.gd_step, kwargs, readout=torch.nn.Sigmoid())
        return Feedforward(mlp(N_FEATURES, c.hidden, N_LABELS, out=torch.nn.Sigmoid()))

    def train_batches(self, epoch, seed):
        x, y = self.data["train"]
        for idx in seeded_batches(len(x), self.config.batch_size, epoch, seed):
            yield x[idx], y[idx]

    def loss(self, model, batch):
        x, y = batch
        return torch.nn.functional.binary_cross_entropy(model(x).clamp(1e-7, 1 - 1e-7), y)

    def _scores(self, model, split):
        x, _ = self.data[split]
        return torch.cat([model(x[i : i + 512]) for i in range(0, len(x), 512)])

    def evaluate(self, model):
        threshold, val_f1 = metrics.best_threshold_f1(self._scores(model, "val"), self.data["val"][1])
        test_pred = self._scores(model, "test") >= threshold
        test_f1 = float(metrics.example_f1(test_pred, self.data["test"][1]))
        return {"val_f1": 100 * val_f1, "test_f1": 100 * test_f1, "threshold": threshold}
