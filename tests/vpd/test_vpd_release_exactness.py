"""Released VPD / Meta-Prompts depth checkpoints reproduce the public models' outputs.

Each test writes a checkpoint in the released layout (scaled-down shapes, random values),
converts and loads it into the model of the real config (SD scaled down alike), and compares the
model's output, with the config's test-time windows and flips, with an independent forward of the
public definition (``tests/vpd_release.py``), fp32, <= 1e-5.
"""
import pytest
import torch

from odise_ext.checkpoint import detect_release_format
from vpd_release import (
    converted_model,
    diffusers_parts,
    mp_depth_reference,
    release_checkpoint,
    scaled_config,
    vpd_depth_reference,
    windows_with_flips,
)


def test_vpd_depth_release_converts_loads_and_reproduces_the_reference():
    release = release_checkpoint("vpd_depth")
    assert detect_release_format(release) == "vpd_depth"
    # the NYUv2 protocol scaled down: 96 x 128 image, two 96 windows at x = 0 and 32, each + flip
    cfg = scaled_config("vpd_nyu_depth.yaml", "TEST.DENSE.CROP_SIZE", [96, 96], "TEST.DENSE.STRIDE", [96, 32])
    model, converted, _ = converted_model(cfg, "vpd_depth", release)
    vae = model.backbone.feature_extractor.vae.module
    assert torch.equal(vae.encoder.conv_in.weight, release["encoder.encoder_vq.encoder.conv_in.weight"])

    torch.manual_seed(2)
    image = torch.randint(0, 256, (3, 96, 128)).float()
    with torch.no_grad():
        ours = model([{"image": image, "scene": "kitchen"}])[0]["depth"]
        unet, vae = diffusers_parts(release, "encoder.", cfg)
        scene = list(cfg.MODEL.VPD.PROMPT.SCENE_CLASSES).index("kitchen")
        ref = windows_with_flips(lambda w: vpd_depth_reference(release, unet, vae, w, scene),
                                 image[None] / 255.0, 96, [0, 32])[0, 0]
    assert ours.shape == (96, 128)
    assert (ref - ref.mean()).abs().max() > 1e-3  # not a constant map
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_mp_depth_release_converts_loads_and_reproduces_the_reference():
    release = release_checkpoint("mp_depth")
    assert detect_release_format(release) == "mp_depth"
    cfg = scaled_config("metaprompts_nyu_depth.yaml", "TEST.DENSE.CROP_SIZE", [96, 96],
                        "TEST.DENSE.STRIDE", [96, 32])
    model, _, _ = converted_model(cfg, "mp_depth", release)
    torch.manual_seed(3)
    image = torch.randint(0, 256, (3, 96, 128)).float()
    with torch.no_grad():
        ours = model([{"image": image}])[0]["depth"]
        unet, vae = diffusers_parts(release, "encoder.", cfg)
        ref = windows_with_flips(lambda w: mp_depth_reference(release, unet, vae, w), image[None] / 255.0, 96,
                                 [0, 32])[0, 0]
    assert ours.shape == (96, 128)
    assert (ref - ref.mean()).abs().max() > 1e-3
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_vpd_depth_scene_changes_the_prediction_and_unknown_scene_is_an_error():
    release = release_checkpoint("vpd_depth")
    model, _, _ = converted_model(scaled_config("vpd_nyu_depth.yaml", "TEST.DENSE.FLIP", False,
                                                "TEST.DENSE.CROP_SIZE", [], "TEST.DENSE.STRIDE", []),
                                  "vpd_depth", release)
    image = torch.randint(0, 256, (3, 64, 64)).float()
    with torch.no_grad():
        a = model([{"image": image, "scene": "kitchen"}])[0]["depth"]
        b = model([{"image": image, "scene": "bathroom"}])[0]["depth"]
        assert not torch.allclose(a, b)
        with pytest.raises(ValueError, match="unknown scene class 'garage'"):
            model([{"image": image, "scene": "garage"}])
        with pytest.raises(ValueError, match="needs prompt input 'scenes'"):
            model([{"image": image}])


def test_shift_windows_follow_the_reference_protocol():
    from odise_ext.dense.sliding_window import shift_windows, sliding_window_inference

    # KITTI: 16 windows of 352 over 1216 columns at x = i * 57; NYUv2: 2 of 480 over 640 at 0, 160
    boxes = shift_windows(352, 1216, 16)
    assert [b[2] for b in boxes] == [57 * i for i in range(16)] and boxes[-1][3] == 1207
    assert [b[2] for b in shift_windows(480, 640, 2)] == [0, 160]
    image = torch.arange(2 * 10, dtype=torch.float32).view(1, 2, 10)
    out = sliding_window_inference(lambda w: w * 2, image, boxes=shift_windows(2, 10, 4))  # x = 0, 2, 4, 6
    assert torch.equal(out[..., :8], image[..., :8] * 2)
    assert torch.equal(out[..., 8:], (image[..., 7:8] * 2).expand(1, 2, 2))  # uncovered: last covered column


def test_mp_kitti_depth_uses_shift_windows_and_resize():
    release = release_checkpoint("mp_depth")
    cfg = scaled_config("metaprompts_kitti_depth.yaml", "TEST.DENSE.SHIFT_WINDOWS", 3)
    model, _, _ = converted_model(cfg, "mp_depth", release)
    torch.manual_seed(4)
    image = torch.randint(0, 256, (3, 48, 112)).float()
    with torch.no_grad():
        ours = model([{"image": image}])[0]["depth"]
        unet, vae = diffusers_parts(release, "encoder.", cfg)
        # 48 // 64 + 2 = 2 -> 128 x 128 UNet input; windows at x = 0, 32, 64
        ref = windows_with_flips(lambda w: mp_depth_reference(release, unet, vae, w, resize_scale=2, max_depth=80.0),
                                 image[None] / 255.0, 48, [0, 32, 64])[0, 0]
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_predictor_and_demo_pass_the_scene(tmp_path):
    import os

    import numpy as np
    from PIL import Image

    from odise_ext.dense.predictor import DensePredictor
    from vpd_release import ROOT, tool

    release = release_checkpoint("vpd_depth")
    cfg = scaled_config("vpd_nyu_depth.yaml", "TEST.DENSE.CROP_SIZE", [], "TEST.DENSE.STRIDE", [],
                        "TEST.DENSE.FLIP", False, "INPUT.MIN_SIZE_TEST", 64, "INPUT.MAX_SIZE_TEST", 64)
    model, converted, _ = converted_model(cfg, "vpd_depth", release)
    bgr = np.random.RandomState(0).randint(0, 256, (64, 64, 3)).astype(np.uint8)
    weights = tmp_path / "w.pth"
    torch.save({"model": converted}, weights)
    cfg.merge_from_list(["MODEL.WEIGHTS", str(weights)])
    predictor = DensePredictor(cfg)
    with torch.no_grad():
        expected = model([{"image": torch.as_tensor(bgr[:, :, ::-1].copy()).permute(2, 0, 1).float(),
                           "scene": "office"}])[0]["depth"]
    torch.testing.assert_close(predictor(bgr, scene="office")["depth"], expected)
    demo = tool("demo")
    Image.fromarray(bgr[:, :, ::-1]).save(tmp_path / "in.png")
    with pytest.raises(SystemExit, match="pass --scene"):
        demo.main(["--config-file", os.path.join(ROOT, "configs/vpd/vpd_nyu_depth.yaml"), "--input",
                   str(tmp_path / "in.png"), "--output", str(tmp_path / "out.png"), "--opts", "MODEL.DEVICE", "cpu",
                   "MODEL.DIFFUSION.WEIGHTS", "random"])
