"""Hyperparameter optimisation by hypergradients (Pedregosa 2016; Grazzi et al. 2020; Lorraine et al. 2020).

The inner problem is L2-regularised logistic regression with one regularisation weight per
feature, α = exp(λ) (:mod:`.logistic`), solved as the fixed point of a gradient step
(FPI_GD); the outer loss is the logistic loss on a validation split; the outer optimiser
(Adam on λ, one step per epoch) follows the hypergradient dL_val/dλ of whichever gradient
method the cell names, so the methods are compared on the hypergradient alone: same inner
solver, same start, same outer optimiser.

Data: Bibtex (Katakis et al. 2008), the binary word features with rows scaled to unit norm
and a bias column, and ``labels`` binary problems: the most frequent tags, each its own
inner problem (a batch sample) sharing λ.  The official training rows are split, seeded by
the cell's seed, into the inner training set and the validation set (``val_fraction``); the
official test rows give the test loss.  ``features`` keeps the most frequent words only.

Rows: per outer step ``val_loss`` (after the step), ``test_loss`` (headline), the inner
training loss and λ's spread; ``train_loss`` is the outer objective the step descended
(the validation loss before it).  The gradient study compares every method's hypergradient
with the float64 dense-solve reference; the report adds the time to a target validation loss.
"""
from __future__ import annotations

from dataclasses import dataclass
import torch

from ._base import FPIConfig, Task, register_task
from ._options import COUNT, POSITIVE, Range
from .bibtex import N_FEATURES, N_LABELS, read_splits
from .logistic import HyperLogReg, logistic_loss


def _design(x: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """The kept word columns, rows scaled to unit norm, and a column of ones (the bias)."""
    x = x[:, columns]
    x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return torch.cat([x, x.new_ones(len(x), 1)], dim=1)


@register_task("hyperopt")
class HyperOpt(Task):
    models = ("fpi_gd",)
    metric = "test_loss"
    higher_is_better = False
    units = {"val_loss": "nats", "test_loss": "nats", "inner_train_loss": "nats", "log_alpha_mean": "log weight",
             "log_alpha_std": "log weight"}

    @dataclass
    class Config:
        labels: int = 1  # the most frequent tags, one inner problem each
        features: int = 0  # 0: all 1836 words, else the most frequent ones
        val_fraction: float = 0.5  # of the official training rows
        train_limit: int = 0  # 0: every inner training row
        epochs: int = 30  # outer steps
        lr: float = 0.1  # Adam on λ
        init_log_alpha: float = -4.6  # λ₀ (α₀ = e^λ₀ ≈ 0.01 for every feature)
        tol: float = 1e-6  # inner solve, relative criterion
        max_iter: int = 500

    PRESETS = {"quick": {}, "full": {"labels": 5, "epochs": 60}}
    OPTION_RANGES = {**Task.OPTION_RANGES, "labels": Range(1, N_LABELS), "features": Range(0, N_FEATURES),
                     "val_fraction": Range(0, 1, low_open=True, high_open=True), "lr": POSITIVE,
                     "init_log_alpha": Range(-20, 10), "epochs": COUNT}

    def data_sets(self):
        return ("bibtex",)

    def load_data(self):
        c = self.config
        x, y, x_test, y_test = read_splits(self.data_dir)
        counts = x.sum(dim=0)
        columns = torch.argsort(-counts, stable=True)[: c.features] if c.features else torch.arange(x.shape[1])
        labels = torch.argsort(-y.sum(dim=0), stable=True)[: c.labels]
        return {"x": _design(x, columns), "y": y[:, labels].T.contiguous(),
                "test": (_design(x_test, columns), y_test[:, labels].T.contiguous()),
                "columns": columns, "labels": labels}

    def split(self, seed: int) -> tuple:
        """(x_train, y_train, x_val, y_val) for this seed: a seeded split of the official training rows."""
        splits = self.__dict__.setdefault("_splits", {})
        if seed not in splits:
            splits[seed] = self._split(seed)
        return splits[seed]

    def _split(self, seed: int) -> tuple:
        c, data = self.config, self.data
        n = data["x"].shape[0]
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        n_val = int(round(c.val_fraction * n))
        val, train = perm[:n_val], perm[n_val:]
        if c.train_limit:
            train = train[: c.train_limit]
        return data["x"][train], data["y"][:, train], data["x"][val], data["y"][:, val]

    def build_model(self, kind, fpi=None, seed=0):
        model = super().build_model(kind, fpi, seed)
        model.split_seed = seed  # the model is evaluated on its own seed's split
        return model

    def make_model(self, kind, fpi: FPIConfig):
        c = self.config
        n_features = c.features or N_FEATURES
        return HyperLogReg(n_features, c.init_log_alpha, fpi.layer_kwargs(c.tol, c.max_iter))

    def train_batches(self, epoch, seed):
        yield self.split(seed)  # one outer step per epoch, on the full split

    def loss(self, model, batch):
        x, y, x_val, y_val = batch
        return logistic_loss(model(x, y), x_val, y_val)

    def evaluate(self, model):
        x, y, x_val, y_val = self.split(getattr(model, "split_seed", 0))
        weights = model(x, y)
        log_alpha = model.log_alpha
        return {"val_loss": float(logistic_loss(weights, x_val, y_val)),
                "test_loss": float(logistic_loss(weights, *self.data["test"])),
                "inner_train_loss": float(logistic_loss(weights, x, y)),
                "log_alpha_mean": float(log_alpha.mean()), "log_alpha_std": float(log_alpha.std())}
