"""Readers of the real data sets: known facts on the real files, clear errors on corrupt ones."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fpibench.data as fd
from fpibench.data import DataFormatError, DataNotFoundError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CHAIRS = SHARED / "flyingchairs_examples"
SPLIT_LIST = CHAIRS / "FlyingChairs_release_test_train_split.list"


@pytest.fixture(scope="module")
def shared_data():
    """Point FPIBENCH_DATA at ../shared/data (offline) for the module; skip if absent."""
    if not SHARED.is_dir():
        pytest.skip(f"real data not found at {SHARED}; put the shared data sets there to run these tests")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FPIBENCH_DATA", str(SHARED))
        mp.setenv("FPIBENCH_OFFLINE", "1")
        fd.set_data_dir(None)
        yield SHARED


@pytest.fixture(scope="module")
def bibtex_train(shared_data):
    return fd.load_bibtex("train")


# ----------------------------------------------------------------------------- Bibtex

def test_bibtex_train_facts(bibtex_train):
    X, Y = bibtex_train
    assert X.shape == (4880, 1836) and Y.shape == (4880, 159)
    assert X.dtype == Y.dtype == np.float32
    assert np.isin(X, (0.0, 1.0)).all() and np.isin(Y, (0.0, 1.0)).all()
    cardinality = float(Y.sum(axis=1).mean())
    print(f"Bibtex train label cardinality: {cardinality:.4f}")
    assert abs(cardinality - 2.40) < 0.05
    assert int(Y.sum()) == 11616  # the file's exact label count (digest-pinned)


def test_bibtex_test_split(shared_data):
    X, Y = fd.load_bibtex("test")
    assert X.shape == (2515, 1836) and Y.shape == (2515, 159)
    with pytest.raises(ValueError, match="split"):
        fd.load_bibtex("val")


def test_arff_header_mismatch(shared_data):
    with pytest.raises(DataFormatError, match="1995 attributes"):
        fd.read_arff_sparse(SHARED / "bibtex" / "bibtex-test.arff", n_features=1836, n_labels=158)


SMALL_ARFF = """@relation toy
@attribute a {0,1}
@attribute 'b c' {0,1}
@attribute d numeric
@attribute TAG_x {0,1}
@attribute TAG_y {0,1}

@data
{0 1,2 0.5,3 1}
% a comment
{}
"""


def test_arff_small_infers_labels(tmp_path):
    path = tmp_path / "toy.arff"
    path.write_text(SMALL_ARFF)
    X, Y = fd.read_arff_sparse(path)
    np.testing.assert_array_equal(X, [[1, 0, 0.5], [0, 0, 0]])
    np.testing.assert_array_equal(Y, [[1, 0], [0, 0]])


@pytest.mark.parametrize("row, problem", [
    ("{0 1,9 1}", "out of range"),
    ("{0 x}", "non-numeric"),
    ("{0 1,2 1", "unbalanced braces"),
    ("{0}", "bad sparse entry"),
])
def test_arff_bad_row_names_file_and_line(tmp_path, row, problem):
    path = tmp_path / "bad.arff"
    path.write_text(SMALL_ARFF + row + "\n")
    with pytest.raises(DataFormatError, match=problem) as err:
        fd.read_arff_sparse(path)
    assert err.value.line == SMALL_ARFF.count("\n") + 1
    assert f"{path}:{err.value.line}" in str(err.value)


def _truncated_copy(tmp_path, n_bytes: int) -> Path:
    data = (SHARED / "bibtex" / "bibtex-test.arff").read_bytes()
    path = tmp_path / "bibtex-test.arff"
    path.write_bytes(data[:n_bytes])
    return path


def test_arff_truncated(shared_data, tmp_path):
    text = (SHARED / "bibtex" / "bibtex-test.arff").read_text()
    lines = text.splitlines()
    at_line = len("\n".join(lines[:lines.index("@data") + 101])) + 1  # header + 100 rows
    with pytest.raises(DataFormatError, match="100 data rows, expected 2515"):
        fd.read_arff_sparse(_truncated_copy(tmp_path, at_line), 1836, 159, n_rows=2515)
    with pytest.raises(DataFormatError, match="unbalanced braces"):
        fd.read_arff_sparse(_truncated_copy(tmp_path, len(text) // 2), 1836, 159, n_rows=2515)
    with pytest.raises(DataFormatError, match="no @data"):
        fd.read_arff_sparse(_truncated_copy(tmp_path, 500), 1836, 159)


# ----------------------------------------------------------------------------- images

@pytest.mark.parametrize("name, count, shapes", [
    ("train400", 400, {(180, 180)}),
    ("bsd68", 68, {(481, 321), (321, 481)}),
    ("set12", 12, {(256, 256), (512, 512)}),
])
def test_image_sets(shared_data, name, count, shapes):
    images = fd.load_image_set(name)
    assert len(images) == count
    assert {im.shape for im in images} <= shapes
    assert all(im.dtype == np.float32 and im.min() >= 0 and im.max() <= 255 for im in images)


def test_rgb_png_is_read_as_pil_luma(shared_data, tmp_path):
    rgb = fd.read_ppm(CHAIRS / "0000000-img0.ppm")
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    gray = fd.read_gray_image(tmp_path / "rgb.png")
    np.testing.assert_array_equal(gray, np.asarray(Image.fromarray(rgb).convert("L"), np.float32))
    np.testing.assert_array_equal(fd.rgb_to_gray(rgb), gray)


def test_train400_wrong_size_names_file(shared_data, tmp_path):
    src = SHARED / "dncnn" / "Train400"
    dst = tmp_path / "dncnn" / "Train400"
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).symlink_to(f)
    bad = dst / "test_123.png"
    bad.unlink()
    Image.fromarray(np.zeros((179, 180), np.uint8)).save(bad)
    with pytest.raises(DataFormatError, match="179x180") as err:
        fd.load_image_set("train400", data_dir=tmp_path, verify=False)
    assert "test_123.png" in str(err.value)
    with pytest.raises(fd.CorruptDataError, match="test_123.png"):
        fd.load_image_set("train400", data_dir=tmp_path)


def test_garbage_png(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(DataFormatError, match="x.png"):
        fd.read_gray_image(path)


# ----------------------------------------------------------------------------- ppm / flo

def test_ppm_and_flo_examples(shared_data):
    img = fd.read_ppm(CHAIRS / "0000003-img1.ppm")
    assert img.shape == (384, 512, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img, np.asarray(Image.open(CHAIRS / "0000003-img1.ppm")))
    flow = fd.read_flo(CHAIRS / "0000003-gt.flo")
    assert flow.shape == (384, 512, 2) and flow.dtype == np.float32 and np.isfinite(flow).all()


def test_ppm_truncated_and_bad_header(shared_data, tmp_path):
    path = tmp_path / "cut.ppm"
    path.write_bytes((CHAIRS / "0000000-img0.ppm").read_bytes()[:-10])
    with pytest.raises(DataFormatError, match="truncated") as err:
        fd.read_ppm(path)
    assert "cut.ppm" in str(err.value)
    path.write_bytes(b"P5\n2 2\n255\n" + bytes(4))
    with pytest.raises(DataFormatError, match="P6"):
        fd.read_ppm(path)


def test_flo_round_trip(shared_data, tmp_path):
    flow = np.random.default_rng(0).normal(scale=20, size=(7, 5, 2)).astype(np.float32)
    fd.write_flo(tmp_path / "a.flo", flow)
    np.testing.assert_array_equal(fd.read_flo(tmp_path / "a.flo"), flow)
    real = CHAIRS / "0000001-gt.flo"
    fd.write_flo(tmp_path / "b.flo", fd.read_flo(real))
    assert (tmp_path / "b.flo").read_bytes() == real.read_bytes()
    with pytest.raises(ValueError, match="shape"):
        fd.write_flo(tmp_path / "c.flo", flow[..., 0])


@pytest.mark.parametrize("edit, problem", [
    (lambda b: b"XXXX" + b[4:], "wrong .flo magic"),
    (lambda b: b[:-100], "truncated"),
    (lambda b: b[:6], "truncated"),
    (lambda b: b[:4] + np.array([10**9, 10**9], "<i4").tobytes() + b[12:], "absurd"),
    (lambda b: b + b"\0" * 8, "trailing"),
])
def test_flo_corrupt(tmp_path, edit, problem):
    good = tmp_path / "good.flo"
    fd.write_flo(good, np.ones((4, 3, 2), np.float32))
    bad = tmp_path / "bad.flo"
    bad.write_bytes(edit(good.read_bytes()))
    with pytest.raises(DataFormatError, match=problem) as err:
        fd.read_flo(bad)
    assert "bad.flo" in str(err.value)


# ----------------------------------------------------------------------------- Flying Chairs

def test_split_list_counts(shared_data):
    codes = fd.read_split_list(SPLIT_LIST)
    assert len(codes) == 22872
    assert (codes == 1).sum() == 22232 and (codes == 2).sum() == 640


def test_chairs_examples(shared_data):
    samples = fd.load_chairs_examples()
    assert len(samples) == 9
    for img0, img1, flow in samples:
        assert img0.shape == img1.shape == (384, 512, 3) and flow.shape == (384, 512, 2)
    train = fd.FlyingChairs(CHAIRS, split="train")
    assert train.layout.name == "examples" and train.indices == list(range(9))
    with pytest.raises(ValueError, match="no Flying Chairs samples in split 'val'"):
        fd.FlyingChairs(CHAIRS, split="val")


def test_chairs_release_layout(shared_data, tmp_path):
    """The full-release naming, built from three real example samples."""
    data = tmp_path / "FlyingChairs_release" / "data"
    data.mkdir(parents=True)
    for i in range(3):
        for src, dst in zip(("img0.ppm", "img1.ppm", "gt.flo"), ("img1.ppm", "img2.ppm", "flow.flo")):
            (data / f"{i + 1:05d}_{dst}").symlink_to(CHAIRS / f"{i:07d}-{src}")
    (tmp_path / "FlyingChairs_release" / "FlyingChairs_train_val.txt").write_text("1\n2\n1\n")
    root = tmp_path / "FlyingChairs_release"
    train, val = fd.FlyingChairs(root, "train"), fd.FlyingChairs(root, "val")
    assert train.layout.name == "release" and train.indices == [0, 2] and val.indices == [1]
    img0, img1, flow = val[0]
    np.testing.assert_array_equal(flow, fd.read_flo(CHAIRS / "0000001-gt.flo"))
    np.testing.assert_array_equal(img1, fd.read_ppm(CHAIRS / "0000001-img1.ppm"))
    (root / "FlyingChairs_train_val.txt").write_text("1\n2\n")
    with pytest.raises(DataFormatError, match="2 split codes"):
        fd.FlyingChairs(root, "train")
    (data / "00002_flow.flo").unlink()
    with pytest.raises(DataNotFoundError, match="00002_flow.flo"):
        fd.FlyingChairs(root, "all")


def test_chairs_denoising_crops(shared_data):
    train, test = fd.chairs_denoising_crops(CHAIRS, n=9)
    assert len(train) == 7 and len(test) == 2
    assert all(c.shape == (180, 180) and c.dtype == np.float32 for c in train + test)
    rgb = np.asarray(Image.open(CHAIRS / "0000008-img0.ppm"))[102:282, 166:346]
    np.testing.assert_array_equal(test[-1], np.asarray(Image.fromarray(rgb).convert("L"), np.float32))
    with pytest.raises(DataNotFoundError, match="only 9 Flying Chairs samples"):
        fd.chairs_denoising_crops(CHAIRS, n=10)
    train, test = fd.chairs_denoising_crops(CHAIRS, n=10, allow_fewer=True)
    assert len(train) + len(test) == 9


def test_chairs_no_samples(tmp_path):
    with pytest.raises(DataNotFoundError, match="no Flying Chairs samples"):
        fd.FlyingChairs(tmp_path, "all")
