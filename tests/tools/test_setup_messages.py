"""scripts/setup_env.sh tells the user which pip resolver messages are expected and ends with one
line saying it succeeded and what to run next (read from the script; its final step is run
against this interpreter's environment, so no second environment is built)."""
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "setup_env.sh"


def test_expected_resolver_messages_are_announced_before_the_installs_that_print_them():
    lines = SCRIPT.read_text().splitlines()
    note = next(i for i, line in enumerate(lines) if line.startswith('echo "[setup] note: pip resolver'))
    text = " ".join(lines[note:note + 2])
    assert "sal-detectron2" in text and "panopticapi-lite" in text and "expected" in text
    assert "without dependencies on purpose" in text
    installs = [i for i, line in enumerate(lines) if "$PIP install" in line and ("-e " in line or "fvcore" in line)]
    assert installs and note < min(installs)


def test_last_line_says_done_and_what_to_run_next():
    text = SCRIPT.read_text()
    final = text[text.index("# the last line"):]
    prefix = Path(sys.prefix)
    proc = subprocess.run(["bash", "-c", f'VENV="{prefix}"\n' + final], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"[setup] done: {prefix} is ready (torch "), out
    assert out[0].endswith("Next: make demo") and "expected" in out[0]
    up_to_date = next(line for line in text.splitlines() if "environment up to date" in line)
    assert "Next: make demo" in up_to_date
