"""The ODISE drawing and reporting tools of `make demo`: tools/visualize_predictions.py and
tools/summarize_demo.py, run in-process on the tiny config with random weights."""
import json
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import summarize_demo  # noqa: E402
import visualize_predictions  # noqa: E402

from odise_ext.utils.visualization import draw_panoptic, side_by_side, vocabulary_metadata  # noqa: E402


def test_draw_panoptic_accepts_numpy_and_tensor_maps():
    rgb = np.zeros((64, 64, 3), np.uint8)
    seg = np.zeros((64, 64), np.int32)
    seg[8:56, 8:56] = 7
    info = [{"id": 7, "category_id": 1, "isthing": True}]
    meta = vocabulary_metadata(["a", "b"], [(0, 0, 0), (255, 0, 0)])
    from_numpy = draw_panoptic(rgb, seg, info, meta)
    from_tensor = draw_panoptic(rgb, torch.from_numpy(seg), info, meta)
    assert from_numpy.shape == (512, 512, 3)  # enlarged x8 for display: 512 px on the long side
    np.testing.assert_array_equal(from_numpy, from_tensor)
    # the segment (x8: 64..448) is tinted with class 1's colour (red), the unlabeled rest is left black
    r, g, b = from_numpy[64:448, 64:448].reshape(-1, 3).astype(float).mean(0)
    assert r > 50 and g < r / 2 and b < r / 2
    assert from_numpy[0, 0].max() == 0


def test_side_by_side_pads_and_separates():
    a, b = np.zeros((4, 3, 3), np.uint8), np.zeros((6, 2, 3), np.uint8)
    out = side_by_side(a, b, gap=1)
    assert out.shape == (6, 3 + 1 + 2, 3)
    assert (out[4:, :3] == 255).all() and (out[:, 3] == 255).all() and (out[:, 4:] == 0).all()


def test_visualize_predictions_writes_image_gt_prediction_panels(shapes_root, tmp_path, capsys):
    torch.manual_seed(0)
    out = tmp_path / "vis"
    visualize_predictions.main([
        "--config-file", os.path.join(ROOT, "configs/testing/odise_tiny.yaml"),
        "--dataset", "shapes_val_panoptic_with_sem_seg", "--num", "2", "--output", str(out),
        "--opts", "MODEL.DEVICE", "cpu",
    ])
    files = sorted(os.listdir(out))
    assert len(files) == 2 and "wrote 2 panels" in capsys.readouterr().out
    from detectron2.data import DatasetCatalog

    first = DatasetCatalog.get("shapes_val_panoptic_with_sem_seg")[0]
    w, h = Image.open(first["file_name"]).size
    panel = np.asarray(Image.open(out / f"{first['image_id']}.png"))
    f = -(-512 // max(w, h))  # panels enlarged by a whole factor to >= 512 px on the long side
    head = panel.shape[0] - f * h  # the heading band (image | ground truth | prediction)
    assert panel.shape[1:] == (3 * f * w + 2 * 4, 3) and 10 < head < 60
    assert (panel[:head] == 255).mean() > 0.8 and (panel[:head] < 128).any()  # white band with text
    # the middle panel is the ground truth drawn over the image: it differs from the image
    image, gt = panel[head:, : f * w].astype(int), panel[head:, f * w + 4 : 2 * f * w + 4].astype(int)
    assert np.abs(gt - image).mean() > 1


def _write_results(folder, pq, miou):
    os.makedirs(folder / "inference")
    res = {"panoptic_seg": {"PQ": pq, "SQ": 70.0, "RQ": 40.0, "PQ_th": pq / 2, "PQ_st": pq * 2},
           "sem_seg": {"mIoU": miou, "pACC": 50.0}}
    (folder / "eval_results.json").write_text(json.dumps(res))
    return str(folder / "inference")


def test_summarize_demo_prints_untrained_next_to_trained(tmp_path, capsys):
    before = _write_results(tmp_path / "untrained", 0.0, 0.25)
    after = _write_results(tmp_path / "trained", 37.03, 33.9)
    summarize_demo.main([before, after])
    lines = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[1:]}
    assert lines["panoptic_seg/PQ"] == ["0.00", "37.03"]
    assert lines["sem_seg/mIoU"] == ["0.25", "33.90"]
    assert lines["panoptic_seg/PQ_st"] == ["0.00", "74.06"]
    with pytest.raises(SystemExit, match="no evaluation results"):
        summarize_demo.main([str(tmp_path / "missing" / "inference"), after])


def _demo_input(tmp_path):
    from detectron2.data import DatasetCatalog

    src = DatasetCatalog.get("shapes_val_panoptic_with_sem_seg")[0]["file_name"]
    rgb = np.asarray(Image.open(src).convert("RGB"))[:96, :128]  # non-square
    path = tmp_path / "input.png"
    Image.fromarray(np.ascontiguousarray(rgb)).save(path)
    return str(path), rgb


def test_demo_draws_panoptic_result_for_a_given_vocabulary(shapes_root, tmp_path, capsys):
    import demo  # tools/demo.py

    path, rgb = _demo_input(tmp_path)
    out = tmp_path / "out.png"
    torch.manual_seed(0)
    demo.main(["--config-file", os.path.join(ROOT, "configs/testing/odise_tiny.yaml"), "--input", path,
               "--output", str(out), "--vocab", "circle;square,box;sky", "--things", "circle;square"])
    drawn = np.asarray(Image.open(out).convert("RGB"))
    from odise_ext.utils.visualization import display_factor, enlarge_image

    f = display_factor(*rgb.shape[:2])
    assert drawn.shape == (f * rgb.shape[0], f * rgb.shape[1], 3) and max(drawn.shape[:2]) >= 512
    assert np.abs(drawn.astype(int) - enlarge_image(rgb, f).astype(int)).mean() > 1  # segments drawn over the image
    assert str(out) in capsys.readouterr().out


@pytest.mark.parametrize("vocab, message", [(";", "holds no class name"), (" , ; ", "has no synonym")])
def test_demo_rejects_empty_vocabulary(shapes_root, tmp_path, vocab, message):
    import demo

    path, _ = _demo_input(tmp_path)
    with pytest.raises((ValueError, SystemExit), match=message):
        demo.main(["--config-file", os.path.join(ROOT, "configs/testing/odise_tiny.yaml"), "--input", path,
                   "--output", str(tmp_path / "o.png"), "--vocab", vocab])
    assert not (tmp_path / "o.png").exists()
