"""The image tasks (denoise, optical_flow) on real data, with tiny configurations."""
import warnings
from pathlib import Path

import pytest
import torch

import fpibench
import fpibench.data
import fpibench.tasks.denoise  # noqa: F401  (registers the task)
import fpibench.tasks.optical_flow  # noqa: F401
from fpibench.tasks._base import FPIConfig, get

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

TINY = {
    "denoise": dict(train_limit=8, train_crop=32, crops_per_image=1, batch_size=4, epochs=1,
                    test_limit=4, test_crop=48, max_iter=15, lr=1e-2),
    "optical_flow": dict(width=1 / 32, n_train=4, train_size=(64, 64), batch_size=2, epochs=1,
                         max_iter=15),
}
GRADIENTS = (FPIConfig(backward="backward_fpi"), FPIConfig(backward="jfb"))


@pytest.fixture(scope="module", autouse=True)
def data_dir():
    needed = [DATA / "dncnn" / "Train400", DATA / "dncnn" / "BSD68", DATA / "dncnn" / "Set12",
              DATA / "flyingchairs_examples"]
    missing = [str(p) for p in needed if not p.is_dir()]
    if missing:
        pytest.skip(f"real data not present: {', '.join(missing)}")
    fpibench.data.set_data_dir(DATA)
    yield DATA
    fpibench.data.set_data_dir(None)


@pytest.fixture(scope="module")
def tasks():
    torch.set_num_threads(2)
    return {name: get(name, "quick", **TINY[name]) for name in TINY}


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_model_trains_and_evaluates(tasks, name):
    warnings.simplefilter("ignore", fpibench.FixedPointWarning)
    task = tasks[name]
    batch = task.probe_batch(seed=0)
    for kind in task.models:
        for fpi in GRADIENTS if kind == "fpi_nn" else GRADIENTS[:1]:
            model = task.build_model(kind, fpi, seed=0)
            model.train()
            loss = task.train_step(model, task.optimizer(model), batch)
            assert loss == loss and loss > 0  # finite, positive
        model.eval()
        with torch.no_grad():
            result = task.evaluate(model)
        assert task.metric in result
        assert all(torch.isfinite(torch.tensor(v)) for v in result.values())


@pytest.mark.parametrize("name", sorted(TINY))
def test_short_training_improves_fpi_nn(tasks, name):
    warnings.simplefilter("ignore", fpibench.FixedPointWarning)
    task = tasks[name]
    model = task.build_model("fpi_nn", seed=0)
    model.eval()
    with torch.no_grad():
        before = task.evaluate(model)[task.metric]
    after = task.fit(model, epochs=2 if name == "denoise" else 1, seed=0)[-1][task.metric]
    better = after > before if task.higher_is_better else after < before
    assert better, (name, before, after)


def test_test_noise_identical_across_instances(tasks):
    a = tasks["denoise"]
    b = get("denoise", "quick", **TINY["denoise"])
    for name in ("bsd68", "set12"):
        for (clean_a, noisy_a), (clean_b, noisy_b) in zip(a.data["test"][name], b.data["test"][name]):
            assert torch.equal(clean_a, clean_b) and torch.equal(noisy_a, noisy_b)
            assert not torch.equal(noisy_a, clean_a)
    # the noise depends on sigma, and the training noise on the seed
    c = get("denoise", "quick", **{**TINY["denoise"], "sigma": 15})
    assert not torch.equal(c.data["test"]["set12"][0][1], a.data["test"]["set12"][0][1])
    n0, _ = next(iter(a.train_batches(1, 0)))
    n0b, _ = next(iter(b.train_batches(1, 0)))
    n1, _ = next(iter(a.train_batches(1, 1)))
    assert torch.equal(n0, n0b) and not torch.equal(n0, n1)


def test_metric_names_and_direction(tasks):
    assert tasks["denoise"].metric == "psnr_bsd68" and tasks["denoise"].higher_is_better
    assert tasks["optical_flow"].metric == "aepe_chairs_examples"
    assert not tasks["optical_flow"].higher_is_better
    assert tasks["denoise"].models == ("fpi_nn", "feedforward")
    assert tasks["optical_flow"].models == ("fpi_nn", "flownets", "feedforward")


@pytest.mark.parametrize("name", sorted(TINY))
def test_errors(name):
    task = get(name, "quick")
    with pytest.raises(fpibench.UnknownMethodError):
        task.build_model("fpi_gd")
    with pytest.raises(fpibench.OptionError):
        get(name, "quick", no_such_option=1)
    with pytest.raises(fpibench.OptionError):
        get(name, "nope")


def test_bad_option_values():
    with pytest.raises(fpibench.OptionError):
        get("denoise", "quick", dataset="imagenet")
    with pytest.raises(fpibench.OptionError):
        get("denoise", "quick", dataset="chairs")  # needs chairs_root
    with pytest.raises(fpibench.OptionError):
        get("optical_flow", "quick", train_size=(100, 128))


def test_flow_reports_the_zero_flow_reference(tasks):
    """The zero-flow aEPE, recomputed with numpy from the raw samples: a floor every model must beat."""
    import numpy as np

    task = tasks["optical_flow"]
    model = task.build_model("flownets", seed=0).eval()
    with torch.no_grad():
        result = task.evaluate(model)
    samples = fpibench.data.load_chairs_examples()
    expected = np.mean([np.linalg.norm(np.asarray(flow, dtype=np.float64), axis=-1).mean() for *_, flow in samples])
    assert result["aepe_zero_flow_examples"] == pytest.approx(expected, rel=1e-5)


def test_feedforward_init_scale_ablation_scales_the_default_initialisation():
    """The baseline keeps PyTorch's initialisation unless ``feedforward_init_scale`` is set;
    then every weight and bias is that multiple of the default one (same seed)."""
    default = get("denoise", preset="quick").build_model("feedforward", seed=3)
    small = get("denoise", preset="quick", feedforward_init_scale=0.1).build_model("feedforward", seed=3)
    pairs = list(zip(default.parameters(), small.parameters()))
    assert len(pairs) == 4
    for a, b in pairs:
        torch.testing.assert_close(b, 0.1 * a)
    fpi = get("denoise", preset="quick", feedforward_init_scale=0.1).build_model("fpi_nn", FPIConfig(), seed=3)
    ref = get("denoise", preset="quick").build_model("fpi_nn", FPIConfig(), seed=3)
    for a, b in zip(ref.parameters(), fpi.parameters()):  # the FPI model is not affected
        assert torch.equal(a, b)
