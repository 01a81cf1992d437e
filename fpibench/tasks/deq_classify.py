"""Equilibrium image classification (MDEQ-style): a convolutional DEQ block with a classifier head.

Not an experiment of the IEEE Access paper: the standard task of the DEQ literature, where the
per-sample state is a feature map (C × H × W numbers) and memory is what implicit
differentiation saves.  The networks are in :mod:`~fpibench.tasks.deq_blocks`:
``fpi_nn`` solves z* = g(z*; u) with the forward solver and gradient method of
:class:`FPIConfig`; ``feedforward`` applies the same block ``feedforward_steps`` times.

Data (``dataset``):

* ``digits`` (default, offline): scikit-learn's bundled 1,797 grey 8×8 handwritten digits
  (:func:`~fpibench.data.load_digits`), split once into train and test by ``split_seed``
  (``test_fraction`` of the images, stratified by class), the same split for every method
  and seed;
* ``cifar10``: CIFAR-10's official binary release (:func:`~fpibench.data.load_cifar10`,
  50,000 train / 10,000 test 32×32 colour images; downloaded with its sha256 checked unless
  ``FPIBENCH_OFFLINE=1``); ``augment`` adds the usual random 4-pixel-padded crops and
  horizontal flips, seeded by (seed, epoch, batch).

Images are scaled to [0, 1] and standardised per channel with the training set's mean and
standard deviation.  Loss: cross-entropy; Adam (``lr``); clipping at ``clip_norm``.  Metrics:
``test_accuracy`` (%, headline) and ``test_loss`` on the test split; the harness adds forward
/ backward iterations and step time per epoch, and the gradient study the gradient error
against a float64 reference, time and memory of one training step.

State size and the dense Jacobian.  The state of one sample has N = ``channels`` × H × W
numbers; ``jacobian_inverse`` needs 3·B·N²·4 bytes in float32 and refuses up front (before
allocating, ``JacobianTooLargeError``; a sweep records the cell as ``skipped``) when that
exceeds its ``memory_budget`` (default 2 GiB).  Quick preset: N = 32·8·8 = 2,048, batch 64:
3.0 GiB — refused; it fits below batch 43.  GPU preset: N = 64·32·32 = 65,536: 48 GiB per
sample — refused at any batch.

Presets.  ``quick``: digits, 32 channels (inner 32, 8 groups), batch 64 (23 steps per epoch),
4 epochs, Adam 1e-3, forward tolerance 1e-3 (relative, the DEQ literature's usual level),
``max_iter`` 40 — one ``fpi_nn`` fit takes about a minute on one CPU thread and reaches about
85–90 % test accuracy (chance: 10 %).  As training proceeds the block becomes less
contractive (the spectral radius of ∂g/∂z at the fixed point rose from ≈ 0.8 to ≈ 0.93, some
samples above 1, after two epochs), so forward and backward iterations grow and a few solves
stop at the cap; the harness counts them.  ``gpu``: CIFAR-10 with augmentation, 64 channels
(inner 128), a 4×4 pooled head, batch 128, 30 epochs, ``max_iter`` 40, evaluation 1,000
images at a time (not yet run).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import numpy as np
import torch
from torch.nn import functional as F

from ..data import load_cifar10, load_digits
from ..errors import OptionError
from ._base import FPIConfig, Task, register_task, seeded_batches
from ._options import COUNT, POSITIVE, Range, one_of
from .deq_blocks import EquilibriumClassifier

CLASSES = 10
#: pixel scale of each data set's raw values (digits: counts 0–16; CIFAR-10: bytes)
PIXEL_SCALE = {"digits": 16.0, "cifar10": 255.0}
IMAGE_SHAPE = {"digits": (1, 8, 8), "cifar10": (3, 32, 32)}  # (C, H, W)


def _stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices): ``test_fraction`` of each class to test, by a seeded shuffle."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        cut = int(round(test_fraction * len(idx)))
        test.append(idx[:cut])
        train.append(idx[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _augment(images: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crops of the zero-padded images and horizontal flips (one draw per image)."""
    n, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    tops = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
    lefts = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
    flips = (torch.rand(n, generator=gen) < 0.5).tolist()
    out = [p[:, t:t + h, l:l + w] for p, t, l in zip(padded, tops, lefts)]
    return torch.stack([o.flip(-1) if f else o for o, f in zip(out, flips)])


@register_task("deq_classify")
class DEQClassify(Task):
    models = ("fpi_nn", "feedforward")
    metric = "test_accuracy"
    higher_is_better = True
    units = {"test_accuracy": "%", "test_loss": "loss"}

    @dataclass
    class Config:
        dataset: str = "digits"  # "digits" (bundled with scikit-learn) or "cifar10" (binary release)
        channels: int = 32
        inner_channels: int = 32
        groups: int = 8
        pool: int = 2  # the head's average pool: P×P cells
        init_std: float = 0.01
        feedforward_steps: int = 2
        epochs: int = 4
        batch_size: int = 64
        lr: float = 1e-3
        clip_norm: float = 1.0
        tol: float = 1e-3  # relative, as usual for DEQs
        max_iter: int = 40
        augment: bool = False
        test_fraction: float = 0.2  # digits only: the share of each class held out
        split_seed: int = 0
        train_limit: int = 0  # 0: every training image
        test_limit: int = 0  # 0: every test image
        eval_batch: int = 500

    PRESETS = {
        "quick": {},
        "gpu": {"dataset": "cifar10", "channels": 64, "inner_channels": 128, "pool": 4, "augment": True,
                "epochs": 30, "batch_size": 128, "lr": 1e-3, "eval_batch": 1000},
    }
    OPTION_RANGES = {**Task.OPTION_RANGES, "dataset": one_of("digits", "cifar10"), "channels": COUNT,
                     "inner_channels": COUNT, "groups": COUNT, "pool": COUNT, "init_std": POSITIVE,
                     "feedforward_steps": COUNT, "clip_norm": POSITIVE, "eval_batch": COUNT,
                     "test_fraction": Range(0, 1, low_open=True, high_open=True)}

    def __init__(self, preset: str = "quick", data_dir=None, **overrides):
        super().__init__(preset=preset, data_dir=data_dir, **overrides)
        c = self.config
        for name in ("channels", "inner_channels"):
            if getattr(c, name) % c.groups:
                raise OptionError(f"task 'deq_classify': option {name!r} ({getattr(c, name)}) must be a "
                                  f"multiple of groups ({c.groups})")

    def data_sets(self):
        return ("cifar10",) if self.config.dataset == "cifar10" else ()

    # -- data -------------------------------------------------------------------------
    def _raw(self):
        """(train images, train labels, test images, test labels), images uint8 (N, C, H, W)."""
        c = self.config
        if c.dataset == "cifar10":
            return (*load_cifar10("train", self.data_dir), *load_cifar10("test", self.data_dir))
        images, labels = load_digits()
        train, test = _stratified_split(labels, c.test_fraction, c.split_seed)
        images = images.astype(np.uint8)  # exact: the digits are integer counts 0–16
        return images[train], labels[train], images[test], labels[test]

    def load_data(self):
        c = self.config
        train_x, train_y, test_x, test_y = self._raw()
        if c.train_limit:
            train_x, train_y = train_x[: c.train_limit], train_y[: c.train_limit]
        if c.test_limit:
            test_x, test_y = test_x[: c.test_limit], test_y[: c.test_limit]
        scaled = torch.from_numpy(np.ascontiguousarray(train_x)).float() / PIXEL_SCALE[c.dataset]
        mean = scaled.mean(dim=(0, 2, 3))
        std = scaled.std(dim=(0, 2, 3))
        as_tensors = lambda x, y: (torch.from_numpy(np.ascontiguousarray(x)),  # noqa: E731
                                   torch.from_numpy(np.asarray(y, np.int64)))
        return {"train": as_tensors(train_x, train_y), "test": as_tensors(test_x, test_y),
                "mean": mean.view(1, -1, 1, 1), "std": std.view(1, -1, 1, 1)}

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """Raw pixel values (uint8) -> standardised float images."""
        d = self.data
        return (images.to(d["mean"].dtype) / PIXEL_SCALE[self.config.dataset] - d["mean"]) / d["std"]

    @property
    def image_shape(self) -> tuple:
        return IMAGE_SHAPE[self.config.dataset]

    @property
    def state_size(self) -> int:
        """N, the numbers in one sample's equilibrium state (channels × H × W)."""
        _, h, w = self.image_shape
        return self.config.channels * h * w

    # -- models -----------------------------------------------------------------------
    def make_model(self, kind, fpi: FPIConfig):
        c = self.config
        common = dict(in_channels=self.image_shape[0], classes=CLASSES, channels=c.channels,
                      inner=c.inner_channels, groups=c.groups, pool=c.pool, init_std=c.init_std)
        if kind == "fpi_nn":
            return EquilibriumClassifier(**common, layer_kwargs=fpi.layer_kwargs(c.tol, c.max_iter))
        return EquilibriumClassifier(**common, feedforward_steps=c.feedforward_steps)

    # -- training ---------------------------------------------------------------------
    def train_batches(self, epoch, seed):
        images, labels = self.data["train"]
        for b, idx in enumerate(seeded_batches(len(labels), self.config.batch_size, epoch, seed)):
            x = self.normalise(images[idx])
            if self.config.augment:
                gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch * 10_007 + b)
                x = _augment(x.cpu(), gen).to(x.device)
            yield x, labels[idx]

    def loss(self, model, batch):
        images, labels = batch
        return F.cross_entropy(model(images), labels.to(images.device))

    # -- evaluation -------------------------------------------------------------------
    def evaluate(self, model) -> Dict[str, float]:
        images, labels = self.data["test"]
        step = self.config.eval_batch
        correct, loss = 0, 0.0
        for i in range(0, len(labels), step):
            logits = model(self.normalise(images[i:i + step]))
            target = labels[i:i + step].to(logits.device)
            correct += int((logits.argmax(1) == target).sum())
            loss += float(F.cross_entropy(logits.float(), target, reduction="sum"))
        return {"test_accuracy": 100.0 * correct / len(labels), "test_loss": loss / len(labels)}
