"""Every tiny VPD / Meta-Prompts config learns on the embedded shapes world: a short CPU training
run must lift the task metric on the validation split well above the untrained model's.

Numbers are deterministic for a given machine (seeded init and data order); thresholds leave room
for other BLAS builds. The training loop is ``tests/learning.py``.
"""
import pytest
from learning import train_and_evaluate


@pytest.mark.slow
@pytest.mark.parametrize("config", ["vpd_semseg_tiny", "vpd_metaprompts_semseg_tiny"])
def test_semantic_segmentation_learns(config, shapes_root, tmp_path):
    iters = {"vpd_semseg_tiny": 60, "vpd_metaprompts_semseg_tiny": 40}[config]
    before, after, _ = train_and_evaluate(
        f"configs/testing/{config}.yaml", tmp_path, "SOLVER.MAX_ITER", iters
    )
    print(config, "mIoU untrained", before["sem_seg"]["mIoU"], "trained", after["sem_seg"]["mIoU"])
    # 64 px inputs through a random 4-channel VAE latent of 8 x 8: the shapes (1-3 latent pixels)
    # stay out of reach in so few steps, the stuff classes are learnt
    assert after["sem_seg"]["mIoU"] > 2.5 * before["sem_seg"]["mIoU"]
    assert after["sem_seg"]["mIoU"] > before["sem_seg"]["mIoU"] + 4
    assert after["sem_seg"]["pACC"] > before["sem_seg"]["pACC"] + 10


@pytest.mark.slow
@pytest.mark.parametrize("config", ["vpd_depth_tiny", "vpd_metaprompts_depth_tiny"])
def test_depth_learns(config, shapes_root, tmp_path):
    before, after, _ = train_and_evaluate(f"configs/testing/{config}.yaml", tmp_path)
    b, a = before["depth"], after["depth"]
    print(config, "untrained", dict(b), "trained", dict(a))
    assert a["d1"] > b["d1"] + 0.1
    assert a["abs_rel"] < 0.5 * b["abs_rel"]
    assert a["rmse"] < 0.8 * b["rmse"]


@pytest.mark.slow
def test_referring_segmentation_learns(shapes_root, tmp_path):
    before, after, _ = train_and_evaluate("configs/testing/vpd_refer_tiny.yaml", tmp_path, eval_count=24)
    print("refer untrained", dict(before["refer"]), "trained", dict(after["refer"]))
    # 40 steps mostly learn "where the shapes are" (the referred one among ~2.5 of them)
    assert after["refer"]["oIoU"] > 1.8 * before["refer"]["oIoU"] + 1
    assert after["refer"]["mIoU"] > 1.8 * before["refer"]["mIoU"] + 1


@pytest.mark.slow
def test_pose_learns(shapes_root, tmp_path):
    before, after, _ = train_and_evaluate("configs/testing/vpd_pose_tiny.yaml", tmp_path, eval_count=24)
    print("pose untrained", dict(before["keypoints"]), "trained", dict(after["keypoints"]))
    assert after["keypoints"]["AP"] > before["keypoints"]["AP"] + 10
