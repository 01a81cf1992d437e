"""Box-constrained toy problem (IEEE Access text, appendix C; Fig. 7).

Learn t = argmin_x ‖x − a‖² s.t. −1 ≤ x ≤ 1, i.e. t = clip(a, −1, 1), from samples (a, t);
a ∈ R¹⁰, 10,000 training samples a ~ N(0, 2²), 1,000 test samples a ~ N(0, 1).
Models: FPI_NN with g = linear(20→32)-ReLU-linear(32→10) on [x; a]; FPI_GD with an energy of
the same shape closed by a mean-squared term, step 0.01; a feedforward net of g's
structure on a alone (linear(10→32)-ReLU-linear(32→10)).  tol 1e-6 (relative), 40 epochs,
batch 100, Adam 1e-3, MSE loss; metric: train and test MSE per epoch.

Choices where the paper is silent: the data are drawn from a generator seeded by
``data_seed`` (fixed across methods and seeds so every cell sees the same data); the
train MSE is the mean over the epoch's mini-batches; FPI_GD's energy network has 10
outputs before the mean square; default PyTorch initialisation; max_iter 500.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ._base import FPIConfig, Task, register_task, seeded_batches
from ._options import COUNT, POSITIVE
from .vector_models import Feedforward, fpi_gd, fpi_nn, mlp


@register_task("box_constraint")
class BoxConstraint(Task):
    models = ("fpi_nn", "fpi_gd", "feedforward")
    metric = "test_mse"
    higher_is_better = False

    @dataclass
    class Config:
        dim: int = 10
        hidden: int = 32
        n_train: int = 10_000
        n_test: int = 1_000
        train_std: float = 2.0
        test_std: float = 1.0
        epochs: int = 40
        batch_size: int = 100
        lr: float = 1e-3
        tol: float = 1e-6
        max_iter: int = 500
        gd_step: float = 0.01
        data_seed: int = 1234

    PRESETS = {"paper": {}, "quick": {"n_train": 2_000, "epochs": 4}}
    OPTION_RANGES = {**Task.OPTION_RANGES, "dim": COUNT, "n_train": COUNT, "n_test": COUNT, "train_std": POSITIVE,
                     "test_std": POSITIVE, "gd_step": POSITIVE}

    def load_data(self):
        c = self.config
        gen = torch.Generator().manual_seed(c.data_seed)
        a_train = c.train_std * torch.randn(c.n_train, c.dim, generator=gen)
        a_test = c.test_std * torch.randn(c.n_test, c.dim, generator=gen)
        return {"train": (a_train, a_train.clamp(-1, 1)), "test": (a_test, a_test.clamp(-1, 1))}

    def make_model(self, kind, fpi: FPIConfig):
        c = self.config
        kwargs = fpi.layer_kwargs(c.tol, c.max_iter)
        if kind == "fpi_nn":
            return fpi_nn(c.dim, c.dim, c.hidden, kwargs)
        if kind == "fpi_gd":
            return fpi_gd(c.dim, c.dim, mlp(2 * c.dim, c.hidden, c.dim), c.gd_step, kwargs)
        return Feedforward(mlp(c.dim, c.hidden, c.dim))

    def train_batches(self, epoch, seed):
        a, t = self.data["train"]
        for idx in seeded_batches(len(a), self.config.batch_size, epoch, seed):
            yield a[idx], t[idx]

    def loss(self, model, batch):
        a, t = batch
        return torch.nn.functional.mse_loss(model(a), t)

    def evaluate(self, model):
        out = {}
        for split in ("train", "test"):
            a, t = self.data[split]
            pred = torch.cat([model(a[i : i + 1000]) for i in range(0, len(a), 1000)])
            out[f"{split}_mse"] = float(torch.nn.functional.mse_loss(pred, t))
        return out
