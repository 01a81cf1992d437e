"""The extension surface: built-ins use only ``fpibench.extend``, the core imports no plugin,
and a broken plugin is named in a warning instead of breaking fpibench."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import fpibench
import fpibench.extend as extend

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
    return out


def test_builtin_solvers_use_only_the_public_surface():
    for path in sorted((ROOT / "solvers").glob("*.py")):
        private = [m for m in _imports(path) if m.startswith("fpibench") and m != "fpibench.extend"]
        assert not private, f"{path.name} imports {private}; use fpibench.extend"


def test_core_imports_no_plugin():
    for path in sorted((ROOT / "fpibench").glob("*.py")):
        plugins = [m for m in _imports(path) if m.startswith("fpibench.solvers")]
        assert not plugins, f"{path.name} imports {plugins}"


def test_surface_lists_what_it_exports():
    for name in extend.__all__:
        assert hasattr(extend, name), name
    assert extend.register_backward is fpibench.register_backward


def test_a_broken_plugin_warns_with_its_name_and_fpibench_still_works(tmp_path):
    dist = tmp_path / "brokenplugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[fpibench.solvers]\nbroken = no_such_module_for_fpibench\n")
    code = (
        "import warnings, fpibench\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    names = fpibench.BACKWARD.names()\n"
        "print('backward_fpi' in names)\n"
        "print([str(w.message) for w in caught if w.category.__name__ == 'PluginWarning'])\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "True"
    assert "broken" in lines[1] and "no_such_module_for_fpibench" in lines[1] and "skipped" in lines[1]
