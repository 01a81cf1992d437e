"""Data dir setting, manifest, digest checks and downloads from a real local HTTP server."""
from __future__ import annotations

import functools
import http.server
import shutil
import socket
import threading
from pathlib import Path

import pytest

import fpibench.data as fd
from fpibench.data import CorruptDataError, DataNotFoundError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SET12 = "dncnn/Set12"
ENV = ("FPIBENCH_DATA", "FPIBENCH_MIRROR", "FPIBENCH_OFFLINE", "XDG_CACHE_HOME")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No inherited data settings; the process-wide data dir is reset after each test."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    fd.set_data_dir(None)
    yield
    fd.set_data_dir(None)


@pytest.fixture
def shared_data(monkeypatch):
    if not SHARED.is_dir():
        pytest.skip(f"real data not found at {SHARED}; put the shared data sets there to run these tests")
    monkeypatch.setenv("FPIBENCH_DATA", str(SHARED))
    return SHARED


class _Server:
    """A real http.server on 127.0.0.1 serving ``root``; records the paths requested."""

    def __init__(self, root: Path):
        self.root, self.requests = root, []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                server.requests.append(self.path)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mirror"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def mirror(shared_data, tmp_path, monkeypatch):
    """A mirror (layout = data dir layout) holding a copy of Set12, set as FPIBENCH_MIRROR."""
    shutil.copytree(SHARED / SET12, tmp_path / "www" / "mirror" / SET12)
    server = _Server(tmp_path / "www")
    monkeypatch.setenv("FPIBENCH_MIRROR", server.url)
    yield server
    server.close()


def _partial_set12(root: Path, keep: int) -> Path:
    """A data dir holding the first ``keep`` Set12 files; returns it."""
    folder = root / SET12
    folder.mkdir(parents=True)
    for f in sorted((SHARED / SET12).iterdir())[:keep]:
        shutil.copy(f, folder / f.name)
    return root


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mirror"


# ----------------------------------------------------------------------------- data dir

def test_data_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path / "home"))
    assert fd.data_dir() == tmp_path / "home" / ".cache" / "fpibench"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert fd.data_dir() == tmp_path / "xdg" / "fpibench"
    monkeypatch.setenv("FPIBENCH_DATA", str(tmp_path / "env"))
    assert fd.data_dir() == tmp_path / "env"
    fd.set_data_dir(tmp_path / "flag")
    assert fd.data_dir() == tmp_path / "flag"
    assert fd.data_dir(tmp_path / "arg") == tmp_path / "arg"
    fd.set_data_dir(None)
    assert fd.data_dir() == tmp_path / "env"


# ----------------------------------------------------------------------------- manifest

def test_manifest_matches_published_digests(shared_data):
    sums = dict(line.split()[::-1] for line in (SHARED / "SHA256SUMS").read_text().splitlines())
    sums = {path.removeprefix("./"): digest for path, digest in sums.items()}
    shared = [name for name in fd.DATASETS if name != "cifar10"]  # CIFAR-10 comes from its authors' page
    entries = [e for name in shared for e in fd.dataset_files(name)]
    assert {e.path: e.sha256 for e in entries} == sums
    counts = {name: len(fd.dataset_files(name)) for name in fd.DATASETS}
    assert counts == {"bibtex": 3, "train400": 400, "bsd68": 68, "set12": 12, "flyingchairs_examples": 28,
                      "cifar10": 1}


@pytest.mark.parametrize("name, prefix", [
    ("bibtex", "philqc/deep-value-networks-pytorch/15ec69d/data/bibtex/"),
    ("train400", "cszn/DnCNN/e93b278/TrainingCodes/DnCNN_TrainingCodes_v1.0/data/Train400/"),
    ("bsd68", "cszn/DnCNN/e93b278/testsets/BSD68/"),
    ("set12", "cszn/DnCNN/e93b278/testsets/Set12/"),
    ("flyingchairs_examples", "lmb-freiburg/flownet2/b92e198/data/"),
])
def test_manifest_urls(name, prefix):
    for entry in fd.dataset_files(name):
        assert entry.url.startswith("https://raw.githubusercontent.com/" + prefix)
        assert entry.url.endswith("/" + Path(entry.path).name)
        assert fd.source_url(entry) == entry.url


def test_mirror_url(monkeypatch):
    monkeypatch.setenv("FPIBENCH_MIRROR", "http://host/base/")
    entry = fd.dataset_files("set12")[0]
    assert fd.source_url(entry) == "http://host/base/dncnn/Set12/01.png"


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown data set"):
        fd.ensure_dataset("mnist")


# ----------------------------------------------------------------------------- digests

def test_present_dataset_needs_no_download(shared_data):
    assert fd.ensure_dataset("set12", download=False) == SHARED / SET12
    assert len(fd.verify_dataset("train400")) == 400


def test_corrupt_present_file(shared_data, tmp_path):
    root = _partial_set12(tmp_path, keep=12)
    bad = root / SET12 / "05.png"
    bad.write_bytes(bad.read_bytes()[:-1] + b"\0")
    with pytest.raises(CorruptDataError, match="05.png") as err:
        fd.verify_dataset("set12", root)
    assert err.value.expected in str(err.value) and err.value.actual in str(err.value)
    with pytest.raises(CorruptDataError, match="05.png"):
        fd.load_image_set("set12", data_dir=root, download=False)


# ----------------------------------------------------------------------------- downloads

def test_missing_files_are_downloaded(mirror, tmp_path):
    root = _partial_set12(tmp_path / "data", keep=10)
    images = fd.load_image_set("set12", data_dir=root)
    assert len(images) == 12
    assert sorted(mirror.requests) == ["/mirror/dncnn/Set12/11.png", "/mirror/dncnn/Set12/12.png"]
    assert [p.name for p in fd.verify_dataset("set12", root)][-2:] == ["11.png", "12.png"]
    assert not list((root / SET12).glob(".*"))


def test_corrupt_download_is_rejected(mirror, tmp_path):
    served = mirror.root / "mirror" / SET12 / "12.png"
    served.write_bytes(served.read_bytes()[:-1] + b"\0")
    root = _partial_set12(tmp_path / "data", keep=11)
    with pytest.raises(CorruptDataError, match="12.png") as err:
        fd.ensure_dataset("set12", root)
    entry = fd.dataset_files("set12")[-1]
    assert err.value.expected == entry.sha256 and entry.sha256 in str(err.value)
    assert err.value.actual in str(err.value)
    assert sorted(p.name for p in (root / SET12).iterdir()) == [f"{i:02d}.png" for i in range(1, 12)]


def test_server_down(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("FPIBENCH_MIRROR", _closed_port_url())
    root = tmp_path / "empty"
    with pytest.raises(DataNotFoundError) as err:
        fd.ensure_dataset("set12", root)
    msg = str(err.value)
    for part in (str(root), "12 of 12 files missing", "dncnn/Set12/01.png", "and 7 more",
                 "FPIBENCH_DATA", "failed"):
        assert part in msg
    assert not (root / SET12).exists() or not list((root / SET12).iterdir())


def test_not_on_server(mirror, tmp_path):
    (mirror.root / "mirror" / SET12 / "12.png").unlink()
    root = _partial_set12(tmp_path / "data", keep=11)
    with pytest.raises(DataNotFoundError, match="404") as err:
        fd.ensure_dataset("set12", root)
    assert "dncnn/Set12/12.png" in str(err.value)
    assert not list((root / SET12).glob(".*"))


def test_offline(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("FPIBENCH_OFFLINE", "1")
    root = _partial_set12(tmp_path / "data", keep=11)
    with pytest.raises(DataNotFoundError, match="Downloading is off") as err:
        fd.load_image_set("set12", data_dir=root)
    assert "dncnn/Set12/12.png" in str(err.value) and mirror.url in str(err.value)
    assert mirror.requests == []
    monkeypatch.delenv("FPIBENCH_OFFLINE")
    with pytest.raises(DataNotFoundError, match="Downloading is off"):
        fd.ensure_dataset("set12", root, download=False)
    assert mirror.requests == []
