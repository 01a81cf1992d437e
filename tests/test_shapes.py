"""FlyingShapes: determinism, layout, and exactness of the ground-truth flow."""
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from fpibench.data.shapes import FlyingShapes, Motion, backward_warp

TRAIN400 = Path("/work/shared/data/dncnn/Train400")


@pytest.fixture(scope="module")
def photos():
    from PIL import Image
    files = sorted(TRAIN400.glob("*.png"))[:5]
    if not files:
        pytest.skip(f"no images under {TRAIN400}")
    return [np.array(Image.open(f)) for f in files]


def ramp(h=180, w=200):
    """uint8 RGB image affine in (x, y), integer-valued so it is stored exactly:
    bilinear resampling reproduces it exactly."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([30 + x, 50 + y, 240 - y], axis=-1).astype(np.uint8)


def lookup(img, flow, margin=4):
    """Independent bilinear lookup img(p + flow(p)) and a mask of interior targets."""
    H, W = flow.shape[:2]
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    cx, cy = xs + flow[..., 0], ys + flow[..., 1]
    out = np.stack([map_coordinates(img[..., c].astype(np.float64), [cy, cx], order=1)
                    for c in range(img.shape[2])], axis=-1)
    inside = (cx >= 0) & (cx <= W - 1) & (cy >= 0) & (cy <= H - 1)
    inside[:margin] = inside[-margin:] = False
    inside[:, :margin] = inside[:, -margin:] = False
    return out, inside


def test_layout_and_dtypes(photos):
    ds = FlyingShapes(photos, size=(96, 128), length=7)
    assert len(ds) == 7
    img0, img1, flow = ds[0]
    assert img0.shape == img1.shape == (96, 128, 3) and img0.dtype == img1.dtype == np.uint8
    assert flow.shape == (96, 128, 2) and flow.dtype == np.float32
    assert np.abs(flow).max() > 0.5 and not np.array_equal(img0, img1)
    sample = ds.render(0)
    assert sample.valid.shape == (96, 128) and sample.valid.dtype == bool
    with pytest.raises(IndexError):
        ds[7]
    with pytest.raises(ValueError):
        FlyingShapes([])


def test_determinism(photos):
    a = FlyingShapes(photos, size=(64, 64), seed=5, length=10)
    b = FlyingShapes(photos, size=(64, 64), seed=5, length=10)
    c = FlyingShapes(photos, size=(64, 64), seed=6, length=10)
    for x, y in zip(a[3], b[3]):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(a[3], a[3]):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[3][2], c[3][2])
    assert not np.array_equal(a[3][0], a[4][0])


@pytest.mark.parametrize("motion", [Motion(0.06, 0.0, 0.0), Motion(0.06, 8.0, 0.1)])
def test_flow_exact_on_affine_texture(motion):
    """A texture affine in (x, y) survives bilinear rendering and lookup exactly, so
    img0(p) == img1(p + flow(p)) up to the two uint8 roundings (<= 1 grey level)."""
    ds = FlyingShapes([ramp()], size=(64, 96), n_objects=(0, 0), background_motion=motion,
                      tint=False, length=4)
    for i in range(4):
        img0, img1, flow = ds[i]
        warped, inside = lookup(img1, flow)
        assert inside.mean() > 0.6
        assert np.abs(warped - img0)[inside].max() <= 1.0 + 1e-6


def test_pure_translation_on_photos(photos):
    ds = FlyingShapes(photos, size=(128, 160), n_objects=(0, 0),
                      background_motion=Motion(0.08, 0.0, 0.0), seed=1, length=4)
    for i in range(4):
        img0, img1, flow = ds[i]
        assert np.ptp(flow[..., 0]) == 0 and np.ptp(flow[..., 1]) == 0  # one global shift
        warped, inside = lookup(img1, flow)
        err = np.abs(warped - img0)[inside]
        zero = np.abs(img1.astype(np.float64) - img0)[inside]
        assert err.mean() < 2.0, err.mean()                 # only interpolation error
        assert err.mean() < 0.3 * zero.mean()


def test_objects_photometric_consistency(photos):
    ds = FlyingShapes(photos, size=(128, 128), n_objects=(2, 3), seed=2, length=6)
    ratios = []
    for i in range(6):
        s = ds.render(i)
        assert len(np.unique(s.flow.reshape(-1, 2), axis=0)) > 1     # objects move differently
        warped = backward_warp(s.img1, s.flow)
        ok = s.valid
        assert 0.3 < ok.mean() < 1.0
        err = np.abs(warped - s.img0)[ok].mean()
        zero = np.abs(s.img1.astype(np.float32) - s.img0)[ok].mean()
        ratios.append(err / zero)
    assert max(ratios) < 0.3, ratios


def test_backward_warp_integer_shift():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (20, 30, 3)).astype(np.uint8)
    flow = np.zeros((20, 30, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2.0, -3.0
    out = backward_warp(img, flow)
    np.testing.assert_allclose(out[3:, :-2], img[:-3, 2:], atol=1e-3)
    assert backward_warp(img[..., 0], flow).shape == (20, 30)
