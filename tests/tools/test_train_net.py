"""tools/train_net.py end to end on the tiny config: 2 CPU processes (gloo), resume, eval-only."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_NET = os.path.join(ROOT, "tools", "train_net.py")


def _run(args, env_extra=None, timeout=3600):
    # The limit only stops a hung run: on a loaded machine the two processes may be slow.
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env_extra or {}))
    proc = subprocess.run([sys.executable, TRAIN_NET, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(3 * 3600)
def test_two_process_training_resume_and_eval(tmp_path):
    out = tmp_path / "run"
    common = ["--config-file", "configs/testing/odise_tiny.yaml"]

    def opts(max_iter):
        return ["MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(out), "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", str(max_iter),
                "SOLVER.CHECKPOINT_PERIOD", "2", "TEST.EVAL_PERIOD", "0", "DATALOADER.NUM_WORKERS", "0"]

    no_eval = ["DATASETS.TEST", "()"]  # training alone (detectron2 evaluates after training otherwise)
    # "auto": a free port (detectron2's default depends only on the user id: concurrent runs collide)
    _run([*common, "--num-gpus", "2", "--dist-url", "auto", *opts(2), *no_eval])
    # detectron2's default_setup: every rank > 0 logs to log.txt.rank<k> and states the world size.
    assert "Rank of current process: 1. World size: 2" in (out / "log.txt.rank1").read_text()
    assert (out / "model_final.pth").exists() and (out / "last_checkpoint").read_text() == "model_final.pth"
    # no temporary files left behind by the atomic checkpointer
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]

    # resume continues from the last checkpoint instead of starting over
    log = _run([*common, "--num-gpus", "1", "--resume", *opts(3), *no_eval])
    assert "Starting training from iteration 2" in log

    # evaluation only, from the trained weights
    _run([*common, "--eval-only", *opts(3), "MODEL.WEIGHTS", str(out / "model_final.pth"),
           "DATASETS.TEST", '("shapes_val_panoptic_with_sem_seg",)'])
    with open(out / "eval_results.json") as f:
        results = json.load(f)
    assert 0.0 <= results["panoptic_seg"]["PQ"] <= 100.0
