"""A store knows which code made each cell: fingerprints without git, stale cells run again
(their old files kept) or kept on request, old cells named by their commit, schema checks."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

from fpibench import fingerprint, results  # noqa: E402
from fpibench.cli import DEFAULT_OUT, main  # noqa: E402
from fpibench.harness import expand_sweep, run_sweep  # noqa: E402
from fpibench.harness._inventory import survey  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PROBE = {"k": 0.8, "dim": 8, "batch": 2}
FLAGS = ["run", "--task", "contractive_tanh", "--backward", "backward_fpi,jfb", "--option", "k=0.8", "--option", "dim=8",
         "--option", "batch=2", "--no-study", "--repeats", "1", "--quiet", "--no-report"]


def _cells():
    return expand_sweep({"task": "contractive_tanh", "backward": ["backward_fpi", "jfb"], "task_options": PROBE,
                         "study": False})


def _rewrite(store, cell, **columns):
    """Make a stored cell look as if other code had made it (``None`` drops the column)."""
    path = results.cell_path(store, cell.cell_id)
    frame = pd.read_parquet(path)
    for name, value in columns.items():
        if value is None:
            frame = frame.drop(columns=[name])
        else:
            frame[name] = value
    frame.to_parquet(path, index=False)


def _fingerprint_in(tmp_path, layout):
    out = subprocess.run([sys.executable, "-c", "import fpibench.fingerprint as f, fpibench.results as r, pathlib, fpibench;"
                          "print(f.code_fingerprint(), r.source_commit(pathlib.Path(fpibench.__file__).parent))"],
                         cwd=tmp_path, env={"PYTHONPATH": str(layout), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_fingerprint_needs_no_git_and_follows_the_sources(tmp_path):
    """An installed layout (solvers inside the package, no .git) gets the checkout's fingerprint
    and commit "unknown"; editing one solver changes it; the report package does not count."""
    site = tmp_path / "site"
    shutil.copytree(ROOT / "fpibench", site / "fpibench", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "solvers", site / "fpibench" / "solvers", ignore=shutil.ignore_patterns("__pycache__"))
    installed, commit = _fingerprint_in(tmp_path, site)
    assert installed == fingerprint.code_fingerprint() and commit == "unknown"
    (site / "fpibench" / "report" / "_markdown.py").write_text("# reads stores only\n", encoding="utf-8")
    assert _fingerprint_in(tmp_path, site)[0] == installed
    gmres = site / "fpibench" / "solvers" / "gmres.py"
    gmres.write_text(gmres.read_text() + "\n# edited\n")
    assert _fingerprint_in(tmp_path, site)[0] != installed


def test_every_cell_records_the_fingerprint_beside_the_commit(tmp_path):
    run_sweep(_cells()[:1], tmp_path, progress=False, repeats=1)
    df = results.load(tmp_path)
    assert set(df["code_fingerprint"]) == {fingerprint.code_fingerprint()}
    assert "git_commit" in df and "threads" in df


def test_cells_from_other_code_are_named_run_again_and_their_files_kept(tmp_path, capsys):
    store = tmp_path / "store"
    cells = _cells()
    run_sweep(cells, store, progress=False, repeats=1)
    _rewrite(store, cells[0], code_fingerprint="src-0000000000000000")
    _rewrite(store, cells[1], code_fingerprint=None, git_commit="0123456789abcdef0123")  # stored before fingerprints
    assert [e.state for e in survey(cells, store)] == ["stale", "stale"]

    assert main([*FLAGS, "--out", str(store), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert f"{cells[0].cell_id}  stale (made by code src-0000000000000000" in text
    assert f"{cells[1].cell_id}  stale (made by commit 0123456789ab (no code fingerprint))" in text
    assert "2 cells: 0 stored, 2 stale, 0 partial, 0 to run" in text
    assert "2 cell(s) of this sweep made by other code" in text and "--reuse-stale keeps them" in text

    assert main([*FLAGS, "--out", str(store), "--reuse-stale"]) == 0
    text = capsys.readouterr().out
    assert "0 cells run, 2 already stored (2 of them made by other code, kept by --reuse-stale)" in text
    from fpibench.report import build_report

    report = build_report(store, formats=("svg",)).read_text()
    assert "2 cell(s) were made by other code than this report's" in report
    assert "commit 0123456789ab (no code fingerprint) — other code than this report's (1)" in report

    assert main([*FLAGS, "--out", str(store)]) == 0
    assert "2 cells run" in capsys.readouterr().out
    assert [e.state for e in survey(cells, store)] == ["stored", "stored"]
    kept = sorted(p.name for p in (store / "superseded").iterdir())
    assert kept == sorted([f"{cells[0].cell_id}.src-0000000000000000.parquet", f"{cells[1].cell_id}.0123456789ab.parquet"])


def test_a_cell_without_fingerprint_at_this_very_commit_counts_as_this_code(tmp_path):
    from fpibench.fingerprint import same_code

    current = {"code_fingerprint": "src-1", "git_commit": "abc"}
    assert same_code({"code_fingerprint": "", "git_commit": "abc"}, current)
    assert not same_code({"code_fingerprint": "", "git_commit": "abc+dirty"}, {**current, "git_commit": "abc+dirty"})
    assert not same_code({"code_fingerprint": "", "git_commit": "unknown"}, {**current, "git_commit": "unknown"})
    assert not same_code({"code_fingerprint": "src-2", "git_commit": "abc"}, current)


def test_committed_paper_store_is_listed_by_the_code_that_made_it_without_running(capsys):
    store = ROOT / "results" / "paper"
    if not (store / "cells").is_dir():
        pytest.skip("no committed paper store")
    before = sorted(p.name for p in store.rglob("*"))
    assert main(["run", "--sweep", "paper-box", "--out", str(store), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "stale (made by commit " in text and "(no code fingerprint)" in text
    assert sorted(p.name for p in store.rglob("*")) == before  # nothing written, moved or deleted


def test_a_parquet_without_the_required_columns_is_named(tmp_path, capsys):
    run_sweep(_cells()[:1], tmp_path, progress=False, repeats=1)
    stray = tmp_path / "cells" / "stray.parquet"
    pd.DataFrame({"x": [1.0], "task": ["t"]}).to_parquet(stray, index=False)
    with pytest.raises(results.ResultsError, match=r"stray\.parquet lacks required column\(s\) model, forward"):
        results.load(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "stray.parquet lacks required column" in err and "Traceback" not in err


def test_the_default_store_is_fresh_and_ignored_by_git():
    assert DEFAULT_OUT != "results/quick"
    probe = ROOT / DEFAULT_OUT / "cells" / "x.parquet"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(probe)], cwd=ROOT)
    if ignored.returncode == 128:
        pytest.skip("not a git checkout")
    assert ignored.returncode == 0


def test_a_fresh_store_is_compared_with_another_cell_by_cell(tmp_path, capsys):
    cells = _cells()
    run_sweep(cells, tmp_path / "committed", progress=False, repeats=1)
    _rewrite(tmp_path / "committed", cells[1], code_fingerprint=None, git_commit="0123456789abcdef0123", status="diverged")
    assert main([*FLAGS, "--out", str(tmp_path / "fresh"), "--compare", str(tmp_path / "committed")]) == 0
    text = capsys.readouterr().out
    assert f"compared with {tmp_path / 'committed'} (code " in text and "2 cells in both stores" in text
    assert f"{cells[1].cell_id}: status ok vs diverged" in text
    assert "1 the same (status, key number to 1e-06 relative), 1 different" in text
