"""``--help`` and argument errors of every tool and dataset script answer before torch,
detectron2 or odise_ext is imported (each used to take up to a minute here).

Each script runs in a fresh interpreter as ``__main__`` (``runpy``); the harness reports the
exit status, the output and whether heavy modules were imported by then. No timing."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# modules of tools/ that are imported by tools, not run
NOT_TOOLS = {"one_line_errors.py", "benchmark_suite.py"}
SCRIPTS = sorted(
    [p for p in (ROOT / "tools").glob("*.py") if p.name not in NOT_TOOLS]
    + [p for p in (ROOT / "datasets").glob("prepare_*.py")]
)
HEAVY = ("torch", "detectron2", "odise_ext", "numpy", "gradio")

HARNESS = r"""
import contextlib, io, json, runpy, sys
path, args = sys.argv[1], sys.argv[2:]
sys.argv = [path, *args]
sys.path.insert(0, path.rsplit("/", 1)[0])  # as `python path` does
out, err, code = io.StringIO(), io.StringIO(), None
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as e:
        code = e.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in %r)
print(json.dumps({"code": code, "out": out.getvalue(), "err": err.getvalue(), "heavy": heavy}))
""" % (HEAVY,)


def _run(script, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", HARNESS, str(script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_script_is_covered():
    names = {p.name for p in SCRIPTS}
    assert {"train_net.py", "demo.py", "web_demo.py", "convert_odise_checkpoint.py", "convert_vpd_checkpoint.py",
            "benchmark.py", "visualize_predictions.py", "visualize_png.py", "prepare_png.py"} <= names
    assert len([n for n in names if n.startswith("prepare_")]) == 12


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_help_answers_before_heavy_imports(script):
    res = _run(script, "--help")
    assert res["code"] in (0, None) or "usage" in str(res["code"]), res
    text = res["out"] + res["err"] + str(res["code"] or "")
    assert "usage" in text.lower(), text[:500]
    assert res["heavy"] == [], f"imported before answering --help: {res['heavy'][:5]}"


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s.name != "summarize_demo.py"],
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_unknown_flag_is_an_argument_error_before_heavy_imports(script):
    res = _run(script, "--no-such-flag")
    assert res["code"] == 2, res
    err = res["err"]
    # argparse names the missing required arguments first, else the unknown flag
    assert "usage" in err.lower() and ("--no-such-flag" in err or "arguments are required" in err), err[:500]
    assert res["heavy"] == [], f"imported before the argument error: {res['heavy'][:5]}"
