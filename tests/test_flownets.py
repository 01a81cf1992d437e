"""FlowNetS shapes, size, input checks and multi-scale loss mechanics."""
import pytest
import torch

from fpibench.tasks.flownets import (DIV_FLOW, MULTISCALE_WEIGHTS, FlowNetS,
                                     full_resolution_flow, multiscale_epe_loss)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def _expected_shapes(b, h, w):
    return [(b, 2, h // f, w // f) for f in (4, 8, 16, 32, 64)]


def test_width_one_size_and_shapes():
    torch.manual_seed(0)
    net = FlowNetS(width=1.0)
    count = n_params(net)
    print(f"FlowNetS(width=1) parameters: {count}")
    assert 30e6 < count < 45e6
    x = torch.randn(1, 6, 384, 512)                  # Flying Chairs resolution
    with torch.no_grad():
        flows = net(x)
        assert [tuple(f.shape) for f in flows] == _expected_shapes(1, 384, 512)
        assert tuple(net.eval()(x).shape) == (1, 2, 96, 128)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_small_width_shapes(batch_norm):
    net = FlowNetS(width=1 / 16, batch_norm=batch_norm)
    count = n_params(net)
    print(f"FlowNetS(width=1/16, batch_norm={batch_norm}) parameters: {count}")
    assert count < 1e6
    x = torch.randn(2, 6, 128, 192)
    flows = net(x)
    assert isinstance(flows, list)
    assert [tuple(f.shape) for f in flows] == _expected_shapes(2, 128, 192)
    net.eval()
    with torch.no_grad():
        assert tuple(net(x).shape) == (2, 2, 32, 48)


def test_width_scales_channels():
    net = FlowNetS(width=1 / 16)
    assert net.conv1[0].out_channels == 4 and net.conv6_1[0].out_channels == 64
    assert net.predict_flow2.in_channels == 8 + 4 + 2   # conv2 + deconv2 + upsampled flow


def test_input_checks():
    net = FlowNetS(width=1 / 16)
    with pytest.raises(ValueError, match="multiples of 64"):
        net(torch.zeros(1, 6, 100, 128))
    with pytest.raises(ValueError, match="6"):
        net(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError):
        FlowNetS(width=0)


def test_multiscale_loss_by_hand():
    gt = torch.zeros(2, 2, 128, 128)
    gt[:, 0], gt[:, 1] = 3.0, 4.0
    flows = [torch.zeros(2, 2, 128 // f, 128 // f) for f in (4, 8, 16, 32, 64)]
    # EPE 5 at every pixel; "sum" = sum over pixels, mean over the batch
    expected = sum(w * 5.0 * (128 // f) ** 2
                   for w, f in zip(MULTISCALE_WEIGHTS, (4, 8, 16, 32, 64)))
    assert multiscale_epe_loss(flows, gt).item() == pytest.approx(expected)
    assert multiscale_epe_loss(flows, gt, reduction="mean").item() == pytest.approx(
        5.0 * sum(MULTISCALE_WEIGHTS))
    exact = [torch.nn.functional.adaptive_avg_pool2d(gt, f.shape[-2:]) for f in flows]
    assert multiscale_epe_loss(exact, gt).item() == pytest.approx(0.0, abs=1e-5)
    assert multiscale_epe_loss(flows[0], gt, weights=[1.0]).item() == pytest.approx(5.0 * 32 * 32)
    with pytest.raises(ValueError):
        multiscale_epe_loss(flows[:2], gt)


def test_full_resolution_flow():
    flow = torch.ones(1, 2, 16, 16)
    out = full_resolution_flow(flow, (64, 64))
    assert out.shape == (1, 2, 64, 64)
    assert torch.allclose(out, torch.full_like(out, DIV_FLOW))


def test_adam_reduces_multiscale_loss():
    torch.manual_seed(0)
    net = FlowNetS(width=1 / 16)
    x = torch.randn(2, 6, 64, 128)
    gt = torch.randn(2, 2, 64, 128).cumsum(-1).cumsum(-2) / 100  # smooth-ish random field
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss = multiscale_epe_loss(net(x), gt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    print(f"multiscale loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    assert losses[-1] < 0.7 * losses[0]
