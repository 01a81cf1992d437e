"""Metrics against values computed by hand on tiny tensors."""
import math

import pytest
import torch

from fpibench.tasks.metrics import (DEFAULT_THRESHOLDS, aepe, best_threshold_f1, epe_map,
                                    example_f1, mean_psnr, mse, psnr, upsample_flow)


def test_mse_by_hand():
    got = mse(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 0.0, 1.0]))
    assert got.item() == pytest.approx(13 / 3)  # (0 + 4 + 9) / 3
    with pytest.raises(ValueError):
        mse(torch.zeros(3), torch.zeros(4))


def test_psnr_known_errors():
    target = torch.full((2, 1, 4, 4), 100.0)
    pred = target.clone()
    pred[0] += 5.0                      # MSE 25
    pred[1, 0, :2] += 10.0              # half the pixels off by 10: MSE 50
    expected = [10 * math.log10(255 ** 2 / 25), 10 * math.log10(255 ** 2 / 50)]
    got = psnr(pred, target)
    assert got.shape == (2,)
    assert got.tolist() == pytest.approx(expected, abs=1e-4)
    assert expected[0] == pytest.approx(20 * math.log10(51))  # 34.15 dB
    assert mean_psnr(pred, target).item() == pytest.approx(sum(expected) / 2, abs=1e-4)
    # (B, H, W) layout gives the same numbers
    assert psnr(pred[:, 0], target[:, 0]).tolist() == pytest.approx(expected, abs=1e-4)


def test_psnr_clip_and_perfect():
    target = torch.full((1, 1, 2, 2), 255.0)
    pred = torch.full((1, 1, 2, 2), 265.0)            # out of range: clipped to 255 -> exact
    assert math.isinf(psnr(pred, target).item())
    unclipped = psnr(pred, target, clip=False).item()
    assert unclipped == pytest.approx(10 * math.log10(255 ** 2 / 100), abs=1e-4)
    assert psnr(pred / 255, target / 255, max_value=1.0, clip=False).item() == pytest.approx(
        unclipped, abs=1e-4)
    with pytest.raises(ValueError):
        psnr(torch.zeros(4, 4), torch.zeros(4, 4))


def test_psnr_good_beats_constant():
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(3, 1, 16, 16, generator=g) * 255
    good = clean + 3 * torch.randn(3, 1, 16, 16, generator=g)
    constant = torch.full_like(clean, 128.0)
    assert mean_psnr(good, clean) > mean_psnr(constant, clean) + 10


def test_example_f1_three_samples():
    pred = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 1, 0]])
    true = torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 1]])
    # sample 1: 2*1/(2+1) = 2/3; sample 2: nothing predicted nor true -> 1; sample 3: 0
    assert example_f1(pred, true).item() == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert example_f1(pred, true, empty_score=0.0).item() == pytest.approx(2 / 9)
    assert example_f1(true.bool(), true.bool()).item() == 1.0
    assert example_f1(torch.ones(3, 4), true).item() == pytest.approx((2 / 5 + 0 + 4 / 6) / 3)


def test_example_f1_good_beats_constant():
    g = torch.Generator().manual_seed(1)
    true = torch.rand(50, 20, generator=g) < 0.15
    noisy = true ^ (torch.rand(50, 20, generator=g) < 0.05)
    for constant in (torch.zeros_like(true), torch.ones_like(true)):
        assert example_f1(noisy, true) > example_f1(constant, true) + 0.3


def test_best_threshold_f1():
    targets = torch.tensor([[1, 0], [0, 1]])
    scores = torch.tensor([[0.7, 0.2], [0.3, 0.9]])
    # any t in (0.3, 0.7] separates perfectly; the smallest grid point there is 0.35
    assert best_threshold_f1(scores, targets) == pytest.approx((0.35, 1.0))
    # t = 0.25 predicts 3 labels: F1 = mean(2*1/(2+1), 2*1/(1+1)) = 5/6
    assert best_threshold_f1(scores, targets, thresholds=[0.25]) == pytest.approx((0.25, 5 / 6))
    assert DEFAULT_THRESHOLDS[0] == 0.05 and DEFAULT_THRESHOLDS[-1] == 0.95
    assert len(DEFAULT_THRESHOLDS) == 19


def test_aepe_345_triangle():
    gt = torch.zeros(2, 2, 3, 4)
    pred = torch.zeros_like(gt)
    pred[:, 0], pred[:, 1] = 3.0, 4.0                # every error is a 3-4-5 triangle
    assert aepe(pred, gt).item() == pytest.approx(5.0)
    pred[1] = 0.0                                    # second image perfect
    assert aepe(pred, gt).item() == pytest.approx(2.5)
    assert epe_map(pred, gt).shape == (2, 3, 4)
    assert aepe(torch.zeros_like(gt), gt).item() == 0.0


def test_aepe_size_mismatch_is_an_error():
    with pytest.raises(ValueError, match="upsample_flow"):
        aepe(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 16, 16))
    with pytest.raises(ValueError):
        aepe(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))


def test_upsample_flow_scales_vectors():
    flow = torch.zeros(1, 2, 4, 4)
    flow[:, 0], flow[:, 1] = 1.0, 2.0
    up = upsample_flow(flow, (8, 16))                # H x2, W x4
    assert up.shape == (1, 2, 8, 16)
    assert torch.allclose(up[:, 0], torch.full((1, 8, 16), 4.0))
    assert torch.allclose(up[:, 1], torch.full((1, 8, 16), 4.0))
    same = upsample_flow(flow, (8, 16), scale_vectors=False)
    assert torch.allclose(same[:, 1], torch.full((1, 8, 16), 2.0))
    # a good prediction at 1/4 resolution beats a zero flow once upsampled
    gt = upsample_flow(flow, (16, 16))
    assert aepe(upsample_flow(flow, (16, 16)), gt) < aepe(torch.zeros_like(gt), gt)
