"""Procedural "flying shapes" optical-flow pairs, in the spirit of Flying Chairs (Dosovitskiy
et al. 2015), rendered from real photographs so FlowNet can be trained without that release.

Each sample is a stack of layers drawn in painter's order: a background (a random crop of a
real image, colour-tinted) and 1–3 foreground objects (random ellipses or star-shaped
polygons textured with a crop of another real image).  Every layer has its own random
similarity motion ``M(p) = c + s R(theta) (p - c) + t`` about its centre ``c``, and both
frames are rendered by *backward* warping of the layer textures: frame t samples a layer's
texture at ``P_t(p)`` with ``P_1 = P_0 o M^-1``.  Hence the ground truth is exact:

* flow convention (Middlebury / Flying Chairs ``.flo``): ``flow[y, x] = (dx, dy)`` in pixels,
  pixel centres at integer ``(x, y)``; the point of frame 0 at ``p`` is at ``p + flow(p)``
  in frame 1, so ``img0(p) ≈ img1(p + flow(p))`` wherever ``p`` is not occluded in frame 1;
* ``flow(p) = M_k(p) - p`` where ``k`` is the top layer at ``p`` in frame 0 (objects cover
  the background and later objects cover earlier ones; an object covers ``p`` when its
  bilinearly-sampled mask exceeds 0.5, identically in both frames).

Frames only differ by the motion (no photometric noise: add augmentation downstream).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

__all__ = ["Motion", "FlowSample", "FlyingShapes", "backward_warp"]


@dataclass(frozen=True)
class Motion:
    """Ranges of a random similarity motion ``p -> c + s R(theta) (p - c) + t``.

    ``t ~ U(-translation, translation) * (W, H)`` (fraction of the image size),
    ``theta ~ U(-rotation, rotation)`` degrees, ``s = exp(U(-scale, scale))``.
    ``Motion(0.05, 0, 0)`` is a pure translation.
    """

    translation: float = 0.05
    rotation: float = 5.0
    scale: float = 0.05

    def sample(self, rng: np.random.Generator, center: np.ndarray,
               size: Tuple[int, int]) -> np.ndarray:
        """3x3 homogeneous matrix of one random motion about ``center = (x, y)``."""
        H, W = size
        t = rng.uniform(-1, 1, 2) * self.translation * np.array([W, H])
        theta = math.radians(rng.uniform(-1, 1) * self.rotation)
        s = math.exp(rng.uniform(-1, 1) * self.scale)
        return _similarity(center + t, s, theta) @ _similarity(-center, 1.0, 0.0)


@dataclass
class FlowSample:
    """One rendered pair: ``img0``, ``img1`` uint8 (H, W, 3), ``flow`` float32 (H, W, 2),
    ``valid`` bool (H, W): ``p + flow(p)`` lies inside frame 1 and is not occluded there."""

    img0: np.ndarray
    img1: np.ndarray
    flow: np.ndarray
    valid: np.ndarray


@dataclass
class _Layer:
    texture: torch.Tensor  # (C, h, w) float: RGB, plus alpha for objects
    pose: np.ndarray       # 3x3: image coordinates in frame 0 -> texture pixel coordinates
    motion: np.ndarray     # 3x3: frame-0 image coordinates -> frame-1 image coordinates


def _similarity(translation, scale: float, theta: float) -> np.ndarray:
    """3x3 matrix of ``p -> scale R(theta) p + translation``."""
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[scale * c, -scale * s, translation[0]],
                     [scale * s, scale * c, translation[1]],
                     [0.0, 0.0, 1.0]])


def _to_chw_uint8(image: np.ndarray) -> torch.Tensor:
    """Grey (h, w) or colour (h, w, 3|4) array on the 0..255 scale -> (3, h, w) uint8 tensor."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"background images must be (h, w) or (h, w, 3), got {a.shape}")
    a = np.clip(np.rint(a[..., :3]), 0, 255).astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


class FlyingShapes(Dataset):
    """Deterministic dataset of procedural flow pairs built from real ``backgrounds``.

    ``backgrounds``: list of grey (h, w) or RGB (h, w, 3) arrays on 0..255 (e.g. the DnCNN
    Train400 images); each sample draws a background image and one texture image per object
    from it.  ``size = (H, W)`` of the frames; ``n_objects = (lo, hi)`` inclusive range of
    the number of objects (``(0, 0)`` for background only); ``object_size`` the range of the
    object diameter as a fraction of ``min(H, W)``; ``tint`` multiplies every layer texture
    by random per-channel gains in [0.5, 1.2].  Sample ``i`` depends only on ``(seed, i)``.

    ``ds[i]`` returns ``(img0, img1, flow)`` as numpy arrays (uint8 H x W x 3, uint8 H x W x 3,
    float32 H x W x 2 with ``flow[y, x] = (dx, dy)``, see the module docstring);
    :meth:`render` also returns the non-occlusion mask.
    """

    def __init__(self, backgrounds: Sequence[np.ndarray], size: Tuple[int, int] = (256, 256),
                 n_objects: Tuple[int, int] = (1, 3), seed: int = 0, length: int = 10000,
                 background_motion: Motion = Motion(0.04, 3.0, 0.05),
                 object_motion: Motion = Motion(0.08, 15.0, 0.10),
                 object_size: Tuple[float, float] = (0.2, 0.5), tint: bool = True):
        if len(backgrounds) == 0:
            raise ValueError("FlyingShapes needs at least one background image")
        if not 0 <= n_objects[0] <= n_objects[1]:
            raise ValueError(f"n_objects must be (lo, hi) with 0 <= lo <= hi, got {n_objects}")
        self.images = [_to_chw_uint8(b) for b in backgrounds]
        self.size = (int(size[0]), int(size[1]))
        self.n_objects = tuple(n_objects)
        self.seed = int(seed)
        self.length = int(length)
        self.background_motion = background_motion
        self.object_motion = object_motion
        self.object_size = tuple(object_size)
        self.tint = tint
        H, W = self.size
        ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float64),
                                torch.arange(W, dtype=torch.float64), indexing="ij")
        self._pixels = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1)  # (H, W, 3): x, y, 1

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = self.render(i, visibility=False)
        return s.img0, s.img1, s.flow

    # ------------------------------------------------------------------------ sampling
    def _texture(self, rng: np.random.Generator, index: int) -> torch.Tensor:
        tex = self.images[index].float()
        if self.tint:
            gains = torch.from_numpy(rng.uniform(0.5, 1.2, 3)).float()
            tex = (tex * gains.view(3, 1, 1)).clamp_(0.0, 255.0)
        return tex

    def _background(self, rng: np.random.Generator, index: int) -> _Layer:
        """Random zoomed crop covering the frame, moving about the image centre."""
        H, W = self.size
        tex = self._texture(rng, index)
        h, w = tex.shape[-2:]
        zoom = max((W - 1) / (w - 1), (H - 1) / (h - 1)) * rng.uniform(1.0, 1.5)
        half = np.array([W - 1, H - 1]) / 2.0
        lo, hi = half / zoom, np.array([w - 1, h - 1]) - half / zoom
        src_center = rng.uniform(lo, hi)
        pose = _similarity(src_center, 1.0 / zoom, 0.0) @ _similarity(-half, 1.0, 0.0)
        return _Layer(tex, pose, self.background_motion.sample(rng, half, self.size))

    def _object(self, rng: np.random.Generator, index: int) -> _Layer:
        """Ellipse or star polygon cut from a crop of image ``index``, randomly placed."""
        H, W = self.size
        tex = self._texture(rng, index)
        h, w = tex.shape[-2:]
        d = max(8, int(rng.uniform(0.3, 0.8) * min(h, w)))
        y0, x0 = rng.integers(0, h - d + 1), rng.integers(0, w - d + 1)
        alpha = torch.from_numpy(_shape_mask(rng, d)).float().div_(255.0)
        texture = torch.cat([tex[:, y0:y0 + d, x0:x0 + d], alpha[None]], dim=0)

        center = rng.uniform(0.1, 0.9, 2) * np.array([W - 1, H - 1])
        diameter = rng.uniform(*self.object_size) * min(H, W)
        theta = rng.uniform(0.0, 2.0 * math.pi)
        mid = np.full(2, (d - 1) / 2.0)
        pose = _similarity(mid, d / diameter, -theta) @ _similarity(-center, 1.0, 0.0)
        return _Layer(texture, pose, self.object_motion.sample(rng, center, self.size))

    def _layers(self, i: int) -> List[_Layer]:
        if not 0 <= i < self.length:
            raise IndexError(f"index {i} out of range for FlyingShapes of length {self.length}")
        rng = np.random.default_rng([self.seed, int(i)])
        n_img = len(self.images)
        bg = int(rng.integers(n_img))
        layers = [self._background(rng, bg)]
        for _ in range(int(rng.integers(self.n_objects[0], self.n_objects[1] + 1))):
            other = int(rng.integers(n_img - 1)) if n_img > 1 else 0
            layers.append(self._object(rng, other + (n_img > 1 and other >= bg)))
        return layers

    # ----------------------------------------------------------------------- rendering
    def _grid(self, maps: Sequence[np.ndarray], texture: torch.Tensor) -> torch.Tensor:
        """grid_sample grids (N, H, W, 2) of image->texture maps (align_corners=True)."""
        h, w = texture.shape[-2:]
        norm = np.array([[2.0 / (w - 1), 0, -1], [0, 2.0 / (h - 1), -1], [0, 0, 1]])
        mats = torch.from_numpy(np.stack([(norm @ m)[:2].T for m in maps]))  # (N, 3, 2)
        return torch.einsum("hwk,nkc->nhwc", self._pixels, mats).float()

    def _sample(self, texture: torch.Tensor, maps: Sequence[np.ndarray],
                padding: str) -> torch.Tensor:
        grid = self._grid(maps, texture)
        return F.grid_sample(texture.expand(len(maps), *texture.shape), grid, mode="bilinear",
                             padding_mode=padding, align_corners=True)

    def _flow(self, motion: np.ndarray) -> torch.Tensor:
        """Analytic flow ``M p - p`` of one layer, (H, W, 2)."""
        delta = torch.from_numpy((motion - np.eye(3))[:2].T)
        return self._pixels @ delta

    def render(self, i: int, visibility: bool = True) -> FlowSample:
        """Render sample ``i``; ``visibility=False`` skips the (cheap) occlusion mask."""
        layers = self._layers(i)
        H, W = self.size
        frames = self._sample(layers[0].texture, _both_frames(layers[0]), "reflection")
        top = torch.zeros(H, W, dtype=torch.long)  # top layer in frame 0
        for k, layer in enumerate(layers[1:], start=1):
            rgba = self._sample(layer.texture, _both_frames(layer), "zeros")
            cover = rgba[:, 3:] > 0.5
            frames = torch.where(cover, rgba[:, :3], frames)
            top[cover[0, 0]] = k
        flows = torch.stack([self._flow(layer.motion) for layer in layers])  # (L, H, W, 2)
        flow = torch.take_along_dim(flows, top[None, ..., None], dim=0)[0]
        valid = self._visible(layers, top) if visibility else np.ones((H, W), dtype=bool)
        imgs = frames.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return FlowSample(np.ascontiguousarray(imgs[0]), np.ascontiguousarray(imgs[1]),
                          flow.float().numpy(), valid)

    def _visible(self, layers: List[_Layer], top: torch.Tensor) -> np.ndarray:
        """``p + flow(p)`` inside frame 1 and not covered there by a layer above ``top(p)``."""
        H, W = self.size
        occluded = torch.zeros(len(layers), H, W, dtype=torch.bool)
        for j in range(1, len(layers)):  # layer j may hide any layer k < j in frame 1
            lj = layers[j]
            maps = [lj.pose @ np.linalg.inv(lj.motion) @ layers[k].motion for k in range(j)]
            alpha = self._sample(lj.texture[3:], maps, "zeros")[:, 0]
            occluded[:j] |= alpha > 0.5
        target = torch.stack([self._pixels @ torch.from_numpy(l.motion[:2].T) for l in layers])
        inside = ((target[..., 0] >= 0) & (target[..., 0] <= W - 1)
                  & (target[..., 1] >= 0) & (target[..., 1] <= H - 1))
        ok = inside & ~occluded
        return torch.take_along_dim(ok, top[None], dim=0)[0].numpy()


def _both_frames(layer: _Layer) -> List[np.ndarray]:
    """Backward maps of a layer in frame 0 and frame 1 (``P_1 = P_0 M^-1``)."""
    return [layer.pose, layer.pose @ np.linalg.inv(layer.motion)]


def _shape_mask(rng: np.random.Generator, d: int) -> np.ndarray:
    """(d, d) uint8 mask of a random ellipse or star-shaped polygon, 2-px margin."""
    mask = Image.new("L", (d, d), 0)
    draw = ImageDraw.Draw(mask)
    c, r = (d - 1) / 2.0, (d - 1) / 2.0 - 2.0
    if rng.random() < 0.5:
        ry = r * rng.uniform(0.4, 1.0)
        draw.ellipse([c - r, c - ry, c + r, c + ry], fill=255)
    else:
        n = int(rng.integers(3, 9))
        angles = (np.arange(n) + rng.uniform(-0.4, 0.4, n)) * 2.0 * math.pi / n
        radii = r * rng.uniform(0.5, 1.0, n)
        draw.polygon([(c + q * math.cos(a), c + q * math.sin(a))
                      for q, a in zip(radii, angles)], fill=255)
    return np.array(mask)


def backward_warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``out(p) = image(p + flow(p))`` by bilinear lookup (border-clamped), float32.

    ``image`` (H, W) or (H, W, C), ``flow`` (H, W, 2) as ``(dx, dy)``: warping frame 1 with
    the ground-truth flow reconstructs frame 0 at non-occluded pixels.
    """
    img = torch.from_numpy(np.asarray(image, dtype=np.float32))
    chw = img[None, None] if img.dim() == 2 else img.permute(2, 0, 1)[None]
    H, W = chw.shape[-2:]
    f = torch.from_numpy(np.asarray(flow, dtype=np.float32))
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32),
                            torch.arange(W, dtype=torch.float32), indexing="ij")
    grid = torch.stack([2 * (xs + f[..., 0]) / (W - 1) - 1, 2 * (ys + f[..., 1]) / (H - 1) - 1], -1)
    out = F.grid_sample(chw, grid[None], mode="bilinear", padding_mode="border",
                        align_corners=True)[0]
    return (out[0] if img.dim() == 2 else out.permute(1, 2, 0)).numpy()
