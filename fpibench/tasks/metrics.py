"""Evaluation metrics of the three FPI-layer experiments (paper Sec. IV, appendix B).

* denoising: :func:`psnr` / :func:`mean_psnr` on the 0–255 grey scale;
* optical flow: :func:`aepe` (average end-point error) and :func:`upsample_flow`;
* multi-label classification: :func:`example_f1` and :func:`best_threshold_f1`;
* :func:`mse` for everything else.

All functions take batched torch tensors (batch first) and never resize silently.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

__all__ = [
    "mse", "psnr", "mean_psnr",
    "example_f1", "best_threshold_f1", "DEFAULT_THRESHOLDS",
    "epe_map", "aepe", "upsample_flow",
]

#: Decision thresholds 0.05, 0.10, ..., 0.95 searched by :func:`best_threshold_f1`.
DEFAULT_THRESHOLDS: Tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))


def _check_same_shape(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error ``mean((pred - target)**2)`` over all elements (0-dim tensor)."""
    _check_same_shape(pred, target, "mse")
    return (pred - target).pow(2).mean()


# ---------------------------------------------------------------------------------- denoising
def psnr(pred: torch.Tensor, target: torch.Tensor, max_value: float = 255.0,
         clip: bool = True) -> torch.Tensor:
    """Per-image peak signal-to-noise ratio in dB, shape ``(B,)``.

    ``PSNR_b = 10 log10(max_value**2 / MSE_b)`` with ``MSE_b`` the mean over the pixels
    (and channels) of image ``b``; inputs are ``(B, 1, H, W)`` or ``(B, H, W)`` on the
    0..``max_value`` scale (255 for 8-bit images).  With ``clip=True`` (default) the
    prediction is first clamped to the valid range ``[0, max_value]``, as denoising papers
    do before measuring (an output pixel outside the range cannot be displayed).  A
    perfect prediction gives ``+inf``.
    """
    _check_same_shape(pred, target, "psnr")
    if pred.dim() not in (3, 4):
        raise ValueError(f"psnr expects (B, 1, H, W) or (B, H, W), got {tuple(pred.shape)}")
    out_dtype = pred.dtype if pred.is_floating_point() else torch.float64
    pred = pred.double()
    if clip:
        pred = pred.clamp(0.0, max_value)
    err = (pred - target.double()).pow(2).flatten(1).mean(dim=1)
    return (10.0 * torch.log10(max_value ** 2 / err)).to(out_dtype)


def mean_psnr(pred: torch.Tensor, target: torch.Tensor, max_value: float = 255.0,
              clip: bool = True) -> torch.Tensor:
    """Average of the per-image PSNRs (the number denoising tables report), 0-dim tensor.

    Note this is ``mean_b PSNR_b``, not the PSNR of the dataset-wide MSE.
    """
    return psnr(pred, target, max_value=max_value, clip=clip).mean()


# ----------------------------------------------------------------------- multi-label (Bibtex)
def example_f1(pred_binary: torch.Tensor, target_binary: torch.Tensor,
               empty_score: float = 1.0) -> torch.Tensor:
    """Example-based (sample-averaged) F1 of multi-label predictions, 0-dim tensor in [0, 1].

    ``F1 = mean_n 2|p_n ∩ t_n| / (|p_n| + |t_n|)`` for 0/1 (or bool) tensors of shape
    ``(N, L)``.  A sample with ``|p_n| + |t_n| = 0`` (nothing predicted, nothing true) scores
    ``empty_score``, 1 by default: this is SPEN's evaluation convention (Belanger & McCallum,
    ``MultiLabelEvaluation.lua`` adds eps to every count, so 0/0 precision and recall become 1).
    The DVN code (Gygli et al., ``gt_value``) divides by ``max(1e-8, union)`` instead and scores
    such a sample 0; on Bibtex every example has at least one label, so the two agree there.
    """
    _check_same_shape(pred_binary, target_binary, "example_f1")
    if pred_binary.dim() != 2:
        raise ValueError(f"example_f1 expects (N, L) tensors, got {tuple(pred_binary.shape)}")
    return _example_f1_per_threshold(pred_binary.bool()[None], target_binary.bool(),
                                     empty_score)[0]


def _example_f1_per_threshold(pred: torch.Tensor, target: torch.Tensor,
                              empty_score: float) -> torch.Tensor:
    """``pred`` (T, N, L) bool, ``target`` (N, L) bool -> example F1 per threshold, (T,)."""
    inter = (pred & target).sum(-1, dtype=torch.float64)
    total = pred.sum(-1, dtype=torch.float64) + target.sum(-1, dtype=torch.float64)
    f1 = torch.where(total > 0, 2.0 * inter / total.clamp_min(1.0),
                     torch.full_like(total, empty_score))
    return f1.mean(-1)


def best_threshold_f1(scores: torch.Tensor, targets: torch.Tensor,
                      thresholds: Optional[Sequence[float]] = None,
                      empty_score: float = 1.0) -> Tuple[float, float]:
    """Decision threshold maximising :func:`example_f1` on a validation set.

    Predicts label ``l`` of sample ``n`` when ``scores[n, l] >= t`` (SPEN's ``ge``) for each
    ``t`` of ``thresholds`` (default :data:`DEFAULT_THRESHOLDS`, 0.05..0.95 step 0.05) and
    returns ``(t*, F1(t*))`` as Python floats; ties go to the smallest threshold.
    Apply the returned threshold to the test set (do not tune on the test set).
    """
    _check_same_shape(scores, targets, "best_threshold_f1")
    grid = torch.as_tensor(DEFAULT_THRESHOLDS if thresholds is None else thresholds,
                           dtype=scores.dtype if scores.is_floating_point() else torch.float64,
                           device=scores.device)
    if grid.numel() == 0:
        raise ValueError("best_threshold_f1: empty threshold grid")
    pred = scores[None] >= grid.view(-1, *([1] * scores.dim()))
    f1 = _example_f1_per_threshold(pred, targets.bool(), empty_score)
    best = int(torch.argmax(f1))  # first maximum = smallest threshold on a sorted grid
    return float(grid[best]), float(f1[best])


# ------------------------------------------------------------------------------- optical flow
def _check_flow(flow: torch.Tensor, name: str) -> None:
    if flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"{name} must be (B, 2, H, W), got {tuple(flow.shape)}")


def epe_map(flow_pred: torch.Tensor, flow_gt: torch.Tensor) -> torch.Tensor:
    """Per-pixel end-point error ``||pred - gt||_2`` over the (u, v) channel, shape (B, H, W).

    Raises ``ValueError`` when the spatial sizes differ: resize the prediction explicitly
    with :func:`upsample_flow` first (a network predicting at 1/4 resolution must be
    evaluated at the ground-truth resolution).
    """
    _check_flow(flow_pred, "flow_pred")
    _check_flow(flow_gt, "flow_gt")
    if flow_pred.shape != flow_gt.shape:
        raise ValueError(
            f"aepe: prediction {tuple(flow_pred.shape)} and ground truth {tuple(flow_gt.shape)} "
            "differ; resize the prediction with upsample_flow(flow, size) first")
    return torch.linalg.vector_norm(flow_pred - flow_gt, dim=1)


def aepe(flow_pred: torch.Tensor, flow_gt: torch.Tensor) -> torch.Tensor:
    """Average end-point error ``mean_{b,p} ||pred_b(p) - gt_b(p)||_2``, 0-dim tensor.

    Inputs ``(B, 2, H, W)`` in pixels, channel 0 = horizontal (u), 1 = vertical (v).
    """
    return epe_map(flow_pred, flow_gt).mean()


def upsample_flow(flow: torch.Tensor, size: Tuple[int, int],
                  scale_vectors: bool = True) -> torch.Tensor:
    """Bilinearly resize a flow field ``(B, 2, h, w)`` to ``size = (H, W)``.

    With ``scale_vectors=True`` (default) the vectors are rescaled to the new pixel grid,
    ``u *= W / w`` and ``v *= H / h``, i.e. the input is in pixels of its own grid.  Pass
    ``scale_vectors=False`` for flows already expressed in target-resolution pixels — the
    FlowNet convention, whose coarse outputs are trained against ground truth that is
    downsampled *without* rescaling (see :mod:`fpibench.tasks.flownets`).
    """
    _check_flow(flow, "flow")
    h, w = flow.shape[-2:]
    H, W = int(size[0]), int(size[1])
    out = F.interpolate(flow, size=(H, W), mode="bilinear", align_corners=False)
    if scale_vectors:
        ratio = torch.tensor([W / w, H / h], dtype=out.dtype, device=out.device)
        out = out * ratio.view(1, 2, 1, 1)
    return out
