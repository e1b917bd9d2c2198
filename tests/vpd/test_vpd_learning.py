"""Every tiny VPD / Meta-Prompts config learns on the embedded shapes world: a short CPU training
run must lift the task metric on the validation split well above the untrained model's.

Numbers are deterministic for a given machine (seeded init and data order); thresholds leave room
for other BLAS builds. The training loop, each run's length and the gains asserted are in
``tests/learning.py`` (``LEARNING_RUNS``); docs/benchmarks.md lists the measured figures.
"""
import pytest
from learning import assert_gains, run_learning


@pytest.mark.slow
@pytest.mark.parametrize("config", ["vpd_semseg_tiny", "vpd_metaprompts_semseg_tiny"])
def test_semantic_segmentation_learns(config, shapes_root, tmp_path):
    before, after, _ = run_learning(config, tmp_path)
    # 64 px inputs through a random 4-channel VAE latent of 8 x 8: the shapes (1-3 latent pixels)
    # stay out of reach in so few steps, the stuff classes are learnt (mIoU > 2.5x and + 4,
    # pixel accuracy + 10)
    assert_gains(config, before, after)


@pytest.mark.slow
@pytest.mark.parametrize("config", ["vpd_depth_tiny", "vpd_metaprompts_depth_tiny"])
def test_depth_learns(config, shapes_root, tmp_path):
    before, after, _ = run_learning(config, tmp_path)
    assert_gains(config, before, after)  # d1 + 0.1, abs_rel < 0.5x, rmse < 0.8x


@pytest.mark.slow
def test_referring_segmentation_learns(shapes_root, tmp_path):
    before, after, _ = run_learning("vpd_refer_tiny", tmp_path)
    # 40 steps mostly learn "where the shapes are" (the referred one among ~2.5 of them):
    # oIoU and mIoU > 1.8x + 1
    assert_gains("vpd_refer_tiny", before, after)


@pytest.mark.slow
def test_pose_learns(shapes_root, tmp_path):
    before, after, _ = run_learning("vpd_pose_tiny", tmp_path)
    assert_gains("vpd_pose_tiny", before, after)  # AP + 10
