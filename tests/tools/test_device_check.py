"""scripts/device_check.sh --dry-run: the GPU check's steps (cuda tests, benchmark suite) on CPU
with the tiny ODISE config, so the script and the suite cannot rot between GPU runs."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_device_check_dry_run_writes_the_suite(tmp_path):
    env = dict(os.environ)
    env.update(
        OUT=str(tmp_path),
        PYTHON=sys.executable,
        # the same pytest step on one file (the full suite is what the GPU run collects)
        CUDA_TESTS="tests/diffusion/test_fast_paths.py",
        OMP_NUM_THREADS="1",
    )
    proc = subprocess.run(
        ["bash", "scripts/device_check.sh", "--dry-run"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("device_check.log", "env.txt", "cuda_tests.log", "benchmark.json", "benchmark.md"):
        assert (tmp_path / name).is_file(), name
    assert "IMPORT FAILED" not in (tmp_path / "env.txt").read_text()
    result = json.loads((tmp_path / "benchmark.json").read_text())
    assert result["device"] == "cpu" and result["config"].endswith("odise_tiny.yaml")
    cells = {c["name"]: c for c in result["cells"]}
    modes = {c.get("mode") for c in cells.values()}
    assert modes == {"fp32", "bf16", "train", "bf16+compile"}, modes
    for cell in cells.values():
        # a cell either ran (a positive latency) or says why not; none failed
        assert cell["status"] in ("ok", "skipped"), cell
        if cell["status"] == "ok":
            assert cell["latency_ms"] > 0 and cell["peak_memory_mb"] > 0
    assert any(c["status"] == "ok" and c["mode"] == "train" for c in cells.values())
    agreement = result["agreement"]
    assert 0 <= agreement["sem_seg_rel_error"] < 0.1 and 0.9 <= agreement["sem_seg_same_argmax"] <= 1
    table = (tmp_path / "benchmark.md").read_text()
    assert all(name in table for name in cells)
