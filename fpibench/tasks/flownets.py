"""FlowNetS (Dosovitskiy et al., ICCV 2015, "FlowNet: Learning Optical Flow with Convolutional
Networks"), the backbone of the paper's optical-flow experiment (Sec. IV-B, appendix B).

Encoder: the two RGB frames stacked on channels (6 in), ten convolutions
``conv1 7x7/2 (64), conv2 5x5/2 (128), conv3 5x5/2 (256), conv3_1 (256), conv4 /2 (512),
conv4_1 (512), conv5 /2 (512), conv5_1 (512), conv6 /2 (1024), conv6_1 (1024)`` (3x3 unless
stated), each followed by LeakyReLU(0.1) (and BatchNorm before it if ``batch_norm``).
Refinement decoder: at each scale s = 5..2 a 4x4/2 deconvolution of the previous features
is concatenated with the encoder skip at that scale and the 2x-upsampled (learned 4x4/2
deconvolution) flow of the previous scale; a 3x3 ``predict_flow`` head gives the flow.
Flows come out at 1/4 (flow2) .. 1/64 (flow6) of the input resolution; flow2 is the final
prediction, as in the paper.

Module names and the initialisation (Kaiming-normal with a=0.1, zero bias) follow the
common PyTorch reproduction (ClementPinard/FlowNetPytorch), so a ``width=1`` state dict
of that code loads into :class:`FlowNetS` unchanged.

Units: as in the official recipe, the network is trained on ground truth divided by
``DIV_FLOW = 20`` and every scale predicts flow in *input-resolution* pixels / 20 (the
ground truth is average-pooled to each scale without rescaling the vectors).  Use
:func:`full_resolution_flow` to get pixels at the input resolution.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .metrics import epe_map, upsample_flow

__all__ = ["FlowNetS", "multiscale_epe_loss", "full_resolution_flow",
           "MULTISCALE_WEIGHTS", "DIV_FLOW"]

#: Official scaling of the flow targets (FlowNet Caffe recipe): the net predicts flow / 20.
DIV_FLOW = 20.0

#: Loss weights of flow2 (1/4, finest) .. flow6 (1/64, coarsest), official FlowNet recipe.
MULTISCALE_WEIGHTS = (0.005, 0.01, 0.02, 0.08, 0.32)

# name, output channels (at width 1), kernel, stride
_ENCODER = (
    ("conv1", 64, 7, 2), ("conv2", 128, 5, 2), ("conv3", 256, 5, 2), ("conv3_1", 256, 3, 1),
    ("conv4", 512, 3, 2), ("conv4_1", 512, 3, 1), ("conv5", 512, 3, 2), ("conv5_1", 512, 3, 1),
    ("conv6", 1024, 3, 2), ("conv6_1", 1024, 3, 1),
)
# decoder level -> (encoder skip concatenated at that level, deconv output channels at width 1)
_DECODER = ((5, "conv5_1", 512), (4, "conv4_1", 256), (3, "conv3_1", 128), (2, "conv2", 64))
_STRIDE = 64  # total down-sampling of the encoder


def _conv(c_in: int, c_out: int, kernel: int, stride: int, batch_norm: bool) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, bias=not batch_norm)
    layers = [conv, nn.BatchNorm2d(c_out)] if batch_norm else [conv]
    return nn.Sequential(*layers, nn.LeakyReLU(0.1, inplace=True))


def _deconv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                         nn.LeakyReLU(0.1, inplace=True))


def _predict_flow(c_in: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, 2, 3, 1, 1, bias=False)


class FlowNetS(nn.Module):
    """FlowNetS with every channel count multiplied by ``width`` (rounded, at least 1).

    ``width=1`` is the original network (about 38.7M parameters); ``width=1/16`` is a
    CPU-sized variant with the same topology.  ``forward(img_pair)`` takes ``(B, 6, H, W)``
    (frame 0 and frame 1 RGB stacked on channels, H and W multiples of 64) and returns

    * training mode: the list ``[flow2, flow3, flow4, flow5, flow6]`` (finest first,
      ``(B, 2, H/4, W/4)`` .. ``(B, 2, H/64, W/64)``), the input of :func:`multiscale_epe_loss`;
    * eval mode: only ``flow2``, ``(B, 2, H/4, W/4)``.
    """

    def __init__(self, width: float = 1.0, batch_norm: bool = False):
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        self.width = float(width)
        self.batch_norm = bool(batch_norm)
        ch = self._channels

        c_in = 6
        enc = {}
        for name, c_out, kernel, stride in _ENCODER:
            self.add_module(name, _conv(c_in, ch(c_out), kernel, stride, batch_norm))
            enc[name] = c_in = ch(c_out)

        self.predict_flow6 = _predict_flow(c_in)
        for level, skip, c_up in _DECODER:
            self.add_module(f"deconv{level}", _deconv(c_in, ch(c_up)))
            self.add_module(f"upsampled_flow{level + 1}_to_{level}",
                            nn.ConvTranspose2d(2, 2, 4, 2, 1, bias=False))
            c_in = enc[skip] + ch(c_up) + 2
            self.add_module(f"predict_flow{level}", _predict_flow(c_in))
        self._init_weights()

    def _channels(self, n: int) -> int:
        return max(1, int(round(n * self.width)))

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, 0.1)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def check_input(img_pair: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``img_pair`` is ``(B, 6, H, W)``, H and W multiples of 64."""
        if img_pair.dim() != 4 or img_pair.shape[1] != 6:
            raise ValueError("FlowNetS expects (B, 6, H, W): two RGB frames stacked on channels,"
                             f" got {tuple(img_pair.shape)}")
        h, w = img_pair.shape[-2:]
        if h % _STRIDE or w % _STRIDE:
            raise ValueError(f"FlowNetS needs H and W to be multiples of {_STRIDE}, "
                             f"got {h}x{w}; crop or resize the frames (Flying Chairs: 384x512)")

    def forward(self, img_pair: torch.Tensor) -> Union[List[torch.Tensor], torch.Tensor]:
        self.check_input(img_pair)
        feats = {}
        x = img_pair
        for name, *_ in _ENCODER:
            x = feats[name] = getattr(self, name)(x)

        flow = self.predict_flow6(x)
        flows = [flow]
        for level, skip, _ in _DECODER:
            up_flow = getattr(self, f"upsampled_flow{level + 1}_to_{level}")(flow)
            up_feat = getattr(self, f"deconv{level}")(x)
            x = torch.cat((feats[skip], up_feat, up_flow), dim=1)
            flow = getattr(self, f"predict_flow{level}")(x)
            flows.append(flow)
        flows.reverse()
        return flows if self.training else flows[0]


def multiscale_epe_loss(flows: Union[Sequence[torch.Tensor], torch.Tensor], gt: torch.Tensor,
                        weights: Sequence[float] = MULTISCALE_WEIGHTS,
                        reduction: str = "sum") -> torch.Tensor:
    """FlowNet multi-scale loss ``sum_s w_s * EPE(flow_s, pool_s(gt))``.

    ``flows`` are the network outputs finest first (a single tensor is taken as one scale);
    ``gt`` is the full-resolution ground truth ``(B, 2, H, W)`` **in the network's units**:
    the official recipe divides the flow by ``DIV_FLOW = 20`` before the loss.  ``pool_s``
    average-pools ``gt`` to the size of ``flow_s`` without rescaling the vectors.  Default
    weights (0.005, 0.01, 0.02, 0.08, 0.32) for flow2 (1/4) .. flow6 (1/64) are those of the
    FlowNet Caffe models and their PyTorch reproductions: the *coarsest* scale has the
    largest weight, which with ``reduction="sum"`` (EPE summed over the pixels of a scale,
    averaged over the batch, as in that recipe) balances the 4x fewer pixels per coarser
    scale.  ``reduction="mean"`` averages over pixels instead.
    """
    if isinstance(flows, torch.Tensor):
        flows = [flows]
    if len(flows) != len(weights):
        raise ValueError(f"got {len(flows)} flows but {len(weights)} weights")
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    loss = gt.new_zeros(())
    for flow, weight in zip(flows, weights):
        target = F.adaptive_avg_pool2d(gt, flow.shape[-2:])
        epe = epe_map(flow, target)
        per_scale = epe.sum() / epe.shape[0] if reduction == "sum" else epe.mean()
        loss = loss + weight * per_scale
    return loss


def full_resolution_flow(flow: torch.Tensor, size: Tuple[int, int],
                         div_flow: float = DIV_FLOW) -> torch.Tensor:
    """Network flow (input-resolution pixels / ``div_flow``) -> pixels at ``size = (H, W)``.

    Bilinear upsampling without rescaling the vectors (they already are input-resolution
    pixels), times ``div_flow``; the result can be scored with :func:`~.metrics.aepe`.
    """
    return upsample_flow(flow, size, scale_vectors=False) * div_flow
