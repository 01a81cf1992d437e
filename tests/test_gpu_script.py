"""The prepared GPU call (benchmarks/gpu_paper.sh): valid shell, a usage message, and a stage
step that names missing data instead of shipping an incomplete data folder."""
import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_paper.sh"


def _run(*args, env=None, unset=()):
    env = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in unset}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60)


def test_gpu_script_parses_and_prints_usage():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    res = _run()
    assert res.returncode == 2
    for mode in ("stage", "run", "unpack"):
        assert f"gpu_paper.sh {mode}" in res.stdout


def test_gpu_script_stage_names_the_missing_folder(tmp_path):
    (tmp_path / "dncnn" / "Train400").mkdir(parents=True)
    res = _run("stage", env={"FPIBENCH_DATA": str(tmp_path)})
    assert res.returncode == 2
    assert f"{tmp_path}/dncnn/BSD68 is missing" in res.stderr


def test_gpu_script_run_refuses_outside_the_device_machine():
    res = _run("run", "10", unset=("OUT",))
    assert res.returncode != 0 and "OUT" in res.stderr


def test_gpu_paper_sweep_puts_seed_0_of_table_1_first():
    from fpibench.harness import load_sweep_file

    cells = load_sweep_file("gpu-paper")
    first = cells[:9]
    assert {c.task for c in first} == {"denoise"} and {c.seed for c in first} == {0}
    assert {c.task_options["sigma"] for c in first} == {15, 20, 25}
    assert {c.task for c in cells} == {"denoise", "optical_flow"}
    assert len({c.cell_id for c in cells}) == len(cells)
