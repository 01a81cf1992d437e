"""The equilibrium image classifier (deq_classify) and the CIFAR-10 binary reader."""
from __future__ import annotations

import hashlib
import io
import resource
import tarfile
import warnings

import numpy as np
import pytest
import torch

import fpibench
import fpibench.data as fd
from fpibench.data import CorruptDataError, DataFormatError, DataNotFoundError
from fpibench.data import _download
from fpibench.data.cifar10 import RECORD_BYTES, SPLITS, read_archive
from fpibench.errors import JacobianTooLargeError
from fpibench.harness._cells import Cell
from fpibench.harness._run import run_cell
from fpibench.solvers.jacobian_inverse import dense_jacobian_bytes
from fpibench.tasks import FPIConfig, get
from fpibench.tasks.deq_classify import _stratified_split

pytest.importorskip("sklearn")

TINY = dict(channels=8, inner_channels=8, groups=4, pool=1, train_limit=64, test_limit=32, batch_size=4)
IMPLICIT = ["backward_fpi", "anderson", "broyden", "gmres", "implicit"]


pytestmark = pytest.mark.usefixtures("one_thread")  # small convolutions: 20x faster than on 2 shared threads


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fpibench.FixedPointWarning)
        yield


def _float64_gradient(task, model, batch, backward, backward_options=None):
    layer = model.core
    layer.backward_method, layer.backward_options = backward, dict(backward_options or {})
    params = [p for p in model.parameters()]
    loss = task.loss(model, batch)
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]), loss.detach()


@pytest.fixture(scope="module")
def tiny64():
    """A tiny float64 classifier solved to 1e-12, its batch and the dense-Jacobian gradient."""
    task = get("deq_classify", "quick", **TINY)
    model = task.build_model("fpi_nn", FPIConfig(forward="anderson", tol=1e-12, max_iter=500), seed=0).double()
    images, labels = task.probe_batch(seed=0)
    batch = (images.double(), labels)
    reference, _ = _float64_gradient(task, model, batch, "jacobian_inverse")
    return task, model, batch, reference


@pytest.mark.parametrize("backward", IMPLICIT)
def test_implicit_gradients_match_the_dense_float64_reference(tiny64, backward):
    task, model, batch, reference = tiny64
    opts = {"tol": 1e-12, "max_iter": 500}
    if backward == "implicit":
        opts["solver"] = "picard"
    grad, _ = _float64_gradient(task, model, batch, backward, opts)
    assert all(s == "converged" for s in model.core.last_stats.forward.status)
    assert float((grad - reference).norm() / reference.norm()) < 1e-8


def test_dense_reference_matches_finite_differences(tiny64):
    """The reference itself: a central difference of the loss along a random parameter direction."""
    task, model, batch, reference = tiny64
    params = list(model.parameters())
    gen = torch.Generator().manual_seed(3)
    direction = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    eps = 1e-5

    def loss_at(sign):
        with torch.no_grad():
            for p, d in zip(params, direction):
                p.add_(sign * eps * d)
            value = float(task.loss(model, batch))
            for p, d in zip(params, direction):
                p.sub_(sign * eps * d)
        return value

    finite = (loss_at(1) - loss_at(-1)) / (2 * eps)
    analytic = float(reference @ torch.cat([d.reshape(-1) for d in direction]))
    assert abs(finite - analytic) < 1e-6 * max(1.0, abs(analytic))


def test_jfb_differs_from_the_exact_gradient(tiny64):
    """The comparison has teeth: Jacobian-free backprop is measurably not the implicit gradient."""
    task, model, batch, reference = tiny64
    grad, _ = _float64_gradient(task, model, batch, "jfb")
    assert float((grad - reference).norm() / reference.norm()) > 1e-3


def test_the_block_keeps_samples_independent(tiny64):
    task, model, batch, _ = tiny64
    u = model.stem(batch[0])
    z = model.core(u).detach()
    fpibench.check_batch_independence(model.core.g.bind(u), z)
    model.core.strict = True  # the layer's own check at the solution
    try:
        model.core(u)
    finally:
        model.core.strict = False
    # a block whose normalisation mixes samples (batch norm in training mode) is refused
    mixing = torch.nn.BatchNorm2d(u.shape[1]).double().train()
    with pytest.raises(fpibench.FixedPointError, match="couples the samples"):
        fpibench.check_batch_independence(lambda x: mixing(model.core.g(x, u)), z)


def test_dense_jacobian_refuses_at_the_documented_size_before_allocating():
    task = get("deq_classify", "quick", train_limit=128)
    assert task.state_size == 32 * 8 * 8 == 2048 and task.config.batch_size == 64
    need = dense_jacobian_bytes(64, 2048, 4)
    assert need == 3 * 2**30 > 2 * 2**30  # 3 GiB against the default budget of 2 GiB
    assert dense_jacobian_bytes(42, 2048, 4) <= 2 * 2**30 < dense_jacobian_bytes(43, 2048, 4)
    model = task.build_model("fpi_nn", FPIConfig(backward="jacobian_inverse"), seed=0)
    batch = task.probe_batch(seed=0)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with pytest.raises(JacobianTooLargeError) as err:
        task.train_step(model, task.optimizer(model), batch)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak_before
    assert err.value.required_bytes == need and err.value.budget_bytes == 2 * 2**30
    assert grown < need / 10, f"peak memory grew by {grown} bytes"
    # CIFAR-10 at the gpu preset: 48 GiB for a single sample
    gpu = get("deq_classify", "gpu")
    assert gpu.state_size == 64 * 32 * 32 and dense_jacobian_bytes(1, gpu.state_size, 4) == 48 * 2**30


def test_harness_records_the_dense_method_as_not_applying():
    cell = Cell(task="deq_classify", model="fpi_nn", backward="jacobian_inverse", epochs=1, study=False,
                task_options={"train_limit": 128})
    out = run_cell(cell.to_dict(), threads=1)
    assert out["status"] == "skipped"
    (row,) = out["rows"]
    assert row["status"] == "skipped" and row["reason"].startswith("does not apply")
    assert "3221225472 bytes" in row["reason"]


def test_short_training_beats_chance_on_digits():
    task = get("deq_classify", "quick", train_limit=640, epochs=2)
    assert task.metric == "test_accuracy" and task.higher_is_better and task.units["test_accuracy"] == "%"
    assert len(task.data["test"][1]) == 359  # 20 % of each class of the 1,797 digits
    model = task.build_model("fpi_nn", FPIConfig(forward="anderson", backward="backward_fpi"), seed=0)
    before = task.evaluate(model)["test_accuracy"]
    history = task.fit(model, seed=0)
    assert history[-1]["test_accuracy"] > 50.0 > before  # chance is 10 %


def test_feedforward_baseline_trains():
    task = get("deq_classify", "quick", **TINY)
    model = task.build_model("feedforward", seed=0)
    loss = task.train_step(model, task.optimizer(model), task.probe_batch(seed=0))
    assert np.isfinite(loss) and loss > 0


def test_split_is_fixed_stratified_and_disjoint():
    labels = fd.load_digits()[1]
    train, test = _stratified_split(labels, 0.2, seed=0)
    assert not set(train) & set(test) and len(train) + len(test) == 1797
    assert np.abs(np.bincount(labels[test]) - 0.2 * np.bincount(labels)).max() <= 0.5
    assert np.array_equal(test, _stratified_split(labels, 0.2, seed=0)[1])
    assert not np.array_equal(test, _stratified_split(labels, 0.2, seed=1)[1])
    a = get("deq_classify", "quick")
    assert a.data_sets() == () and get("deq_classify", "gpu").data_sets() == ("cifar10",)


@pytest.mark.parametrize("option", [{"dataset": "mnist"}, {"channels": 30}, {"test_fraction": 1.0},
                                    {"channels": 0}, {"augment": 1}])
def test_bad_options_are_refused(option):
    with pytest.raises(fpibench.OptionError):
        get("deq_classify", "quick", **option)


def test_shipped_sweep_validates():
    from fpibench.harness import load_sweep_file

    cells = load_sweep_file("deq-classify")
    backwards = {c.backward for c in cells if c.model == "fpi_nn"}
    assert {"backward_fpi", "gmres", "jfb", "unroll", "jacobian_inverse"} <= backwards
    assert not backwards & {"cg", "minres"}  # they need symmetric Jacobians; this block's is not
    assert {c.task for c in cells} == {"deq_classify"} and len({c.seed for c in cells}) >= 2


# ----------------------------------------------------------------------------- CIFAR-10 binary format

def _records(n: int, seed: int = 0) -> tuple[bytes, np.ndarray, np.ndarray]:
    """n records written by hand: label byte, then 1024 red, 1024 green, 1024 blue bytes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 256, (n, 3, 32, 32))
    out = bytearray()
    for label, image in zip(labels, images):
        out.append(int(label))
        for channel in image:  # R, G, B planes, each row-major
            for row in channel:
                out.extend(int(v) for v in row)
    return bytes(out), images, labels


def test_binary_records_round_trip(tmp_path):
    data, images, labels = _records(5)
    assert len(data) == 5 * RECORD_BYTES == 5 * 3073
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(data)
    got_images, got_labels = fd.read_batch_file(path)
    assert got_images.dtype == got_labels.dtype == np.uint8 and got_images.shape == (5, 3, 32, 32)
    assert np.array_equal(got_labels, labels) and np.array_equal(got_images, images)
    assert got_images[2, 1, 3, 4] == data[2 * 3073 + 1 + 1024 + 3 * 32 + 4]  # green plane, row 3, column 4
    again = tmp_path / "again.bin"
    fd.write_batch_file(again, got_images, got_labels)
    assert again.read_bytes() == data


@pytest.mark.parametrize("edit, problem", [
    (lambda d: d[:-1], "not a whole"),
    (lambda d: d + b"\0", "not a whole"),
    (lambda d: b"", "not a whole"),
    (lambda d: d[:3073] + bytes([10]) + d[3074:], "record 1 has label 10"),
])
def test_corrupt_binary_is_refused(tmp_path, edit, problem):
    data, _, _ = _records(3)
    path = tmp_path / "test_batch.bin"
    path.write_bytes(edit(data))
    with pytest.raises(DataFormatError, match=problem) as err:
        fd.read_batch_file(path)
    assert str(path) in str(err.value)
    with pytest.raises(DataFormatError, match="2 records, expected 3"):
        fd.read_batch_file(_write(tmp_path / "short.bin", data[:2 * 3073]), records=3)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _archive(path, records: int = 2, skip: str = "") -> dict:
    """A cifar-10-binary.tar.gz laid out like the release, with ``records`` per file."""
    content = {}
    with tarfile.open(path, "w:gz") as tar:
        for k, name in enumerate(SPLITS["train"] + SPLITS["test"]):
            if name == skip:
                continue
            data, images, labels = _records(records, seed=k)
            content[name] = (images, labels)
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return content


def test_archive_is_read_in_place(tmp_path):
    archive = tmp_path / "cifar-10-binary.tar.gz"
    content = _archive(archive)
    images, labels = read_archive(archive, "train", records=2)
    assert images.shape == (10, 3, 32, 32)
    assert np.array_equal(labels, np.concatenate([content[n][1] for n in SPLITS["train"]]))
    test_images, _ = read_archive(archive, "test", records=2)
    assert np.array_equal(test_images, content["test_batch.bin"][0])
    with pytest.raises(DataFormatError, match="2 records, expected 10000"):
        read_archive(archive, "test")  # the release's count is checked by default
    _archive(tmp_path / "partial.tar.gz", skip="data_batch_3.bin")
    with pytest.raises(DataFormatError, match="data_batch_3.bin"):
        read_archive(tmp_path / "partial.tar.gz", "train", records=2)
    (tmp_path / "cut.tar.gz").write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(DataFormatError, match="cannot read"):
        read_archive(tmp_path / "cut.tar.gz", "train", records=2)


def test_download_spec_and_digest_check(tmp_path, monkeypatch):
    (entry,) = fd.dataset_files("cifar10")
    assert entry.url == "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    assert entry.sha256 == "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
    monkeypatch.setenv("FPIBENCH_OFFLINE", "1")
    with pytest.raises(DataNotFoundError, match="cifar-10-binary.tar.gz") as err:
        fd.load_cifar10("test", data_dir=tmp_path)
    assert entry.url in str(err.value)
    archive = tmp_path / "cifar10" / "cifar-10-binary.tar.gz"
    archive.parent.mkdir()
    _archive(archive)
    with pytest.raises(CorruptDataError, match="sha256 mismatch"):  # not the release: refused by its digest
        fd.load_cifar10("test", data_dir=tmp_path)
    # with the manifest pinning this archive's digest, the loader reads it
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    pinned = tuple(e._replace(sha256=digest) if e.dataset == "cifar10" else e for e in _download._manifest())
    monkeypatch.setattr(_download, "_manifest", lambda: pinned)
    with pytest.raises(DataFormatError, match="2 records, expected 10000"):
        fd.load_cifar10("test", data_dir=tmp_path)
